//! What both backends share: validation of new jobs, the job-status rule as one SQL
//! statement, row decoding, paging, the queue-full retry hint, and in-process wake-ups.
//!
//! Both drivers accept `$N` placeholders, so the statements here run unchanged on SQLite
//! and PostgreSQL.

use std::collections::HashSet;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};
use tokio::sync::Notify;

use crate::backend::TenantBacklog;
use crate::error::{json, sql, Error};
use crate::options::StoreOptions;
use crate::types::{
    from_db_index, hex, ApiKey, DeadLetter, ItemStatus, JobId, JobLimits, JobRecord, JobStatus,
    NewJob, Page, Priority, QueueDepth, ResultRow,
};

/// The record of a job about to be inserted from `job`: `pending`, or `completed` at once
/// when it has no items.
pub(crate) fn new_job_record(id: JobId, job: &NewJob, now: f64) -> JobRecord {
    let (status, completed_at) = if job.items.is_empty() {
        (JobStatus::Completed, Some(now))
    } else {
        (JobStatus::Pending, None)
    };
    JobRecord {
        id,
        tenant: job.tenant.clone(),
        handler: job.handler.clone(),
        params: job.params.clone(),
        priority: job.priority,
        status,
        total: job.items.len() as u64,
        succeeded: 0,
        failed: 0,
        cancelled: 0,
        created_at: now,
        started_at: None,
        completed_at,
        error: None,
        limits: job.limits,
    }
}

/// The job columns a job row decodes from (`job_from_row`, `JobColumns`), in order.
pub(crate) const JOB_COLUMNS: &str = "id, tenant, handler, CAST(params AS TEXT), priority, \
     status, total, succeeded, failed, cancelled, created_at, started_at, completed_at, error, \
     timeout_seconds, max_batch_size";

/// A page of a job's results (`$1` tenant, `$2` job, `$3` after this item id, `$4` limit):
/// item id, key, state, result, error. The job's tenant is checked by the join; only an
/// empty page needs [`JOB_EXISTS`], to tell "no such job" from "no more items".
pub(crate) const RESULTS_PAGE: &str = "SELECT i.id, i.key, i.state, CAST(r.result AS TEXT), \
     i.last_error FROM jobs j JOIN items i ON i.job_id = j.id \
     LEFT JOIN results r ON r.item_id = i.id \
     WHERE j.tenant = $1 AND j.id = $2 AND i.id > $3 ORDER BY i.id LIMIT $4";

/// Whether the job `$2` of tenant `$1` exists.
pub(crate) const JOB_EXISTS: &str = "SELECT 1 FROM jobs WHERE tenant = $1 AND id = $2";

/// Per priority: unfinished jobs, queued items, items in flight ([`queue_depths_from`]
/// reads its rows). From the jobs' counters, not by counting items: unfinished jobs, and
/// cancelled ones whose items are still in flight (`jobs_cancelled_in_flight`).
pub(crate) const QUEUE_DEPTHS: &str = "SELECT priority, COUNT(*), \
     CAST(COALESCE(SUM(queued), 0) AS BIGINT), \
     CAST(COALESCE(SUM(total - succeeded - failed - cancelled - queued), 0) AS BIGINT) \
     FROM jobs WHERE status IN ('pending', 'processing') GROUP BY priority \
     UNION ALL \
     SELECT priority, CAST(0 AS BIGINT), CAST(0 AS BIGINT), \
     CAST(COALESCE(SUM(total - succeeded - failed - cancelled - queued), 0) AS BIGINT) \
     FROM jobs WHERE status = 'cancelled' \
     AND total > succeeded + failed + cancelled + queued GROUP BY priority";

/// The queue depths of every priority (high first) from [`QUEUE_DEPTHS`]' rows.
pub(crate) fn queue_depths_from(
    rows: &[(i64, i64, i64, i64)],
    options: &StoreOptions,
) -> Vec<QueueDepth> {
    let mut depths = Priority::DESCENDING.map(|p| QueueDepth {
        priority: p,
        unfinished_jobs: 0,
        limit: options.limit(p),
        queued_items: 0,
        in_flight_items: 0,
    });
    for &(p, jobs, queued, in_flight) in rows {
        if let Some(d) = usize::try_from(p).ok().and_then(|p| depths.get_mut(p)) {
            d.unfinished_jobs += jobs.max(0) as u64;
            d.queued_items += queued.max(0) as u64;
            d.in_flight_items += in_flight.max(0) as u64;
        }
    }
    depths.to_vec()
}

/// The most rows one page holds; larger limits are clamped (and 0 becomes 1).
pub(crate) const MAX_PAGE: usize = 10_000;

/// Clamps a page size.
pub(crate) fn page_limit(limit: usize) -> usize {
    limit.clamp(1, MAX_PAGE)
}

/// Cuts rows fetched with `LIMIT limit + 1` into a page.
pub(crate) fn page<T>(mut rows: Vec<T>, limit: usize, cursor: impl Fn(&T) -> i64) -> Page<T> {
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(cursor)
    } else {
        None
    };
    Page {
        items: rows,
        next_cursor,
    }
}

/// Updates a job's counters by the given deltas and re-derives its status (the rule of
/// [`JobStatus`]): `$1` job id, `$2` succeeded, `$3` failed, `$4` cancelled, `$5` now,
/// `$6` queued.
///
/// Right-hand sides see the old row, hence the deltas repeated in the conditions.
pub(crate) const ADJUST_JOB: &str = "UPDATE jobs SET
    succeeded = succeeded + $2,
    failed = failed + $3,
    cancelled = cancelled + $4,
    queued = queued + $6,
    status = CASE
        WHEN status = 'cancelled' THEN 'cancelled'
        WHEN succeeded + $2 + failed + $3 + cancelled + $4 >= total
            THEN CASE WHEN total > 0 AND failed + $3 >= total THEN 'failed' ELSE 'completed' END
        WHEN started_at IS NULL THEN 'pending'
        ELSE 'processing' END,
    completed_at = CASE
        WHEN status = 'cancelled' THEN completed_at
        WHEN succeeded + $2 + failed + $3 + cancelled + $4 >= total THEN COALESCE(completed_at, $5)
        ELSE NULL END,
    error = CASE
        WHEN status = 'cancelled' THEN error
        WHEN total > 0 AND failed + $3 >= total
            THEN 'every item was dead-lettered'
        ELSE NULL END
    WHERE id = $1";

/// Counter changes of one job, applied with [`ADJUST_JOB`].
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Delta {
    pub(crate) succeeded: i64,
    pub(crate) failed: i64,
    pub(crate) cancelled: i64,
    /// Items queued again (retried, released, rescued, redriven).
    pub(crate) queued: i64,
}

/// The window over which the queue-full hint measures how fast jobs finish.
pub(crate) const RETRY_WINDOW_SECS: f64 = 300.0;

/// `Retry-After` for a full queue: about how long until one of its jobs finishes, judged by
/// how many finished in the last five minutes; between 1 and 60 seconds.
pub(crate) fn retry_after_secs(finished_in_window: i64) -> u64 {
    if finished_in_window <= 0 {
        return 60;
    }
    ((RETRY_WINDOW_SECS / finished_in_window as f64).ceil() as u64).clamp(1, 60)
}

/// `Retry-After` for a tenant over its queued-items quota: how long until `excess` more of
/// its items are claimed, at the rate its unfinished jobs have been claimed since the first
/// started; between 1 and 60 seconds (60 when nothing has been claimed yet).
pub(crate) fn quota_retry_after_secs(backlog: &TenantBacklog, excess: u64, now: f64) -> u64 {
    let elapsed = backlog.since.map_or(0.0, |t| now - t);
    if backlog.claimed <= 0 || elapsed <= 0.0 {
        return 60;
    }
    let per_sec = backlog.claimed as f64 / elapsed;
    ((excess as f64 / per_sec).ceil() as u64).clamp(1, 60)
}

/// Checks a new job before any write.
pub(crate) fn validate(job: &NewJob) -> Result<(), Error> {
    let invalid = |message: String| Err(Error::InvalidJob { message });
    if job.handler.is_empty() {
        return invalid("the handler name is empty".into());
    }
    for (what, s) in [("tenant", &job.tenant), ("handler", &job.handler)] {
        if s.contains('\0') {
            return invalid(format!("the {what} contains a NUL character"));
        }
    }
    let mut keys = HashSet::with_capacity(job.items.len());
    for item in &job.items {
        if item.key.contains('\0') {
            return invalid(format!("item key {:?} contains a NUL character", item.key));
        }
        if !keys.insert(item.key.as_str()) {
            return invalid(format!("item key {:?} appears twice", item.key));
        }
    }
    Ok(())
}

/// The SHA-256 of an API key, hex: what `api_keys.key_hash` holds.
pub(crate) fn key_hash(plaintext: &str) -> String {
    hex(&Sha256::digest(plaintext.as_bytes()))
}

/// A new API key secret: `fry_` and 256 random bits from the operating system.
pub(crate) fn new_secret() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("fry_{}", hex(&b))
}

/// Seconds as `f64`.
pub(crate) fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// In-process wake-ups for [`Store::wait_for_work`](crate::Store::wait_for_work).
///
/// A wake wakes every current waiter and leaves one permit for the next, so a wake that
/// lands between a worker's empty claim and its wait is not lost.
#[derive(Debug, Default)]
pub(crate) struct Wakeups(Notify);

impl Wakeups {
    pub(crate) fn wake(&self) {
        self.0.notify_waiters();
        self.0.notify_one();
    }

    pub(crate) async fn wait(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.0.notified())
            .await
            .is_ok()
    }
}

fn get<'r, R, T>(row: &'r R, i: usize, what: &'static str) -> Result<T, Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(i).map_err(sql(what))
}

/// A job row's columns as stored, in the order of the shared queries' `JOB_COLUMNS`: what
/// either driver (sqlx, or the SQLite store's direct readers) reads before
/// [`into_record`](Self::into_record) checks and converts it.
#[derive(Debug)]
pub(crate) struct JobColumns {
    pub(crate) id: String,
    pub(crate) tenant: String,
    pub(crate) handler: String,
    /// JSON text.
    pub(crate) params: String,
    pub(crate) priority: i64,
    pub(crate) status: String,
    pub(crate) total: i64,
    pub(crate) succeeded: i64,
    pub(crate) failed: i64,
    pub(crate) cancelled: i64,
    pub(crate) created_at: f64,
    pub(crate) started_at: Option<f64>,
    pub(crate) completed_at: Option<f64>,
    pub(crate) error: Option<String>,
    pub(crate) timeout_seconds: Option<f64>,
    pub(crate) max_batch_size: Option<i64>,
}

impl JobColumns {
    /// The job they describe; `Corrupt` for a priority, status or parameters this build
    /// cannot read.
    pub(crate) fn into_record(self) -> Result<JobRecord, Error> {
        let JobColumns {
            id,
            tenant,
            handler,
            params,
            priority,
            status,
            total,
            succeeded,
            failed,
            cancelled,
            created_at,
            started_at,
            completed_at,
            error,
            timeout_seconds,
            max_batch_size,
        } = self;
        let count = |n: i64| n.max(0) as u64;
        Ok(JobRecord {
            params: json(&params, "job parameters")?,
            priority: from_db_index(priority).ok_or_else(|| Error::Corrupt {
                message: format!("job {id} has priority {priority}"),
            })?,
            // A job cancelled with a reason was failed by the service (its deadline passed).
            status: match JobStatus::parse(&status) {
                Some(JobStatus::Cancelled) if error.is_some() => JobStatus::Failed,
                Some(s) => s,
                None => {
                    return Err(Error::Corrupt {
                        message: format!("job {id} has status {status:?}"),
                    })
                }
            },
            tenant,
            handler,
            total: count(total),
            succeeded: count(succeeded),
            failed: count(failed),
            cancelled: count(cancelled),
            created_at,
            started_at,
            completed_at,
            error,
            limits: JobLimits {
                timeout_seconds,
                max_batch_size: max_batch_size.map(|n| n.max(1) as u64),
            },
            id: JobId::from(id),
        })
    }
}

/// Decodes the job columns in this order: id, tenant, handler, params (text),
/// priority, status, total, succeeded, failed, cancelled, created_at, started_at,
/// completed_at, error, timeout_seconds, max_batch_size.
pub(crate) fn job_from_row<R>(row: &R) -> Result<JobRecord, Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<f64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
{
    const W: &str = "reading a job";
    JobColumns {
        id: get(row, 0, W)?,
        tenant: get(row, 1, W)?,
        handler: get(row, 2, W)?,
        params: get(row, 3, W)?,
        priority: get(row, 4, W)?,
        status: get(row, 5, W)?,
        total: get(row, 6, W)?,
        succeeded: get(row, 7, W)?,
        failed: get(row, 8, W)?,
        cancelled: get(row, 9, W)?,
        created_at: get(row, 10, W)?,
        started_at: get(row, 11, W)?,
        completed_at: get(row, 12, W)?,
        error: get(row, 13, W)?,
        timeout_seconds: get(row, 14, W)?,
        max_batch_size: get(row, 15, W)?,
    }
    .into_record()
}

/// A results row's columns as stored: item id, key, state, result (JSON text or NULL),
/// last error.
#[derive(Debug)]
pub(crate) struct ResultColumns {
    pub(crate) item_id: i64,
    pub(crate) key: String,
    pub(crate) state: String,
    pub(crate) result: Option<String>,
    pub(crate) error: Option<String>,
}

impl ResultColumns {
    /// The row they describe; `Corrupt` for a state or result this build cannot read.
    pub(crate) fn into_row(self) -> Result<ResultRow, Error> {
        self.into_row_with(|r| json(&r, "a result"))
    }

    /// The row they describe, the result's text read by `result`; `Corrupt` for a state
    /// this build cannot read.
    pub(crate) fn into_row_with<T>(
        self,
        result: impl FnOnce(String) -> Result<T, Error>,
    ) -> Result<ResultRow<T>, Error> {
        let ResultColumns {
            item_id,
            key,
            state,
            result: text,
            error,
        } = self;
        Ok(ResultRow {
            item_id,
            key,
            status: ItemStatus::from_state(&state).ok_or_else(|| Error::Corrupt {
                message: format!("item {item_id} has state {state:?}"),
            })?,
            result: text.map(result).transpose()?,
            error,
        })
    }
}

/// Decodes: item id, key, state, result (text or NULL), last error.
pub(crate) fn result_from_row<R>(row: &R) -> Result<ResultRow, Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    const W: &str = "reading results";
    ResultColumns {
        item_id: get(row, 0, W)?,
        key: get(row, 1, W)?,
        state: get(row, 2, W)?,
        result: get(row, 3, W)?,
        error: get(row, 4, W)?,
    }
    .into_row()
}

/// Decodes: item id, job id, key, payload (text), error, attempts, dead_at.
pub(crate) fn dead_letter_from_row<R>(row: &R) -> Result<DeadLetter, Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
{
    const W: &str = "reading dead letters";
    let payload: String = get(row, 3, W)?;
    Ok(DeadLetter {
        item_id: get(row, 0, W)?,
        job_id: JobId::from(get::<R, String>(row, 1, W)?),
        key: get(row, 2, W)?,
        payload: json(&payload, "a payload")?,
        error: get(row, 4, W)?,
        attempts: get::<R, i64>(row, 5, W)?.clamp(0, u32::MAX as i64) as u32,
        dead_at: get(row, 6, W)?,
    })
}

/// Decodes: id, tenant, name, created_at, revoked_at.
pub(crate) fn api_key_from_row<R>(row: &R) -> Result<ApiKey, Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<f64>: Decode<'r, R::Database> + Type<R::Database>,
{
    const W: &str = "reading API keys";
    Ok(ApiKey {
        id: get(row, 0, W)?,
        tenant: get(row, 1, W)?,
        name: get(row, 2, W)?,
        created_at: get(row, 3, W)?,
        revoked_at: get(row, 4, W)?,
    })
}

/// Applies every migration newer than the recorded version, inside the caller's
/// transaction (each backend opens it its own way: `BEGIN IMMEDIATE`, an advisory lock).
/// `version_type` is the SQL type of `schema_version.version` on this backend. Returns how
/// many migrations it applied.
pub(crate) async fn migrate<DB>(
    conn: &mut DB::Connection,
    migrations: &[(i64, &str)],
    version_type: &str,
) -> Result<usize, Error>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    usize: ColumnIndex<DB::Row>,
{
    const W: &str = "migrating the store";
    sqlx::raw_sql(&format!(
        "CREATE TABLE IF NOT EXISTS schema_version (version {version_type} NOT NULL)"
    ))
    .execute(&mut *conn)
    .await
    .map_err(sql(W))?;
    let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
        .fetch_one(&mut *conn)
        .await
        .map_err(sql(W))?;
    let current = current.unwrap_or(0);
    let supported = migrations.last().map_or(0, |(v, _)| *v);
    if current > supported {
        return Err(Error::SchemaTooNew {
            found: current,
            supported,
        });
    }
    let mut applied = 0;
    for (version, script) in migrations.iter().filter(|(v, _)| *v > current) {
        applied += 1;
        sqlx::raw_sql(script)
            .execute(&mut *conn)
            .await
            .map_err(sql(W))?;
        sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
            .bind(*version)
            .execute(&mut *conn)
            .await
            .map_err(sql(W))?;
        tracing::info!(version, "applied store migration");
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{NewItem, Priority};
    use serde_json::json;

    #[test]
    fn retry_hint_tracks_the_finishing_rate() {
        assert_eq!(retry_after_secs(0), 60);
        assert_eq!(retry_after_secs(1), 60);
        assert_eq!(retry_after_secs(30), 10);
        assert_eq!(retry_after_secs(100_000), 1);
    }

    #[test]
    fn duplicate_keys_are_invalid() {
        let item = |k: &str| NewItem {
            key: k.into(),
            payload: json!(null),
        };
        let mut job = NewJob {
            tenant: String::new(),
            handler: "h".into(),
            params: json!({}),
            priority: Priority::Low,
            items: vec![item("a"), item("b")],
            idempotency_key: None,
            limits: JobLimits::default(),
        };
        assert!(validate(&job).is_ok());
        job.items.push(item("a"));
        assert!(matches!(validate(&job), Err(Error::InvalidJob { .. })));
        job.items.pop();
        job.handler.clear();
        assert!(matches!(validate(&job), Err(Error::InvalidJob { .. })));
    }

    #[test]
    fn pages_cut_at_the_limit() {
        let p = page(vec![1i64, 2, 3], 2, |n| *n);
        assert_eq!(p.items, [1, 2]);
        assert_eq!(p.next_cursor, Some(2));
        let p = page(vec![1i64, 2], 2, |n| *n);
        assert_eq!(p.next_cursor, None);
    }

    #[test]
    fn key_hash_is_sha256_hex() {
        assert_eq!(
            key_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let s = new_secret();
        assert!(s.starts_with("fry_") && s.len() == 68);
    }
}
