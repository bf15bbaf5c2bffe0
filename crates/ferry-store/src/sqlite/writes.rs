//! SQLite's submit, claim and complete statements ([`WriteStatements`]), on the store's own
//! write connection (`writer`), each prepared once and cached there. Without sqlx's
//! per-row hand-off, rows are read one by one with cached statements (no JSON arrays to
//! build and parse) and a job's items and a batch's results are written by multi-row
//! `INSERT`s of bound values, a few cached sizes; an id list is still one JSON array
//! (`json_each`). No row locks: every write transaction holds SQLite's one write lock
//! (`BEGIN IMMEDIATE`), which also serialises the queue limit and tenant quota checks.

use std::sync::OnceLock;

use rusqlite::{named_params, OptionalExtension};

use crate::backend::{ClaimedJob, Taken, TenantBacklog, WriteStatements};
use crate::backend::{COUNT_FINISHED_SINCE, COUNT_UNFINISHED};
use crate::backend::{IN_FLIGHT, LANES, SERVE_JOB, SERVE_TENANT, TENANT_BACKLOG};
use crate::common::{Delta, JobColumns, ADJUST_JOB, JOB_COLUMNS};
use crate::error::Error;
use crate::fair::Lane;
use crate::sqlite::direct::job_columns;
use crate::sqlite::sql::id_list;
use crate::sqlite::store::SqliteStore;
use crate::sqlite::writer::{direct, WriteTx};
use crate::types::{db_index, from_db_index, JobId, JobRecord, NewJob, Priority};

const SUBMIT: &str = "creating a job";
const CLAIM: &str = "claiming items";
const COMPLETE: &str = "recording results";

impl WriteStatements for SqliteStore {
    type WriteTx = WriteTx;

    async fn begin_write(&self, what: &'static str) -> Result<WriteTx, Error> {
        self.write.begin(what).await
    }

    async fn commit_write(&self, tx: WriteTx, what: &'static str) -> Result<(), Error> {
        if tx.commit(what)? {
            self.wake.wake();
        }
        Ok(())
    }

    async fn notify_write(&self, tx: &mut WriteTx) -> Result<(), Error> {
        tx.wake = true;
        Ok(())
    }

    async fn job_by_key(
        &self,
        tx: &mut WriteTx,
        tenant: &str,
        key: &str,
    ) -> Result<Option<JobRecord>, Error> {
        let sql =
            format!("SELECT {JOB_COLUMNS} FROM jobs WHERE tenant = ?1 AND idempotency_key = ?2");
        let mut stmt = tx.conn().prepare_cached(&sql).map_err(direct(SUBMIT))?;
        stmt.query_row((tenant, key), job_columns)
            .optional()
            .map_err(direct(SUBMIT))?
            .map(JobColumns::into_record)
            .transpose()
    }

    async fn lock_queue(&self, _tx: &mut WriteTx, _priority: Priority) -> Result<(), Error> {
        // `BEGIN IMMEDIATE` already serialises every writer.
        Ok(())
    }

    async fn count_unfinished(&self, tx: &mut WriteTx, priority: Priority) -> Result<i64, Error> {
        let mut stmt = tx
            .conn()
            .prepare_cached(COUNT_UNFINISHED)
            .map_err(direct(SUBMIT))?;
        stmt.query_row(named_params! {"$1": db_index(priority) as i64}, |r| {
            r.get(0)
        })
        .map_err(direct(SUBMIT))
    }

    async fn count_finished_since(
        &self,
        tx: &mut WriteTx,
        priority: Priority,
        since: f64,
    ) -> Result<i64, Error> {
        let mut stmt = tx
            .conn()
            .prepare_cached(COUNT_FINISHED_SINCE)
            .map_err(direct(SUBMIT))?;
        stmt.query_row(
            named_params! {"$1": db_index(priority) as i64, "$2": since},
            |r| r.get(0),
        )
        .map_err(direct(SUBMIT))
    }

    async fn lock_tenant(&self, _tx: &mut WriteTx, _tenant: &str) -> Result<(), Error> {
        // `BEGIN IMMEDIATE` already serialises every writer.
        Ok(())
    }

    async fn tenant_backlog(&self, tx: &mut WriteTx, tenant: &str) -> Result<TenantBacklog, Error> {
        let mut stmt = tx
            .conn()
            .prepare_cached(TENANT_BACKLOG)
            .map_err(direct(SUBMIT))?;
        stmt.query_row(named_params! {"$1": tenant}, |r| {
            Ok(TenantBacklog {
                queued: r.get(0)?,
                claimed: r.get(1)?,
                since: r.get(2)?,
            })
        })
        .map_err(direct(SUBMIT))
    }

    async fn insert_job(
        &self,
        tx: &mut WriteTx,
        job: &NewJob,
        record: &JobRecord,
    ) -> Result<bool, Error> {
        let mut stmt = tx
            .conn()
            .prepare_cached(
                "INSERT INTO jobs (id, tenant, handler, params, priority, status, \
                 idempotency_key, total, queued, created_at, completed_at, timeout_seconds, \
                 max_batch_size) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10, ?11, ?12)",
            )
            .map_err(direct(SUBMIT))?;
        stmt.execute((
            record.id.as_str(),
            &job.tenant,
            &job.handler,
            job.params.to_string(),
            db_index(job.priority) as i64,
            record.status.as_str(),
            &job.idempotency_key,
            record.total as i64,
            record.created_at,
            record.completed_at,
            job.limits.timeout_seconds,
            job.limits
                .max_batch_size
                .map(|n| n.min(i64::MAX as u64) as i64),
        ))
        .map_err(direct(SUBMIT))?;
        // The idempotency key was checked under the same write lock.
        Ok(true)
    }

    async fn insert_items(
        &self,
        tx: &mut WriteTx,
        id: &JobId,
        job: &NewJob,
        now: f64,
    ) -> Result<(), Error> {
        // Runs of up to `MAX_ROWS` items, each one cached multi-row `INSERT` (a power of two
        // of rows, so a handful of statements serve every job size): what SQLite does once
        // per statement (its cursors, the `AUTOINCREMENT` counter read and written back) is
        // done once per run instead of once per item.
        let priority = db_index(job.priority) as i64;
        let mut payload = String::new();
        let mut rest = &job.items[..];
        while !rest.is_empty() {
            let (run, tail) = rest.split_at(run_len(rest.len()));
            let mut stmt = tx
                .conn()
                .prepare_cached(insert_items_sql(run.len()))
                .map_err(direct(SUBMIT))?;
            let bind = |stmt: &mut rusqlite::CachedStatement<'_>, payload: &mut String| {
                stmt.raw_bind_parameter(1, id.as_str())?;
                stmt.raw_bind_parameter(2, priority)?;
                stmt.raw_bind_parameter(3, now)?;
                for (i, item) in run.iter().enumerate() {
                    payload.clear();
                    write_json(payload, &item.payload)?;
                    stmt.raw_bind_parameter(4 + 2 * i, &item.key)?;
                    stmt.raw_bind_parameter(5 + 2 * i, payload.as_str())?;
                }
                stmt.raw_execute()
            };
            bind(&mut stmt, &mut payload).map_err(direct(SUBMIT))?;
            rest = tail;
        }
        Ok(())
    }

    async fn lanes(&self, tx: &mut WriteTx) -> Result<[Vec<Lane>; 3], Error> {
        let mut stmt = tx.conn().prepare_cached(LANES).map_err(direct(CLAIM))?;
        let mut rows = stmt.query([]).map_err(direct(CLAIM))?;
        let mut lanes: [Vec<Lane>; 3] = Default::default();
        while let Some(row) = rows.next().map_err(direct(CLAIM))? {
            let lane = |row: &rusqlite::Row<'_>| -> rusqlite::Result<(i64, Lane)> {
                let queued: i64 = row.get(5)?;
                Ok((
                    row.get(2)?,
                    Lane {
                        job: row.get(0)?,
                        tenant: row.get(1)?,
                        seq: row.get(3)?,
                        served: row.get(4)?,
                        tenant_served: row.get(6)?,
                        cap: queued.max(0) as u64,
                        taken: 0,
                    },
                ))
            };
            let (p, lane) = lane(row).map_err(direct(CLAIM))?;
            let Some(p) = from_db_index(p) else {
                return Err(Error::Corrupt {
                    message: format!("a job has the priority {p}"),
                });
            };
            lanes[db_index(p)].push(lane);
        }
        Ok(lanes)
    }

    async fn in_flight(&self, tx: &mut WriteTx, tenant: &str) -> Result<i64, Error> {
        let mut stmt = tx.conn().prepare_cached(IN_FLIGHT).map_err(direct(CLAIM))?;
        stmt.query_row(named_params! {"$1": tenant}, |r| r.get(0))
            .map_err(direct(CLAIM))
    }

    async fn take(
        &self,
        tx: &mut WriteTx,
        worker: &str,
        until: f64,
        priority: Priority,
        asks: &[(&str, i64)],
        now: f64,
    ) -> Result<Vec<Taken>, Error> {
        // Per job, one cached statement leases its oldest available items and answers
        // them (their attempts already counted).
        let mut stmt = tx
            .conn()
            .prepare_cached(
                "UPDATE items SET state = 'leased', lease_owner = ?1, lease_until = ?2, \
                 attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM items \
                 WHERE job_id = ?3 AND state = 'queued' AND available_at <= ?4 \
                 ORDER BY id LIMIT ?5) \
                 RETURNING id, key, payload, attempts",
            )
            .map_err(direct(CLAIM))?;
        let mut taken = Vec::new();
        for (job, n) in asks {
            let start = taken.len();
            let mut rows = stmt
                .query((worker, until, *job, now, *n))
                .map_err(direct(CLAIM))?;
            while let Some(row) = rows.next().map_err(direct(CLAIM))? {
                let t = |row: &rusqlite::Row<'_>| -> rusqlite::Result<Taken> {
                    Ok(Taken {
                        id: row.get(0)?,
                        job_id: (*job).to_owned(),
                        key: row.get(1)?,
                        payload: row.get(2)?,
                        attempts: row.get(3)?,
                        priority,
                    })
                };
                taken.push(t(row).map_err(direct(CLAIM))?);
            }
            // `RETURNING` answers in no set order; oldest first, as picked.
            taken[start..].sort_unstable_by_key(|t| t.id);
        }
        Ok(taken)
    }

    async fn serve_job(
        &self,
        tx: &mut WriteTx,
        job: &str,
        taken: i64,
        stamp: i64,
        now: f64,
    ) -> Result<ClaimedJob, Error> {
        let mut stmt = tx.conn().prepare_cached(SERVE_JOB).map_err(direct(CLAIM))?;
        let served = stmt
            .query_row(
                named_params! {"$1": job, "$2": taken, "$3": stamp, "$4": now},
                |r| {
                    Ok(ClaimedJob {
                        tenant: r.get(0)?,
                        handler: r.get(1)?,
                        params: r.get(2)?,
                        max_batch_size: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(direct(CLAIM))?;
        served.ok_or_else(|| Error::Corrupt {
            message: format!("claimed items belong to a missing job {job}"),
        })
    }

    async fn serve_tenant(&self, tx: &mut WriteTx, tenant: &str, stamp: i64) -> Result<(), Error> {
        let mut stmt = tx
            .conn()
            .prepare_cached(SERVE_TENANT)
            .map_err(direct(CLAIM))?;
        stmt.execute(named_params! {"$1": tenant, "$2": stamp})
            .map_err(direct(CLAIM))?;
        Ok(())
    }

    async fn finish_leased(
        &self,
        tx: &mut WriteTx,
        worker: &str,
        ids: &[i64],
    ) -> Result<Vec<(i64, String)>, Error> {
        let mut stmt = tx
            .conn()
            .prepare_cached(
                "UPDATE items SET state = 'done', lease_owner = NULL, lease_until = NULL \
                 WHERE id IN (SELECT value FROM json_each(?1)) AND state = 'leased' \
                 AND lease_owner = ?2 RETURNING id, job_id",
            )
            .map_err(direct(COMPLETE))?;
        let held = stmt
            .query_map((id_list(ids), worker), |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(direct(COMPLETE))?
            .collect::<rusqlite::Result<Vec<(i64, String)>>>()
            .map_err(direct(COMPLETE))?;
        Ok(held)
    }

    async fn insert_results(
        &self,
        tx: &mut WriteTx,
        rows: &[(i64, &str)],
        now: f64,
    ) -> Result<Vec<i64>, Error> {
        // Runs of up to `MAX_ROWS` rows, each one cached multi-row `INSERT`. A row whose item
        // already has a result (the unique key's backstop; an item just taken from its lease
        // has none) fails its run's statement, which SQLite then undoes alone; that run is
        // inserted again row by row, each such row changing nothing.
        let mut inserted = Vec::with_capacity(rows.len());
        let mut rest = rows;
        while !rest.is_empty() {
            let (run, tail) = rest.split_at(run_len(rest.len()));
            let mut stmt = tx
                .conn()
                .prepare_cached(insert_results_sql(run.len()))
                .map_err(direct(COMPLETE))?;
            stmt.raw_bind_parameter(1, now).map_err(direct(COMPLETE))?;
            for (i, (id, result)) in run.iter().enumerate() {
                stmt.raw_bind_parameter(2 + 2 * i, id)
                    .map_err(direct(COMPLETE))?;
                stmt.raw_bind_parameter(3 + 2 * i, result)
                    .map_err(direct(COMPLETE))?;
            }
            match stmt.raw_execute() {
                Ok(_) => inserted.extend(run.iter().map(|(id, _)| *id)),
                Err(e)
                    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) =>
                {
                    drop(stmt);
                    insert_results_one_by_one(tx, run, now, &mut inserted)?;
                }
                Err(e) => return Err(direct(COMPLETE)(e)),
            }
            rest = tail;
        }
        Ok(inserted)
    }

    async fn adjust_job(
        &self,
        tx: &mut WriteTx,
        job: &str,
        d: Delta,
        now: f64,
    ) -> Result<(), Error> {
        const W: &str = "updating a job's counts";
        let mut stmt = tx.conn().prepare_cached(ADJUST_JOB).map_err(direct(W))?;
        stmt.execute(named_params! {
            "$1": job,
            "$2": d.succeeded,
            "$3": d.failed,
            "$4": d.cancelled,
            "$5": now,
            "$6": d.queued,
        })
        .map_err(direct(W))?;
        Ok(())
    }
}

/// Inserts `rows` one statement each, skipping those whose item already has a result;
/// adds the ids inserted to `inserted`.
fn insert_results_one_by_one(
    tx: &WriteTx,
    rows: &[(i64, &str)],
    now: f64,
    inserted: &mut Vec<i64>,
) -> Result<(), Error> {
    let mut stmt = tx
        .conn()
        .prepare_cached(
            "INSERT INTO results (item_id, result, recorded_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (item_id) DO NOTHING",
        )
        .map_err(direct(COMPLETE))?;
    for (id, result) in rows {
        if stmt.execute((id, result, now)).map_err(direct(COMPLETE))? > 0 {
            inserted.push(*id);
        }
    }
    Ok(())
}

/// Most rows one multi-row `INSERT` writes.
const MAX_ROWS: usize = 128;

/// The rows of the next run out of `left`: the largest power of two up to [`MAX_ROWS`].
fn run_len(left: usize) -> usize {
    debug_assert!(left > 0);
    if left >= MAX_ROWS {
        MAX_ROWS
    } else {
        1 << left.ilog2()
    }
}

/// `INSERT`s of `n` rows (`n` a power of two up to [`MAX_ROWS`]), built once each.
fn multi_row_sql(
    cache: &'static OnceLock<Vec<String>>,
    head: &str,
    row: impl Fn(usize) -> String,
    n: usize,
) -> &'static str {
    let all = cache.get_or_init(|| {
        (0..=MAX_ROWS.ilog2())
            .map(|k| {
                let rows: Vec<String> = (0..1usize << k).map(&row).collect();
                format!("{head} VALUES {}", rows.join(", "))
            })
            .collect()
    });
    &all[n.ilog2() as usize]
}

/// A job's items: `?1` the job, `?2` the priority, `?3` the time; then per row its key and
/// its payload.
fn insert_items_sql(n: usize) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    multi_row_sql(
        &SQL,
        "INSERT INTO items (job_id, key, payload, priority, state, available_at)",
        |i| format!("(?1, ?{}, ?{}, ?2, 'queued', ?3)", 4 + 2 * i, 5 + 2 * i),
        n,
    )
}

/// Results: `?1` the time; then per row the item's id and the result.
fn insert_results_sql(n: usize) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    multi_row_sql(
        &SQL,
        "INSERT INTO results (item_id, result, recorded_at)",
        |i| format!("(?{}, ?{}, ?1)", 2 + 2 * i, 3 + 2 * i),
        n,
    )
}

/// Appends `value`'s JSON text to `out`.
fn write_json(out: &mut String, value: &serde_json::Value) -> rusqlite::Result<()> {
    use std::fmt::Write;
    write!(out, "{value}").map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

    use std::path::PathBuf;

    use super::*;
    use crate::sqlite::scratch::job;
    use crate::store::Store;

    /// A fresh directory for one test's store.
    fn scratch(name: &str) -> PathBuf {
        crate::sqlite::scratch::scratch("writes", name)
    }

    #[test]
    fn runs_are_powers_of_two_up_to_the_most_rows() {
        let runs = |mut n: usize| {
            let mut out = Vec::new();
            while n > 0 {
                out.push(run_len(n));
                n -= run_len(n);
            }
            out
        };
        assert_eq!(runs(1), vec![1]);
        assert_eq!(runs(100), vec![64, 32, 4]);
        assert_eq!(runs(128), vec![128]);
        assert_eq!(runs(300), vec![128, 128, 32, 8, 4]);
        assert_eq!(
            insert_results_sql(2),
            "INSERT INTO results (item_id, result, recorded_at) VALUES (?2, ?3, ?1), (?4, ?5, ?1)"
        );
        assert!(insert_items_sql(128).ends_with("(?1, ?258, ?259, ?2, 'queued', ?3)"));
    }

    /// A job of several runs: every item stored once, in order, with its key and payload.
    #[tokio::test]
    async fn a_job_of_several_runs_stores_every_item_in_order() {
        let dir = scratch("runs");
        let store = SqliteStore::open(dir.join("s.db")).await.unwrap();
        let submitted = store.submit_job(job(300)).await.unwrap();
        let tx = store.begin_write("testing").await.unwrap();
        let rows: Vec<(i64, String, String, String)> = tx
            .conn()
            .prepare("SELECT id, job_id, key, payload FROM items ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        drop(tx);
        assert_eq!(rows.len(), 300);
        for (i, (id, job_id, key, payload)) in rows.iter().enumerate() {
            assert_eq!(*id, i as i64 + 1);
            assert_eq!(job_id, submitted.job.id.as_str());
            assert_eq!(key, &format!("k{i}"));
            assert_eq!(payload, &format!("{{\"i\":{i}}}"));
        }
        let job = store.job("", &submitted.job.id).await.unwrap().unwrap();
        assert_eq!(job.total, 300);
        drop(store);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A run with an item that already has a result: the others are inserted, that one
    /// keeps its result and is not counted.
    #[tokio::test]
    async fn a_result_already_recorded_is_kept_and_the_rest_of_its_run_inserted() {
        let dir = scratch("results");
        let store = SqliteStore::open(dir.join("s.db")).await.unwrap();
        store.submit_job(job(5)).await.unwrap();
        let mut tx = store.begin_write("testing").await.unwrap();
        tx.conn()
            .execute(
                "INSERT INTO results (item_id, result, recorded_at) VALUES (2, '\"old\"', 0)",
                [],
            )
            .unwrap();
        let rows = [(1, "1"), (2, "2"), (3, "3"), (4, "4"), (5, "5")];
        let inserted = store.insert_results(&mut tx, &rows, 1.0).await.unwrap();
        assert_eq!(inserted, vec![1, 3, 4, 5]);
        let stored: Vec<(i64, String)> = tx
            .conn()
            .prepare("SELECT item_id, result FROM results ORDER BY item_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let want: Vec<(i64, String)> = [(1, "1"), (2, "\"old\""), (3, "3"), (4, "4"), (5, "5")]
            .iter()
            .map(|(i, r)| (*i, (*r).to_owned()))
            .collect();
        assert_eq!(stored, want);
        store.commit_write(tx, "testing").await.unwrap();
        drop(store);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
