//! The group-by source: a SQL query whose rows, in the query's `ORDER BY`, are cut into
//! groups of consecutive rows with the same value of one column (all rows of one ticker, or
//! all tickers' rows of one date). Rows are streamed from one connection and each group is
//! handed on as soon as the next one starts, through a bounded channel: only the groups in
//! flight are in memory, never the table.
//!
//! Rows are decoded into typed [`Cell`]s (no JSON in between). A group whose key shows up
//! again after another group means the query is not ordered by that column: that stops the
//! phase with a message saying so.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;

use futures_util::StreamExt;
use serde::ser::SerializeMap;
use sqlx::postgres::{PgConnectOptions, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{Column, ConnectOptions, Executor, Row, Statement, TypeInfo, ValueRef};
use tokio::sync::mpsc;

use crate::error::Error;

/// One value of a row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    /// SQL `NULL`.
    Null,
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Real(f64),
    /// Text.
    Text(String),
}

impl Cell {
    /// The value as a number (`None` for NULL or text that is not one).
    pub(crate) fn number(&self) -> Option<f64> {
        match self {
            Cell::Real(x) => Some(*x),
            Cell::Int(i) => Some(*i as f64),
            Cell::Text(s) => s.trim().parse().ok(),
            Cell::Null => None,
        }
    }

    /// The value as text (NULL is empty).
    pub(crate) fn text(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Int(i) => i.to_string(),
            Cell::Real(x) => x.to_string(),
            Cell::Text(s) => s.clone(),
        }
    }
}

/// One group: its key and its rows, in the query's order.
#[derive(Debug)]
pub(crate) struct Group {
    /// The value of the group-by column.
    pub(crate) key: String,
    /// The query's columns.
    pub(crate) columns: Arc<Vec<String>>,
    /// The rows.
    pub(crate) rows: Vec<Vec<Cell>>,
}

impl Group {
    /// The column `name`'s index.
    pub(crate) fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

/// A dead letter names the group and its size, not its (possibly thousands of) rows.
impl serde::Serialize for Group {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("group", &self.key)?;
        m.serialize_entry("rows", &self.rows.len())?;
        m.end()
    }
}

/// The opened source: its columns (known before the first row) and the groups.
pub(crate) struct GroupSource {
    /// The query's columns.
    pub(crate) columns: Arc<Vec<String>>,
    /// The groups, then the end (or an error, then the end).
    pub(crate) groups: mpsc::Receiver<Result<Arc<Group>, Error>>,
}

enum Conn {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

fn is_postgres(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// Rows buffered between SQLite's worker thread and the pump.
const SOURCE_ROW_CHANNEL: usize = 4096;
/// The source connection's page cache: 256 MiB (negative: KiB), which also bounds the
/// memory an `ORDER BY` sorts in before it spills.
const SOURCE_CACHE_SIZE: &str = "-262144";
/// Memory-mapped reads of up to 4 GiB of the database file.
const SOURCE_MMAP_SIZE: &str = "4294967296";

/// Opens a SQLite (`sqlite:PATH`, a `.db` path) or PostgreSQL connection.
pub(crate) async fn connect_sqlite_or_pg(
    url: &str,
    read_only: bool,
) -> Result<(Option<sqlx::SqliteConnection>, Option<sqlx::PgConnection>), sqlx::Error> {
    if is_postgres(url) {
        let c = PgConnectOptions::from_str(url)?
            .disable_statement_logging()
            .connect()
            .await?;
        return Ok((None, Some(c)));
    }
    let options = if url.to_ascii_lowercase().starts_with("sqlite:") {
        SqliteConnectOptions::from_str(url)?
    } else {
        SqliteConnectOptions::new().filename(url)
    };
    let c = options
        .read_only(read_only)
        .create_if_missing(false)
        // A long query is this source's normal work, not a slow statement to warn about.
        .disable_statement_logging()
        // Rows cross from SQLite's worker thread in batches of this many, not one
        // hand-off (and thread wake-up) per row as with sqlx's default of 50.
        .row_buffer_size(SOURCE_ROW_CHANNEL)
        // A big `ORDER BY` sorts in memory before spilling to temporary files, and the
        // file is read through the page cache rather than copied into SQLite's own.
        .pragma("cache_size", SOURCE_CACHE_SIZE)
        .pragma("mmap_size", SOURCE_MMAP_SIZE)
        .connect()
        .await?;
    Ok((Some(c), None))
}

/// Runs `query` on `url` and groups its rows by `group_by`. Connecting, a query that does
/// not prepare (a missing table, a typo) and a missing `group_by` column are errors here,
/// before any row is read.
pub(crate) async fn open(
    url: &str,
    query: &str,
    group_by: &str,
    phase: &str,
) -> Result<GroupSource, Error> {
    let ctx = |what: &str| {
        let context = format!("phase `{phase}`: {what}");
        move |source| Error::Sql {
            context: context.clone(),
            source,
        }
    };
    let conn = match connect_sqlite_or_pg(url, true).await {
        Ok((Some(c), _)) => Conn::Sqlite(c),
        Ok((_, Some(c))) => Conn::Postgres(c),
        Ok((None, None)) => unreachable!("one connection is made"),
        Err(e) => return Err(ctx("connecting to the source database")(e)),
    };
    let mut conn = conn;
    let columns: Vec<String> = match &mut conn {
        Conn::Sqlite(c) => c
            .prepare(query)
            .await
            .map(|s| s.columns().iter().map(|c| c.name().to_owned()).collect()),
        Conn::Postgres(c) => c
            .prepare(query)
            .await
            .map(|s| s.columns().iter().map(|c| c.name().to_owned()).collect()),
    }
    .map_err(ctx("source query"))?;
    let Some(key_index) = columns.iter().position(|c| c == group_by) else {
        return Err(Error::Config {
            file: Default::default(),
            line: 0,
            key: format!("phase `{phase}` source.group_by"),
            message: format!(
                "the query has no column `{group_by}`; its columns: {}",
                columns.join(", ")
            ),
        });
    };
    let columns = Arc::new(columns);
    let (tx, rx) = mpsc::channel(16);
    let pump = Pump {
        columns: columns.clone(),
        key_index,
        group_by: group_by.to_owned(),
        phase: phase.to_owned(),
        tx,
    };
    let query = query.to_owned();
    tokio::spawn(async move {
        match conn {
            Conn::Sqlite(mut c) => {
                let rows = sqlx::query(&query).fetch(&mut c);
                pump.run(rows, sqlite_row).await;
            }
            Conn::Postgres(mut c) => {
                let rows = sqlx::query(&query).fetch(&mut c);
                pump.run(rows, pg_row).await;
            }
        }
    });
    Ok(GroupSource {
        columns,
        groups: rx,
    })
}

struct Pump {
    columns: Arc<Vec<String>>,
    key_index: usize,
    group_by: String,
    phase: String,
    tx: mpsc::Sender<Result<Arc<Group>, Error>>,
}

impl Pump {
    async fn run<R, S>(self, mut rows: S, decode: fn(&R) -> Vec<Cell>)
    where
        S: futures_core::Stream<Item = Result<R, sqlx::Error>> + Unpin,
    {
        let mut seen: HashSet<String> = HashSet::new();
        let mut current: Option<Group> = None;
        loop {
            let row = tokio::select! {
                biased;
                () = self.tx.closed() => return,
                row = rows.next() => row,
            };
            let cells = match row {
                None => break,
                Some(Ok(row)) => decode(&row),
                Some(Err(source)) => {
                    let _ = self
                        .tx
                        .send(Err(Error::Sql {
                            context: format!("phase `{}`: reading the source", self.phase),
                            source,
                        }))
                        .await;
                    return;
                }
            };
            let key = cells[self.key_index].text();
            match &mut current {
                Some(g) if g.key == key => g.rows.push(cells),
                _ => {
                    if seen.contains(&key) {
                        let message = format!(
                            "rows of {} `{key}` are not together: the query must ORDER BY {} first",
                            self.group_by, self.group_by
                        );
                        let _ = self
                            .tx
                            .send(Err(Error::Http {
                                url: format!("phase `{}` source", self.phase),
                                message,
                            }))
                            .await;
                        return;
                    }
                    seen.insert(key.clone());
                    let next = Group {
                        key,
                        columns: self.columns.clone(),
                        rows: vec![cells],
                    };
                    if let Some(done) = current.replace(next) {
                        if self.tx.send(Ok(Arc::new(done))).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
        if let Some(done) = current {
            let _ = self.tx.send(Ok(Arc::new(done))).await;
        }
    }
}

fn sqlite_row(row: &SqliteRow) -> Vec<Cell> {
    (0..row.columns().len())
        .map(|i| {
            let Ok(raw) = row.try_get_raw(i) else {
                return Cell::Null;
            };
            if raw.is_null() {
                return Cell::Null;
            }
            // The value's own storage class: SQLite columns are dynamically typed.
            let storage = raw.type_info().name().to_owned();
            match storage.as_str() {
                "INTEGER" | "BOOLEAN" => row.try_get_unchecked::<i64, _>(i).map(Cell::Int),
                "REAL" => row.try_get_unchecked::<f64, _>(i).map(Cell::Real),
                _ => row.try_get_unchecked::<String, _>(i).map(Cell::Text),
            }
            .unwrap_or(Cell::Null)
        })
        .collect()
}

fn pg_row(row: &PgRow) -> Vec<Cell> {
    row.columns()
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let cell = match column.type_info().name() {
                "FLOAT8" => row.try_get::<Option<f64>, _>(i).map(|v| v.map(Cell::Real)),
                "FLOAT4" => row
                    .try_get::<Option<f32>, _>(i)
                    .map(|v| v.map(|x| Cell::Real(f64::from(x)))),
                "INT8" => row.try_get::<Option<i64>, _>(i).map(|v| v.map(Cell::Int)),
                "INT4" => row
                    .try_get::<Option<i32>, _>(i)
                    .map(|v| v.map(|x| Cell::Int(i64::from(x)))),
                "INT2" => row
                    .try_get::<Option<i16>, _>(i)
                    .map(|v| v.map(|x| Cell::Int(i64::from(x)))),
                // Dates, numerics and the rest: select them as text or float8
                // (`date::text`, `close::float8`).
                _ => row
                    .try_get::<Option<String>, _>(i)
                    .map(|v| v.map(Cell::Text)),
            };
            cell.ok().flatten().unwrap_or(Cell::Null)
        })
        .collect()
}
