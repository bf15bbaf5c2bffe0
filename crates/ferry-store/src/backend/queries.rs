//! [`Queries`]: the statements SQLite and PostgreSQL run unchanged (both accept `$N`
//! placeholders and `CAST(json AS TEXT)`), written once over any sqlx driver: reads of
//! jobs, results, dead letters, queue depths and API keys, and the small writes that every
//! backend shares (job counters, dead letters, retries, the result TTL, API keys).

use std::future::Future;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use super::fair_queries::FairQueries;
use crate::common::{
    api_key_from_row, dead_letter_from_row, job_from_row, page, page_limit, queue_depths_from,
    result_from_row, Delta, ADJUST_JOB, JOB_COLUMNS, JOB_EXISTS, QUEUE_DEPTHS, RESULTS_PAGE,
};
use crate::error::{sql, Error};
use crate::options::StoreOptions;
use crate::types::{
    db_index, ApiKey, DeadLetter, JobId, JobRecord, Page, Priority, QueueDepth, ResultRow,
};

/// Unfinished jobs of a priority ([`Queries::count_unfinished`]).
pub(crate) const COUNT_UNFINISHED: &str =
    "SELECT COUNT(*) FROM jobs WHERE priority = $1 AND status IN ('pending', 'processing')";

/// Jobs of a priority finished since a time ([`Queries::count_finished_since`]).
pub(crate) const COUNT_FINISHED_SINCE: &str =
    "SELECT COUNT(*) FROM jobs WHERE priority = $1 AND completed_at >= $2";

/// A connection of the driver `DB`.
type Conn<DB> = <DB as Database>::Connection;

/// The shared statements, for every driver that can run them (SQLite and PostgreSQL).
/// Reads take a pool; writes take the connection of the caller's transaction.
pub(crate) trait Queries: FairQueries {
    /// The tenant's job.
    fn job(
        pool: &Pool<Self>,
        tenant: &str,
        id: &JobId,
    ) -> impl Future<Output = Result<Option<JobRecord>, Error>> + Send;

    /// The tenant's jobs, newest first.
    fn list_jobs(
        pool: &Pool<Self>,
        tenant: &str,
        limit: usize,
        cursor: Option<i64>,
    ) -> impl Future<Output = Result<Page<JobRecord>, Error>> + Send;

    /// A page of the tenant's job's items with their results; `None` without such a job.
    fn results(
        pool: &Pool<Self>,
        tenant: &str,
        job_id: &JobId,
        after: Option<i64>,
        limit: usize,
    ) -> impl Future<Output = Result<Option<Page<ResultRow>>, Error>> + Send;

    /// A page of the tenant's dead letters, newest first.
    fn dead_letters(
        pool: &Pool<Self>,
        tenant: &str,
        limit: usize,
        cursor: Option<i64>,
    ) -> impl Future<Output = Result<Page<DeadLetter>, Error>> + Send;

    /// Unfinished jobs and queued and in-flight items per priority, high first.
    fn queue_depths(
        pool: &Pool<Self>,
        options: &StoreOptions,
    ) -> impl Future<Output = Result<Vec<QueueDepth>, Error>> + Send;

    /// Stores a new API key by its hash.
    fn insert_key(
        pool: &Pool<Self>,
        key: &ApiKey,
        hash: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// API keys of one tenant or all.
    fn list_keys(
        pool: &Pool<Self>,
        tenant: Option<&str>,
    ) -> impl Future<Output = Result<Vec<ApiKey>, Error>> + Send;

    /// Revokes an unrevoked key; whether there was one.
    fn revoke_key(
        pool: &Pool<Self>,
        id: &str,
        now: f64,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// The tenant of a live key, by its hash.
    fn tenant_for_key(
        pool: &Pool<Self>,
        hash: &str,
    ) -> impl Future<Output = Result<Option<String>, Error>> + Send;

    /// The tenant's job with this idempotency key.
    fn job_by_key(
        conn: &mut Conn<Self>,
        tenant: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<JobRecord>, Error>> + Send;

    /// A job, which must exist.
    fn job_by_id(
        conn: &mut Conn<Self>,
        id: &JobId,
    ) -> impl Future<Output = Result<JobRecord, Error>> + Send;

    /// Unfinished jobs of a priority.
    fn count_unfinished(
        conn: &mut Conn<Self>,
        priority: Priority,
    ) -> impl Future<Output = Result<i64, Error>> + Send;

    /// Jobs of a priority finished since `since`.
    fn count_finished_since(
        conn: &mut Conn<Self>,
        priority: Priority,
        since: f64,
    ) -> impl Future<Output = Result<i64, Error>> + Send;

    /// Updates a job's counters and re-derives its status ([`ADJUST_JOB`]).
    fn adjust(
        conn: &mut Conn<Self>,
        job: &str,
        delta: Delta,
        now: f64,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Marks a job cancelled at `now`, counting `items` more cancelled items; with a
    /// `reason`, the job reads `Failed` with it from then on (its deadline passed).
    fn mark_cancelled(
        conn: &mut Conn<Self>,
        id: &JobId,
        items: u64,
        now: f64,
        reason: Option<&str>,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Unfinished jobs whose `timeout_seconds` ran out by `now`: tenant, id, timeout.
    fn overdue_jobs(
        pool: &Pool<Self>,
        now: f64,
    ) -> impl Future<Output = Result<Vec<(String, JobId, f64)>, Error>> + Send;

    /// Over jobs finished since `since`: items that ended (succeeded or failed), the first
    /// `started_at` and the last `completed_at`.
    fn finished_since(
        pool: &Pool<Self>,
        since: f64,
    ) -> impl Future<Output = Result<(i64, Option<f64>, Option<f64>), Error>> + Send;

    /// Records (or replaces) an item's dead letter.
    fn insert_dead_letter(
        conn: &mut Conn<Self>,
        item_id: i64,
        tenant: &str,
        error: &str,
        attempts: i64,
        now: f64,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Queues a leased item again, claimable from `at`, keeping `error`.
    fn retry_later(
        conn: &mut Conn<Self>,
        item_id: i64,
        at: f64,
        error: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Deletes the finished jobs (nothing in flight) that finished before `before`, with
    /// everything they own; returns how many.
    fn sweep(conn: &mut Conn<Self>, before: f64)
        -> impl Future<Output = Result<u64, Error>> + Send;
}

impl<DB> Queries for DB
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> f64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> Option<f64>: Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> Option<String>: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn job(pool: &Pool<DB>, tenant: &str, id: &JobId) -> Result<Option<JobRecord>, Error> {
        // By id alone, the tenant compared here: given both, PostgreSQL without statistics
        // (a new store) may pick `jobs_tenant` and read every job of the tenant at each
        // status poll.
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(pool)
            .await
            .map_err(sql("reading a job"))?;
        let job = row.as_ref().map(job_from_row).transpose()?;
        Ok(job.filter(|j| j.tenant == tenant))
    }

    async fn list_jobs(
        pool: &Pool<DB>,
        tenant: &str,
        limit: usize,
        cursor: Option<i64>,
    ) -> Result<Page<JobRecord>, Error> {
        let limit = page_limit(limit);
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS}, seq FROM jobs WHERE tenant = $1 AND seq < $2 \
             ORDER BY seq DESC LIMIT $3"
        ))
        .bind(tenant)
        .bind(cursor.unwrap_or(i64::MAX))
        .bind(limit as i64 + 1)
        .fetch_all(pool)
        .await
        .map_err(sql("listing jobs"))?;
        let mut jobs = Vec::with_capacity(rows.len());
        for row in &rows {
            let seq: i64 = row.try_get(16).map_err(sql("listing jobs"))?;
            jobs.push((seq, job_from_row(row)?));
        }
        let p = page(jobs, limit, |(seq, _)| *seq);
        Ok(Page {
            items: p.items.into_iter().map(|(_, j)| j).collect(),
            next_cursor: p.next_cursor,
        })
    }

    async fn results(
        pool: &Pool<DB>,
        tenant: &str,
        job_id: &JobId,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Option<Page<ResultRow>>, Error> {
        const W: &str = "reading results";
        let limit = page_limit(limit);
        // The page in one statement, the job's tenant checked by the join; only an empty
        // page needs a second look, to tell "no such job" from "no more items".
        let rows = sqlx::query(RESULTS_PAGE)
            .bind(tenant)
            .bind(job_id.as_str())
            .bind(after.unwrap_or(0))
            .bind(limit as i64 + 1)
            .fetch_all(pool)
            .await
            .map_err(sql(W))?;
        if rows.is_empty() {
            let exists = sqlx::query(JOB_EXISTS)
                .bind(tenant)
                .bind(job_id.as_str())
                .fetch_optional(pool)
                .await
                .map_err(sql(W))?;
            if exists.is_none() {
                return Ok(None);
            }
        }
        let rows = rows
            .iter()
            .map(result_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(page(rows, limit, |r| r.item_id)))
    }

    async fn dead_letters(
        pool: &Pool<DB>,
        tenant: &str,
        limit: usize,
        cursor: Option<i64>,
    ) -> Result<Page<DeadLetter>, Error> {
        let limit = page_limit(limit);
        let rows = sqlx::query(
            "SELECT d.item_id, i.job_id, i.key, CAST(i.payload AS TEXT), d.error, d.attempts, \
             d.dead_at FROM dead_letters d JOIN items i ON i.id = d.item_id \
             WHERE d.tenant = $1 AND d.item_id < $2 ORDER BY d.item_id DESC LIMIT $3",
        )
        .bind(tenant)
        .bind(cursor.unwrap_or(i64::MAX))
        .bind(limit as i64 + 1)
        .fetch_all(pool)
        .await
        .map_err(sql("listing dead letters"))?;
        let rows = rows
            .iter()
            .map(dead_letter_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page(rows, limit, |d| d.item_id))
    }

    async fn queue_depths(
        pool: &Pool<DB>,
        options: &StoreOptions,
    ) -> Result<Vec<QueueDepth>, Error> {
        const W: &str = "reading queue depths";
        let rows = sqlx::query(QUEUE_DEPTHS)
            .fetch_all(pool)
            .await
            .map_err(sql(W))?;
        let rows = rows
            .iter()
            .map(|row| {
                Ok((
                    row.try_get(0).map_err(sql(W))?,
                    row.try_get(1).map_err(sql(W))?,
                    row.try_get(2).map_err(sql(W))?,
                    row.try_get(3).map_err(sql(W))?,
                ))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(queue_depths_from(&rows, options))
    }

    async fn insert_key(pool: &Pool<DB>, key: &ApiKey, hash: &str) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO api_keys (id, tenant, name, key_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(key.id.as_str())
        .bind(key.tenant.as_str())
        .bind(key.name.as_str())
        .bind(hash)
        .bind(key.created_at)
        .execute(pool)
        .await
        .map_err(sql("creating an API key"))?;
        Ok(())
    }

    async fn list_keys(pool: &Pool<DB>, tenant: Option<&str>) -> Result<Vec<ApiKey>, Error> {
        let rows = sqlx::query(
            "SELECT id, tenant, name, created_at, revoked_at FROM api_keys \
             WHERE CAST($1 AS TEXT) IS NULL OR tenant = $1 ORDER BY created_at, id",
        )
        .bind(tenant)
        .fetch_all(pool)
        .await
        .map_err(sql("listing API keys"))?;
        rows.iter().map(api_key_from_row).collect()
    }

    async fn revoke_key(pool: &Pool<DB>, id: &str, now: f64) -> Result<bool, Error> {
        let revoked = sqlx::query(
            "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING id",
        )
        .bind(id)
        .bind(now)
        .fetch_optional(pool)
        .await
        .map_err(sql("revoking an API key"))?;
        Ok(revoked.is_some())
    }

    async fn tenant_for_key(pool: &Pool<DB>, hash: &str) -> Result<Option<String>, Error> {
        sqlx::query_scalar("SELECT tenant FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
            .bind(hash)
            .fetch_optional(pool)
            .await
            .map_err(sql("checking an API key"))
    }

    async fn job_by_key(
        conn: &mut Conn<DB>,
        tenant: &str,
        key: &str,
    ) -> Result<Option<JobRecord>, Error> {
        let row = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE tenant = $1 AND idempotency_key = $2"
        ))
        .bind(tenant)
        .bind(key)
        .fetch_optional(conn)
        .await
        .map_err(sql("creating a job"))?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn job_by_id(conn: &mut Conn<DB>, id: &JobId) -> Result<JobRecord, Error> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id.as_str())
            .fetch_one(conn)
            .await
            .map_err(sql("reading a job"))?;
        job_from_row(&row)
    }

    async fn count_unfinished(conn: &mut Conn<DB>, priority: Priority) -> Result<i64, Error> {
        sqlx::query_scalar(COUNT_UNFINISHED)
            .bind(db_index(priority) as i64)
            .fetch_one(conn)
            .await
            .map_err(sql("creating a job"))
    }

    async fn count_finished_since(
        conn: &mut Conn<DB>,
        priority: Priority,
        since: f64,
    ) -> Result<i64, Error> {
        sqlx::query_scalar(COUNT_FINISHED_SINCE)
            .bind(db_index(priority) as i64)
            .bind(since)
            .fetch_one(conn)
            .await
            .map_err(sql("creating a job"))
    }

    async fn adjust(conn: &mut Conn<DB>, job: &str, d: Delta, now: f64) -> Result<(), Error> {
        sqlx::query(ADJUST_JOB)
            .bind(job)
            .bind(d.succeeded)
            .bind(d.failed)
            .bind(d.cancelled)
            .bind(now)
            .bind(d.queued)
            .execute(conn)
            .await
            .map_err(sql("updating a job's counts"))?;
        Ok(())
    }

    async fn mark_cancelled(
        conn: &mut Conn<DB>,
        id: &JobId,
        items: u64,
        now: f64,
        reason: Option<&str>,
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE jobs SET status = 'cancelled', completed_at = $2, \
             cancelled = cancelled + $3, queued = queued - $3, error = $4 WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(now)
        .bind(items as i64)
        .bind(reason)
        .execute(conn)
        .await
        .map_err(sql("cancelling a job"))?;
        Ok(())
    }

    async fn overdue_jobs(pool: &Pool<DB>, now: f64) -> Result<Vec<(String, JobId, f64)>, Error> {
        const W: &str = "reading overdue jobs";
        let rows = sqlx::query(
            "SELECT tenant, id, timeout_seconds FROM jobs WHERE timeout_seconds IS NOT NULL \
             AND status IN ('pending', 'processing') AND created_at + timeout_seconds <= $1",
        )
        .bind(now)
        .fetch_all(pool)
        .await
        .map_err(sql(W))?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get(1).map_err(sql(W))?;
                Ok((
                    row.try_get(0).map_err(sql(W))?,
                    JobId::from(id),
                    row.try_get(2).map_err(sql(W))?,
                ))
            })
            .collect()
    }

    async fn finished_since(
        pool: &Pool<DB>,
        since: f64,
    ) -> Result<(i64, Option<f64>, Option<f64>), Error> {
        const W: &str = "measuring throughput";
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(succeeded + failed), 0) AS BIGINT), MIN(started_at), \
             MAX(completed_at) FROM jobs WHERE status IN ('completed', 'failed', 'cancelled') \
             AND completed_at >= $1 AND started_at IS NOT NULL",
        )
        .bind(since)
        .fetch_one(pool)
        .await
        .map_err(sql(W))?;
        Ok((
            row.try_get(0).map_err(sql(W))?,
            row.try_get(1).map_err(sql(W))?,
            row.try_get(2).map_err(sql(W))?,
        ))
    }

    async fn insert_dead_letter(
        conn: &mut Conn<DB>,
        item_id: i64,
        tenant: &str,
        error: &str,
        attempts: i64,
        now: f64,
    ) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO dead_letters (item_id, tenant, error, attempts, dead_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (item_id) DO UPDATE SET \
             error = excluded.error, attempts = excluded.attempts, dead_at = excluded.dead_at",
        )
        .bind(item_id)
        .bind(tenant)
        .bind(error)
        .bind(attempts)
        .bind(now)
        .execute(conn)
        .await
        .map_err(sql("recording a failed item"))?;
        Ok(())
    }

    async fn retry_later(
        conn: &mut Conn<DB>,
        item_id: i64,
        at: f64,
        error: &str,
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE items SET state = 'queued', lease_owner = NULL, lease_until = NULL, \
             available_at = $2, last_error = $3 WHERE id = $1",
        )
        .bind(item_id)
        .bind(at)
        .bind(error)
        .execute(conn)
        .await
        .map_err(sql("recording a failed item"))?;
        Ok(())
    }

    async fn sweep(conn: &mut Conn<DB>, before: f64) -> Result<u64, Error> {
        // `RETURNING` rather than the driver's count of affected rows, which sqlx does not
        // offer over every driver.
        let deleted = sqlx::query(
            "DELETE FROM jobs WHERE status IN ('completed', 'failed', 'cancelled') \
             AND completed_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM items i WHERE i.job_id = jobs.id AND i.state = 'leased') \
             RETURNING id",
        )
        .bind(before)
        .fetch_all(conn)
        .await
        .map_err(sql("sweeping finished jobs"))?;
        Ok(deleted.len() as u64)
    }
}
