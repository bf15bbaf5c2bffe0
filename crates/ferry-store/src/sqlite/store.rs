//! [`SqliteStore`]: every [`Store`] operation as SQLite statements. Id lists travel as one
//! JSON array (`json_each`); bulk inserts are multi-row `INSERT`s of 500 rows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_core::BoxFuture;
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use crate::common::{
    self, api_key_from_row, dead_letter_from_row, job_from_row, page, page_limit, result_from_row,
    secs, Delta, Wakeups, ADJUST_JOB,
};
use crate::error::{json, sql, Error};
use crate::schedule::Plan;
use crate::sqlite::migrations;
use crate::store::Store;
use crate::types::{
    uuid_v4, ApiKey, ClaimedItem, DeadLetter, FailOutcome, IssuedKey, JobId, JobRecord, JobStatus,
    NewJob, Page, Priority, QueueDepth, ResultRow, Submitted,
};
use crate::StoreOptions;

const JOB_COLUMNS: &str = "id, tenant, handler, params, priority, status, total, succeeded, \
     failed, cancelled, created_at, started_at, completed_at, error";

/// Rows per multi-row `INSERT` (two bound values each, well under SQLite's 32,766).
const INSERT_CHUNK: usize = 500;

type Tx = Transaction<'static, Sqlite>;

/// The embedded store: one SQLite file in WAL mode, for one process.
///
/// Writes go through a single connection, each in a `BEGIN IMMEDIATE` transaction (SQLite
/// has one writer anyway; taking the lock up front means a transaction never fails half-way
/// to upgrade it). Reads use a pool of their own and are not blocked by writes (WAL).
/// `synchronous = NORMAL`: durable against a killed process, not against power loss.
#[derive(Debug)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    path: PathBuf,
    options: StoreOptions,
    wake: Wakeups,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` with default options, applying any
    /// pending migration.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        SqliteStore::open_with(path, StoreOptions::new()).await
    }

    /// Opens the store at `path` with `options`.
    pub async fn open_with(path: impl AsRef<Path>, options: StoreOptions) -> Result<Self, Error> {
        let path = path.as_ref().to_owned();
        let ctx = |source| Error::Sql {
            context: format!("opening the store {}", path.display()),
            source,
        };
        let connect = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(connect.clone())
            .await
            .map_err(ctx)?;
        migrations::apply(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections.get())
            .connect_with(connect)
            .await
            .map_err(ctx)?;
        Ok(SqliteStore {
            writer,
            reader,
            path,
            options,
            wake: Wakeups::default(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn now(&self) -> f64 {
        self.options.clock.now()
    }

    async fn begin(&self, what: &'static str) -> Result<Tx, Error> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(sql(what))
    }

    async fn submit_job_(&self, job: NewJob) -> Result<Submitted, Error> {
        const W: &str = "creating a job";
        common::validate(&job)?;
        let now = self.now();
        let params = job.params.to_string();
        let payloads: Vec<String> = job.items.iter().map(|i| i.payload.to_string()).collect();
        let mut tx = self.begin(W).await?;
        if let Some(key) = &job.idempotency_key {
            let row = sqlx::query(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE tenant = $1 AND idempotency_key = $2"
            ))
            .bind(&job.tenant)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await
            .map_err(sql(W))?;
            if let Some(row) = row {
                return Ok(Submitted {
                    job: job_from_row(&row)?,
                    created: false,
                });
            }
        }
        let priority = job.priority.index() as i64;
        let limit = self.options.limit(job.priority);
        let unfinished: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE priority = $1 AND status IN ('pending', 'processing')",
        )
        .bind(priority)
        .fetch_one(&mut *tx)
        .await
        .map_err(sql(W))?;
        if unfinished as u64 >= limit {
            let finished: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM jobs WHERE priority = $1 AND completed_at >= $2",
            )
            .bind(priority)
            .bind(now - common::RETRY_WINDOW_SECS)
            .fetch_one(&mut *tx)
            .await
            .map_err(sql(W))?;
            return Err(Error::QueueFull {
                priority: job.priority,
                limit,
                retry_after_secs: common::retry_after_secs(finished),
            });
        }
        let id = JobId::new();
        let total = job.items.len() as i64;
        let record = common::new_job_record(id.clone(), &job, now);
        sqlx::query(
            "INSERT INTO jobs (id, tenant, handler, params, priority, status, idempotency_key, \
             total, created_at, completed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(id.as_str())
        .bind(&job.tenant)
        .bind(&job.handler)
        .bind(&params)
        .bind(priority)
        .bind(record.status.as_str())
        .bind(&job.idempotency_key)
        .bind(total)
        .bind(now)
        .bind(record.completed_at)
        .execute(&mut *tx)
        .await
        .map_err(sql(W))?;
        for (items, payloads) in job
            .items
            .chunks(INSERT_CHUNK)
            .zip(payloads.chunks(INSERT_CHUNK))
        {
            let mut q = String::from(
                "INSERT INTO items (job_id, key, payload, priority, state, available_at) VALUES ",
            );
            for i in 0..items.len() {
                if i > 0 {
                    q.push_str(", ");
                }
                q.push_str(&format!(
                    "($1, ${}, ${}, $2, 'queued', $3)",
                    4 + 2 * i,
                    5 + 2 * i
                ));
            }
            let mut query = sqlx::query(&q)
                .persistent(false)
                .bind(id.as_str())
                .bind(priority)
                .bind(now);
            for (item, payload) in items.iter().zip(payloads) {
                query = query.bind(&item.key).bind(payload);
            }
            query.execute(&mut *tx).await.map_err(sql(W))?;
        }
        tx.commit().await.map_err(sql(W))?;
        self.wake.wake();
        Ok(Submitted {
            created: true,
            job: record,
        })
    }

    async fn job_(&self, tenant: &str, id: &JobId) -> Result<Option<JobRecord>, Error> {
        let row = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE tenant = $1 AND id = $2"
        ))
        .bind(tenant)
        .bind(id.as_str())
        .fetch_optional(&self.reader)
        .await
        .map_err(sql("reading a job"))?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn list_jobs_(
        &self,
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
        .fetch_all(&self.reader)
        .await
        .map_err(sql("listing jobs"))?;
        let mut jobs = Vec::with_capacity(rows.len());
        for row in &rows {
            let seq: i64 = row.try_get(14).map_err(sql("listing jobs"))?;
            jobs.push((seq, job_from_row(row)?));
        }
        let p = page(jobs, limit, |(seq, _)| *seq);
        Ok(Page {
            items: p.items.into_iter().map(|(_, j)| j).collect(),
            next_cursor: p.next_cursor,
        })
    }

    async fn claim_(
        &self,
        worker: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedItem>, Error> {
        const W: &str = "claiming items";
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now = self.now();
        let until = now + secs(lease);
        let mut tx = self.begin(W).await?;
        let mut plan = Plan::new(limit);
        let mut rows = Vec::new();
        for (p, n) in plan.first_pass() {
            if n > 0 {
                let got = take(&mut tx, worker, until, p, n, now).await?;
                plan.record(p, n, got.len());
                rows.extend(got);
            }
        }
        for p in Priority::ALL {
            let n = plan.fill(p);
            if n > 0 {
                let got = take(&mut tx, worker, until, p, n, now).await?;
                plan.record(p, n, got.len());
                rows.extend(got);
            }
        }
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let job_ids: Vec<&str> = {
            let mut ids: Vec<&str> = rows.iter().map(|r| r.job_id.as_str()).collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        let ids_json = Value::from(job_ids).to_string();
        let jobs = sqlx::query(
            "SELECT id, tenant, handler, params FROM jobs \
             WHERE id IN (SELECT value FROM json_each($1))",
        )
        .bind(&ids_json)
        .fetch_all(&mut *tx)
        .await
        .map_err(sql(W))?;
        let mut info = BTreeMap::new();
        for row in &jobs {
            let id: String = row.try_get(0).map_err(sql(W))?;
            let tenant: String = row.try_get(1).map_err(sql(W))?;
            let handler: String = row.try_get(2).map_err(sql(W))?;
            let params: String = row.try_get(3).map_err(sql(W))?;
            info.insert(id, (tenant, handler, json(&params, "job parameters")?));
        }
        sqlx::query(
            "UPDATE jobs SET started_at = $2, \
             status = CASE WHEN status = 'pending' THEN 'processing' ELSE status END \
             WHERE id IN (SELECT value FROM json_each($1)) AND started_at IS NULL",
        )
        .bind(&ids_json)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(sql(W))?;
        tx.commit().await.map_err(sql(W))?;
        let mut claimed = Vec::with_capacity(rows.len());
        for r in rows {
            let Some((tenant, handler, params)) = info.get(&r.job_id) else {
                return Err(Error::Corrupt {
                    message: format!("item {} belongs to a missing job {}", r.id, r.job_id),
                });
            };
            claimed.push(ClaimedItem {
                job_id: JobId::from(r.job_id),
                tenant: tenant.clone(),
                item_id: r.id,
                key: r.key,
                payload: json(&r.payload, "an item payload")?,
                handler: handler.clone(),
                params: params.clone(),
                priority: r.priority,
                attempts: r.attempts.clamp(0, u32::MAX as i64) as u32,
            });
        }
        claimed.sort_by_key(|c| (c.priority, c.item_id));
        tracing::debug!(worker, claimed = claimed.len(), "claimed items");
        Ok(claimed)
    }

    async fn heartbeat_(&self, worker: &str, lease: Duration) -> Result<u64, Error> {
        let r = sqlx::query(
            "UPDATE items SET lease_until = $2 WHERE state = 'leased' AND lease_owner = $1",
        )
        .bind(worker)
        .bind(self.now() + secs(lease))
        .execute(&self.writer)
        .await
        .map_err(sql("extending leases"))?;
        Ok(r.rows_affected())
    }

    async fn complete_(&self, worker: &str, results: Vec<(i64, Value)>) -> Result<u64, Error> {
        const W: &str = "recording results";
        let mut by_id: BTreeMap<i64, String> = BTreeMap::new();
        for (id, value) in &results {
            by_id.entry(*id).or_insert_with(|| value.to_string());
        }
        if by_id.is_empty() {
            return Ok(0);
        }
        let now = self.now();
        let ids_json = Value::from(by_id.keys().copied().collect::<Vec<i64>>()).to_string();
        let mut tx = self.begin(W).await?;
        let done = sqlx::query(
            "UPDATE items SET state = 'done', lease_owner = NULL, lease_until = NULL \
             WHERE id IN (SELECT value FROM json_each($1)) AND state = 'leased' \
             AND lease_owner = $2 RETURNING id, job_id",
        )
        .bind(&ids_json)
        .bind(worker)
        .fetch_all(&mut *tx)
        .await
        .map_err(sql(W))?;
        let mut job_of = BTreeMap::new();
        for row in &done {
            let id: i64 = row.try_get(0).map_err(sql(W))?;
            let job: String = row.try_get(1).map_err(sql(W))?;
            job_of.insert(id, job);
        }
        let ids: Vec<i64> = job_of.keys().copied().collect();
        let mut per_job: BTreeMap<String, i64> = BTreeMap::new();
        for chunk in ids.chunks(INSERT_CHUNK) {
            let mut q = String::from("INSERT INTO results (item_id, result, recorded_at) VALUES ");
            for i in 0..chunk.len() {
                if i > 0 {
                    q.push_str(", ");
                }
                q.push_str(&format!("(${}, ${}, $1)", 2 + 2 * i, 3 + 2 * i));
            }
            q.push_str(" ON CONFLICT (item_id) DO NOTHING RETURNING item_id");
            let mut query = sqlx::query(&q).persistent(false).bind(now);
            for id in chunk {
                query = query.bind(*id).bind(by_id.get(id).map(String::as_str));
            }
            for row in query.fetch_all(&mut *tx).await.map_err(sql(W))? {
                let id: i64 = row.try_get(0).map_err(sql(W))?;
                if let Some(job) = job_of.get(&id) {
                    *per_job.entry(job.clone()).or_default() += 1;
                }
            }
        }
        let mut recorded = 0;
        for (job, n) in &per_job {
            recorded += *n as u64;
            adjust(
                &mut tx,
                job,
                Delta {
                    succeeded: *n,
                    ..Delta::default()
                },
                now,
            )
            .await?;
        }
        tx.commit().await.map_err(sql(W))?;
        if recorded < by_id.len() as u64 {
            tracing::debug!(
                worker,
                skipped = by_id.len() as u64 - recorded,
                "results for items not leased to this worker were skipped"
            );
        }
        Ok(recorded)
    }

    async fn fail_(
        &self,
        worker: &str,
        item_id: i64,
        error: &str,
        retry_after: Option<Duration>,
        dead: bool,
    ) -> Result<FailOutcome, Error> {
        const W: &str = "recording a failed item";
        let now = self.now();
        let mut tx = self.begin(W).await?;
        let row = sqlx::query(
            "SELECT i.job_id, i.attempts, j.status, j.tenant FROM items i \
             JOIN jobs j ON j.id = i.job_id \
             WHERE i.id = $1 AND i.state = 'leased' AND i.lease_owner = $2",
        )
        .bind(item_id)
        .bind(worker)
        .fetch_optional(&mut *tx)
        .await
        .map_err(sql(W))?;
        let Some(row) = row else {
            return Ok(FailOutcome::NotLeased);
        };
        let job: String = row.try_get(0).map_err(sql(W))?;
        let attempts: i64 = row.try_get(1).map_err(sql(W))?;
        let status: String = row.try_get(2).map_err(sql(W))?;
        let tenant: String = row.try_get(3).map_err(sql(W))?;
        let outcome = if status == JobStatus::Cancelled.as_str() {
            end_items(&mut tx, &[item_id], "cancelled", Some(error)).await?;
            let delta = Delta {
                cancelled: 1,
                ..Delta::default()
            };
            adjust(&mut tx, &job, delta, now).await?;
            FailOutcome::Cancelled
        } else if dead {
            end_items(&mut tx, &[item_id], "dead", Some(error)).await?;
            sqlx::query(
                "INSERT INTO dead_letters (item_id, tenant, error, attempts, dead_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (item_id) DO UPDATE SET \
                 error = excluded.error, attempts = excluded.attempts, dead_at = excluded.dead_at",
            )
            .bind(item_id)
            .bind(&tenant)
            .bind(error)
            .bind(attempts)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(sql(W))?;
            let delta = Delta {
                failed: 1,
                ..Delta::default()
            };
            adjust(&mut tx, &job, delta, now).await?;
            FailOutcome::DeadLettered
        } else {
            sqlx::query(
                "UPDATE items SET state = 'queued', lease_owner = NULL, lease_until = NULL, \
                 available_at = $2, last_error = $3 WHERE id = $1",
            )
            .bind(item_id)
            .bind(now + retry_after.map_or(0.0, secs))
            .bind(error)
            .execute(&mut *tx)
            .await
            .map_err(sql(W))?;
            FailOutcome::Retrying
        };
        tx.commit().await.map_err(sql(W))?;
        if outcome == FailOutcome::Retrying {
            self.wake.wake();
        }
        Ok(outcome)
    }

    /// Takes leases back (release or rescue): items of cancelled jobs end cancelled, the
    /// others are queued again. Returns how many leases were taken back.
    async fn take_back(&self, worker: Option<&str>, refund_attempt: bool) -> Result<u64, Error> {
        const W: &str = "taking leases back";
        let now = self.now();
        let mut tx = self.begin(W).await?;
        let rows = match worker {
            Some(worker) => sqlx::query(
                "SELECT i.id, i.job_id, j.status FROM items i JOIN jobs j ON j.id = i.job_id \
                 WHERE i.state = 'leased' AND i.lease_owner = $1",
            )
            .bind(worker),
            None => sqlx::query(
                "SELECT i.id, i.job_id, j.status FROM items i JOIN jobs j ON j.id = i.job_id \
                 WHERE i.state = 'leased' AND i.lease_until < $1",
            )
            .bind(now),
        }
        .fetch_all(&mut *tx)
        .await
        .map_err(sql(W))?;
        let mut requeue = Vec::new();
        let mut cancel: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for row in &rows {
            let id: i64 = row.try_get(0).map_err(sql(W))?;
            let job: String = row.try_get(1).map_err(sql(W))?;
            let status: String = row.try_get(2).map_err(sql(W))?;
            if status == JobStatus::Cancelled.as_str() {
                cancel.entry(job).or_default().push(id);
            } else {
                requeue.push(id);
            }
        }
        if !requeue.is_empty() {
            let attempts = if refund_attempt {
                "MAX(attempts - 1, 0)"
            } else {
                "attempts"
            };
            sqlx::query(&format!(
                "UPDATE items SET state = 'queued', lease_owner = NULL, lease_until = NULL, \
                 attempts = {attempts} WHERE id IN (SELECT value FROM json_each($1))"
            ))
            .bind(Value::from(requeue.clone()).to_string())
            .execute(&mut *tx)
            .await
            .map_err(sql(W))?;
        }
        for (job, ids) in &cancel {
            end_items(&mut tx, ids, "cancelled", None).await?;
            let delta = Delta {
                cancelled: ids.len() as i64,
                ..Delta::default()
            };
            adjust(&mut tx, job, delta, now).await?;
        }
        tx.commit().await.map_err(sql(W))?;
        if !requeue.is_empty() {
            self.wake.wake();
        }
        Ok(rows.len() as u64)
    }

    async fn cancel_job_(&self, tenant: &str, id: &JobId) -> Result<Option<JobRecord>, Error> {
        const W: &str = "cancelling a job";
        let now = self.now();
        let mut tx = self.begin(W).await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM jobs WHERE tenant = $1 AND id = $2")
                .bind(tenant)
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(sql(W))?;
        let Some(status) = status else {
            return Ok(None);
        };
        if JobStatus::parse(&status).is_some_and(|s| !s.is_finished()) {
            let n = sqlx::query(
                "UPDATE items SET state = 'cancelled' WHERE job_id = $1 AND state = 'queued'",
            )
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(sql(W))?
            .rows_affected();
            sqlx::query(
                "UPDATE jobs SET status = 'cancelled', completed_at = $2, \
                 cancelled = cancelled + $3 WHERE id = $1",
            )
            .bind(id.as_str())
            .bind(now)
            .bind(n as i64)
            .execute(&mut *tx)
            .await
            .map_err(sql(W))?;
        }
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(sql(W))?;
        tx.commit().await.map_err(sql(W))?;
        job_from_row(&row).map(Some)
    }

    async fn results_(
        &self,
        tenant: &str,
        job_id: &JobId,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Option<Page<ResultRow>>, Error> {
        const W: &str = "reading results";
        let limit = page_limit(limit);
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM jobs WHERE tenant = $1 AND id = $2")
                .bind(tenant)
                .bind(job_id.as_str())
                .fetch_optional(&self.reader)
                .await
                .map_err(sql(W))?;
        if exists.is_none() {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT i.id, i.key, i.state, r.result, i.last_error FROM items i \
             LEFT JOIN results r ON r.item_id = i.id \
             WHERE i.job_id = $1 AND i.id > $2 ORDER BY i.id LIMIT $3",
        )
        .bind(job_id.as_str())
        .bind(after.unwrap_or(0))
        .bind(limit as i64 + 1)
        .fetch_all(&self.reader)
        .await
        .map_err(sql(W))?;
        let rows = rows
            .iter()
            .map(result_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(page(rows, limit, |r| r.item_id)))
    }

    async fn dead_letters_(
        &self,
        tenant: &str,
        limit: usize,
        cursor: Option<i64>,
    ) -> Result<Page<DeadLetter>, Error> {
        let limit = page_limit(limit);
        let rows = sqlx::query(
            "SELECT d.item_id, i.job_id, i.key, i.payload, d.error, d.attempts, d.dead_at \
             FROM dead_letters d JOIN items i ON i.id = d.item_id \
             WHERE d.tenant = $1 AND d.item_id < $2 ORDER BY d.item_id DESC LIMIT $3",
        )
        .bind(tenant)
        .bind(cursor.unwrap_or(i64::MAX))
        .bind(limit as i64 + 1)
        .fetch_all(&self.reader)
        .await
        .map_err(sql("listing dead letters"))?;
        let rows = rows
            .iter()
            .map(dead_letter_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page(rows, limit, |d| d.item_id))
    }

    async fn redrive_(&self, tenant: &str, item_ids: Vec<i64>) -> Result<u64, Error> {
        const W: &str = "redriving dead letters";
        if item_ids.is_empty() {
            return Ok(0);
        }
        let now = self.now();
        let mut tx = self.begin(W).await?;
        let rows = sqlx::query(
            "SELECT d.item_id, i.job_id FROM dead_letters d \
             JOIN items i ON i.id = d.item_id JOIN jobs j ON j.id = i.job_id \
             WHERE d.tenant = $1 AND d.item_id IN (SELECT value FROM json_each($2)) \
             AND i.state = 'dead' AND j.status <> 'cancelled'",
        )
        .bind(tenant)
        .bind(Value::from(item_ids).to_string())
        .fetch_all(&mut *tx)
        .await
        .map_err(sql(W))?;
        let mut ids = Vec::with_capacity(rows.len());
        let mut per_job: BTreeMap<String, i64> = BTreeMap::new();
        for row in &rows {
            ids.push(row.try_get::<i64, _>(0).map_err(sql(W))?);
            *per_job
                .entry(row.try_get::<String, _>(1).map_err(sql(W))?)
                .or_default() += 1;
        }
        if ids.is_empty() {
            return Ok(0);
        }
        let ids_json = Value::from(ids.clone()).to_string();
        sqlx::query("DELETE FROM dead_letters WHERE item_id IN (SELECT value FROM json_each($1))")
            .bind(&ids_json)
            .execute(&mut *tx)
            .await
            .map_err(sql(W))?;
        sqlx::query(
            "UPDATE items SET state = 'queued', attempts = 0, available_at = $2, \
             lease_owner = NULL, lease_until = NULL \
             WHERE id IN (SELECT value FROM json_each($1))",
        )
        .bind(&ids_json)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(sql(W))?;
        for (job, n) in &per_job {
            let delta = Delta {
                failed: -n,
                ..Delta::default()
            };
            adjust(&mut tx, job, delta, now).await?;
        }
        tx.commit().await.map_err(sql(W))?;
        self.wake.wake();
        Ok(ids.len() as u64)
    }

    async fn queue_depths_(&self) -> Result<Vec<QueueDepth>, Error> {
        const W: &str = "reading queue depths";
        let jobs = sqlx::query(
            "SELECT priority, COUNT(*) FROM jobs WHERE status IN ('pending', 'processing') \
             GROUP BY priority",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(sql(W))?;
        let items = sqlx::query(
            "SELECT priority, state, COUNT(*) FROM items WHERE state IN ('queued', 'leased') \
             GROUP BY priority, state",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(sql(W))?;
        let mut depths = Priority::ALL.map(|p| QueueDepth {
            priority: p,
            unfinished_jobs: 0,
            limit: self.options.limit(p),
            queued_items: 0,
            in_flight_items: 0,
        });
        for row in &jobs {
            let p: i64 = row.try_get(0).map_err(sql(W))?;
            let n: i64 = row.try_get(1).map_err(sql(W))?;
            if let Some(d) = depths.get_mut(p as usize) {
                d.unfinished_jobs = n as u64;
            }
        }
        for row in &items {
            let p: i64 = row.try_get(0).map_err(sql(W))?;
            let state: String = row.try_get(1).map_err(sql(W))?;
            let n: i64 = row.try_get(2).map_err(sql(W))?;
            if let Some(d) = depths.get_mut(p as usize) {
                if state == "queued" {
                    d.queued_items = n as u64;
                } else {
                    d.in_flight_items = n as u64;
                }
            }
        }
        Ok(depths.to_vec())
    }

    async fn sweep_results_(&self, older_than: Duration) -> Result<u64, Error> {
        const W: &str = "sweeping finished jobs";
        let mut tx = self.begin(W).await?;
        let n = sqlx::query(
            "DELETE FROM jobs WHERE status IN ('completed', 'failed', 'cancelled') \
             AND completed_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM items i WHERE i.job_id = jobs.id AND i.state = 'leased')",
        )
        .bind(self.now() - secs(older_than))
        .execute(&mut *tx)
        .await
        .map_err(sql(W))?
        .rows_affected();
        tx.commit().await.map_err(sql(W))?;
        if n > 0 {
            tracing::info!(jobs = n, "swept finished jobs past their result TTL");
        }
        Ok(n)
    }

    async fn create_key_(&self, tenant: &str, name: &str) -> Result<IssuedKey, Error> {
        let plaintext = common::new_secret();
        let key = ApiKey {
            id: uuid_v4(),
            tenant: tenant.to_owned(),
            name: name.to_owned(),
            created_at: self.now(),
            revoked_at: None,
        };
        sqlx::query(
            "INSERT INTO api_keys (id, tenant, name, key_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&key.id)
        .bind(&key.tenant)
        .bind(&key.name)
        .bind(common::key_hash(&plaintext))
        .bind(key.created_at)
        .execute(&self.writer)
        .await
        .map_err(sql("creating an API key"))?;
        Ok(IssuedKey { key, plaintext })
    }

    async fn list_keys_(&self, tenant: Option<&str>) -> Result<Vec<ApiKey>, Error> {
        let rows = sqlx::query(
            "SELECT id, tenant, name, created_at, revoked_at FROM api_keys \
             WHERE $1 IS NULL OR tenant = $1 ORDER BY created_at, id",
        )
        .bind(tenant)
        .fetch_all(&self.reader)
        .await
        .map_err(sql("listing API keys"))?;
        rows.iter().map(api_key_from_row).collect()
    }

    async fn revoke_key_(&self, id: &str) -> Result<bool, Error> {
        let r =
            sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id)
                .bind(self.now())
                .execute(&self.writer)
                .await
                .map_err(sql("revoking an API key"))?;
        Ok(r.rows_affected() > 0)
    }

    async fn tenant_for_key_(&self, plaintext: &str) -> Result<Option<String>, Error> {
        sqlx::query_scalar("SELECT tenant FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
            .bind(common::key_hash(plaintext))
            .fetch_optional(&self.reader)
            .await
            .map_err(sql("checking an API key"))
    }
}

/// A claimed row before its job's details are attached.
struct Taken {
    id: i64,
    job_id: String,
    key: String,
    payload: String,
    attempts: i64,
    priority: Priority,
}

/// Leases up to `n` available items of one priority, oldest first.
async fn take(
    tx: &mut Tx,
    worker: &str,
    until: f64,
    priority: Priority,
    n: usize,
    now: f64,
) -> Result<Vec<Taken>, Error> {
    const W: &str = "claiming items";
    let rows = sqlx::query(
        "UPDATE items SET state = 'leased', lease_owner = $1, lease_until = $2, \
         attempts = attempts + 1 WHERE id IN (SELECT id FROM items \
         WHERE state = 'queued' AND priority = $3 AND available_at <= $4 ORDER BY id LIMIT $5) \
         RETURNING id, job_id, key, payload, attempts",
    )
    .bind(worker)
    .bind(until)
    .bind(priority.index() as i64)
    .bind(now)
    .bind(n as i64)
    .fetch_all(&mut **tx)
    .await
    .map_err(sql(W))?;
    rows.iter()
        .map(|row| {
            Ok(Taken {
                id: row.try_get(0).map_err(sql(W))?,
                job_id: row.try_get(1).map_err(sql(W))?,
                key: row.try_get(2).map_err(sql(W))?,
                payload: row.try_get(3).map_err(sql(W))?,
                attempts: row.try_get(4).map_err(sql(W))?,
                priority,
            })
        })
        .collect()
}

/// Ends leased items in `state` (`dead` or `cancelled`), keeping `error` if given.
async fn end_items(
    tx: &mut Tx,
    ids: &[i64],
    state: &'static str,
    error: Option<&str>,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE items SET state = $2, lease_owner = NULL, lease_until = NULL, \
         last_error = COALESCE($3, last_error) WHERE id IN (SELECT value FROM json_each($1))",
    )
    .bind(Value::from(ids.to_vec()).to_string())
    .bind(state)
    .bind(error)
    .execute(&mut **tx)
    .await
    .map_err(sql("ending items"))?;
    Ok(())
}

async fn adjust(tx: &mut Tx, job: &str, d: Delta, now: f64) -> Result<(), Error> {
    sqlx::query(ADJUST_JOB)
        .bind(job)
        .bind(d.succeeded)
        .bind(d.failed)
        .bind(d.cancelled)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(sql("updating a job's counts"))?;
    Ok(())
}

impl Store for SqliteStore {
    fn submit_job(&self, job: NewJob) -> BoxFuture<'_, Result<Submitted, Error>> {
        Box::pin(self.submit_job_(job))
    }

    fn job<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a JobId,
    ) -> BoxFuture<'a, Result<Option<JobRecord>, Error>> {
        Box::pin(self.job_(tenant, id))
    }

    fn list_jobs<'a>(
        &'a self,
        tenant: &'a str,
        limit: usize,
        cursor: Option<i64>,
    ) -> BoxFuture<'a, Result<Page<JobRecord>, Error>> {
        Box::pin(self.list_jobs_(tenant, limit, cursor))
    }

    fn claim<'a>(
        &'a self,
        worker: &'a str,
        limit: usize,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Vec<ClaimedItem>, Error>> {
        Box::pin(self.claim_(worker, limit, lease))
    }

    fn heartbeat<'a>(
        &'a self,
        worker: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<u64, Error>> {
        Box::pin(self.heartbeat_(worker, lease))
    }

    fn complete<'a>(
        &'a self,
        worker: &'a str,
        results: Vec<(i64, Value)>,
    ) -> BoxFuture<'a, Result<u64, Error>> {
        Box::pin(self.complete_(worker, results))
    }

    fn fail<'a>(
        &'a self,
        worker: &'a str,
        item_id: i64,
        error: &'a str,
        retry_after: Option<Duration>,
        dead: bool,
    ) -> BoxFuture<'a, Result<FailOutcome, Error>> {
        Box::pin(self.fail_(worker, item_id, error, retry_after, dead))
    }

    fn release<'a>(&'a self, worker: &'a str) -> BoxFuture<'a, Result<u64, Error>> {
        Box::pin(self.take_back(Some(worker), true))
    }

    fn rescue_expired(&self) -> BoxFuture<'_, Result<u64, Error>> {
        Box::pin(async move {
            let n = self.take_back(None, false).await?;
            if n > 0 {
                tracing::info!(items = n, "rescued items with expired leases");
            }
            Ok(n)
        })
    }

    fn cancel_job<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a JobId,
    ) -> BoxFuture<'a, Result<Option<JobRecord>, Error>> {
        Box::pin(self.cancel_job_(tenant, id))
    }

    fn results<'a>(
        &'a self,
        tenant: &'a str,
        job_id: &'a JobId,
        after_item_id: Option<i64>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Option<Page<ResultRow>>, Error>> {
        Box::pin(self.results_(tenant, job_id, after_item_id, limit))
    }

    fn dead_letters<'a>(
        &'a self,
        tenant: &'a str,
        limit: usize,
        cursor: Option<i64>,
    ) -> BoxFuture<'a, Result<Page<DeadLetter>, Error>> {
        Box::pin(self.dead_letters_(tenant, limit, cursor))
    }

    fn redrive<'a>(
        &'a self,
        tenant: &'a str,
        item_ids: Vec<i64>,
    ) -> BoxFuture<'a, Result<u64, Error>> {
        Box::pin(self.redrive_(tenant, item_ids))
    }

    fn queue_depths(&self) -> BoxFuture<'_, Result<Vec<QueueDepth>, Error>> {
        Box::pin(self.queue_depths_())
    }

    fn sweep_results(&self, older_than: Duration) -> BoxFuture<'_, Result<u64, Error>> {
        Box::pin(self.sweep_results_(older_than))
    }

    fn wait_for_work(&self, timeout: Duration) -> BoxFuture<'_, Result<bool, Error>> {
        Box::pin(async move { Ok(self.wake.wait(timeout).await) })
    }

    fn create_key<'a>(
        &'a self,
        tenant: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<IssuedKey, Error>> {
        Box::pin(self.create_key_(tenant, name))
    }

    fn list_keys<'a>(
        &'a self,
        tenant: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<ApiKey>, Error>> {
        Box::pin(self.list_keys_(tenant))
    }

    fn revoke_key<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(self.revoke_key_(id))
    }

    fn tenant_for_key<'a>(
        &'a self,
        plaintext: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, Error>> {
        Box::pin(self.tenant_for_key_(plaintext))
    }
}
