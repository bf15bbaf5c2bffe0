//! A phase's handler: a batch of groups goes through the phase's stage (on the blocking
//! pool: it is CPU work) and its rows, with the stage's new states, are written in one
//! transaction. A group the stage refuses (bad data) is dead-lettered with the reason; the
//! rest of the batch is written.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ferry_core::{Batch, BatchOutcome, BoxFuture, Handler, ItemOutcome};
use ferry_indicators::IndicatorState;
use sqlx::Row;

use super::config::Phase;
use super::db::{Db, Upsert};
use super::group::{Cell, Unit};
use super::stage::{self, Computed, StageKind, Stored, STATE_COLUMNS};
use crate::error::Error;

/// Runs a phase's stage and writes its rows.
pub(crate) struct PhaseHandler {
    phase: String,
    stage: StageKind,
    db: Db,
    out: Upsert,
    state: Option<Upsert>,
    written: Arc<AtomicU64>,
}

impl PhaseHandler {
    /// Connects to the sink, creates the state table if the stage keeps one, and checks the
    /// sink table (it must exist, with the stage's columns and a unique key on its key).
    pub(crate) async fn open(phase: &Phase) -> Result<Self, Error> {
        let db = Db::open(&phase.sink_url, &phase.name).await?;
        let (columns, key) = phase.stage.output();
        let key: Vec<&str> = if phase.sink_key.is_empty() {
            key.to_vec()
        } else {
            phase.sink_key.iter().map(String::as_str).collect()
        };
        let out = db
            .upsert(&phase.sink_table, columns, &key, &phase.name)
            .await?;
        let state = match &phase.stage {
            StageKind::Indicators {
                state_table: Some(t),
                ..
            } => {
                let create = format!(
                    "CREATE TABLE IF NOT EXISTS \"{}\" (ticker TEXT PRIMARY KEY, last_date TEXT NOT NULL, state TEXT NOT NULL)",
                    t.replace('"', "\"\"")
                );
                db.execute(&create).await.map_err(|source| Error::Sql {
                    context: format!("phase `{}`: creating the state table `{t}`", phase.name),
                    source,
                })?;
                Some(
                    db.upsert(t, &STATE_COLUMNS, &["ticker"], &phase.name)
                        .await?,
                )
            }
            _ => None,
        };
        Ok(Self {
            phase: phase.name.clone(),
            stage: phase.stage.clone(),
            db,
            out,
            state,
            written: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Rows written so far (all tables but the state table).
    pub(crate) fn written(&self) -> Arc<AtomicU64> {
        self.written.clone()
    }

    /// The sink table's rows by key, for a folded phase to leave out the groups whose row
    /// is there already, unchanged.
    pub(crate) async fn stored_rows(&self) -> Result<HashMap<String, Vec<Cell>>, Error> {
        self.db
            .rows_by_key(&self.out)
            .await
            .map_err(|source| Error::Sql {
                context: format!(
                    "phase `{}`: reading `{}` to compare",
                    self.phase, self.out.table
                ),
                source,
            })
    }

    /// The stored states of `keys` (tickers without one are absent).
    async fn load_states(&self, keys: &[&str]) -> Result<HashMap<String, Stored>, String> {
        let Some(u) = &self.state else {
            return Ok(HashMap::new());
        };
        let table = format!("\"{}\"", u.table.replace('"', "\"\""));
        let mut out = HashMap::new();
        for chunk in keys.chunks(500) {
            let rows: Vec<(String, String, String)> = match &self.db {
                Db::Sqlite(p) => {
                    let marks = vec!["?"; chunk.len()].join(", ");
                    let sql = format!(
                        "SELECT ticker, last_date, state FROM {table} WHERE ticker IN ({marks})"
                    );
                    let mut q = sqlx::query(&sql);
                    for k in chunk {
                        q = q.bind(*k);
                    }
                    q.fetch_all(p)
                        .await
                        .map_err(|e| e.to_string())?
                        .iter()
                        .map(|r| (r.get(0), r.get(1), r.get(2)))
                        .collect()
                }
                Db::Postgres(p) => {
                    let sql = format!(
                        "SELECT ticker::text, last_date::text, state FROM {table} WHERE ticker = ANY($1)"
                    );
                    let keys: Vec<String> = chunk.iter().map(|k| (*k).to_owned()).collect();
                    sqlx::query(&sql)
                        .bind(keys)
                        .fetch_all(p)
                        .await
                        .map_err(|e| e.to_string())?
                        .iter()
                        .map(|r| (r.get(0), r.get(1), r.get(2)))
                        .collect()
                }
            };
            for (ticker, last_date, state) in rows {
                let state = IndicatorState::decode(&state).map_err(|e| e.to_string())?;
                out.insert(ticker, Stored { last_date, state });
            }
        }
        Ok(out)
    }
}

fn compute(stage: &StageKind, unit: &Unit, stored: Option<&Stored>) -> Result<Computed, String> {
    let g = match unit {
        Unit::Rows(g) => g,
        Unit::Folded { row, .. } => {
            return row.clone().map(|row| Computed {
                rows: vec![row],
                state: None,
            })
        }
    };
    match stage {
        StageKind::Indicators {
            date,
            close,
            state_table,
        } => stage::indicators(g, date, close, stored, state_table.is_some()),
        StageKind::Breadth => stage::breadth_row(g),
    }
}

impl Handler<Arc<Unit>, ()> for PhaseHandler {
    fn call<'a>(&'a self, batch: &'a Batch<Arc<Unit>>) -> BoxFuture<'a, BatchOutcome<()>> {
        Box::pin(async move {
            let groups: Vec<Arc<Unit>> = batch.payloads().cloned().collect();
            let keys: Vec<&str> = batch
                .payloads()
                .filter(|u| matches!(u.as_ref(), Unit::Rows(_)))
                .map(|u| u.key())
                .collect();
            let stored = match self.load_states(&keys).await {
                Ok(s) => s,
                Err(e) => return BatchOutcome::retry(None, format!("reading the states: {e}")),
            };
            let stage = self.stage.clone();
            let computed = tokio::task::spawn_blocking(move || {
                groups
                    .iter()
                    .map(|u| compute(&stage, u, stored.get(u.key())))
                    .collect::<Vec<_>>()
            })
            .await;
            let computed = match computed {
                Ok(c) => c,
                Err(e) => return BatchOutcome::fatal(format!("the stage failed: {e}")),
            };
            let mut rows: Vec<Vec<Cell>> = Vec::new();
            let mut states: Vec<Vec<Cell>> = Vec::new();
            let mut outcomes = Vec::with_capacity(computed.len());
            for c in computed {
                match c {
                    Ok(c) => {
                        rows.extend(c.rows);
                        states.extend(c.state);
                        outcomes.push(ItemOutcome::Ok(()));
                    }
                    Err(reason) => outcomes.push(ItemOutcome::Fatal(reason)),
                }
            }
            let mut parts: Vec<(&Upsert, &[Vec<Cell>])> = vec![(&self.out, &rows)];
            if let Some(u) = &self.state {
                parts.push((u, &states));
            }
            if let Err(e) = self.db.write(&parts).await {
                let reason = format!("phase `{}`: writing `{}`: {e}", self.phase, self.out.table);
                return match e {
                    sqlx::Error::Database(_) if batch.len() > 1 => BatchOutcome::split(reason),
                    sqlx::Error::Database(_) => BatchOutcome::fatal(reason),
                    _ => BatchOutcome::retry(None, reason),
                };
            }
            self.written.fetch_add(rows.len() as u64, Ordering::Relaxed);
            BatchOutcome::Done(outcomes)
        })
    }
}
