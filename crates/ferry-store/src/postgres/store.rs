//! [`PgStore`]: every [`Store`] operation as PostgreSQL statements, and the task relaying
//! `LISTEN` notifications to waiting workers.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ferry_core::BoxFuture;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};
use tokio::task::JoinHandle;

use crate::common::{
    self, api_key_from_row, dead_letter_from_row, job_from_row, page, page_limit, result_from_row,
    secs, Delta, Wakeups, ADJUST_JOB,
};
use crate::error::{json, redact, sql, Error};
use crate::postgres::migrations;
use crate::schedule::Plan;
use crate::store::Store;
use crate::types::{
    uuid_v4, ApiKey, ClaimedItem, DeadLetter, FailOutcome, IssuedKey, JobId, JobRecord, JobStatus,
    NewJob, Page, Priority, QueueDepth, ResultRow, Submitted,
};
use crate::StoreOptions;

const JOB_COLUMNS: &str = "id, tenant, handler, params::text, priority, status, total, \
     succeeded, failed, cancelled, created_at, started_at, completed_at, error";

/// The advisory-lock class serialising queue-limit checks (per priority) and migrations.
pub(super) const LOCK_CLASS: i32 = 0x6665_7272; // "ferr"

/// Bytes per `COPY` message.
const COPY_CHUNK: usize = 1 << 20;

type Tx = Transaction<'static, Postgres>;

/// The shared store: PostgreSQL, for several workers on several machines.
///
/// Claims lock candidate items with `FOR UPDATE SKIP LOCKED`, so concurrent workers never
/// wait on each other nor get the same item; items are bulk-inserted with `COPY`; wake-ups
/// travel by `LISTEN/NOTIFY` on a dedicated connection. Rows are always locked items first,
/// then jobs in id order (cancel locks its job, then skips locked items), so operations do
/// not deadlock. Timestamps come from the calling process's clock (see [`Clock`](crate::Clock)).
#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
    schema: Option<String>,
    channel: String,
    options: StoreOptions,
    wake: Arc<Wakeups>,
    listener: JoinHandle<()>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl PgStore {
    /// Connects to `url` (the connection's default schema, usually `public`) with default
    /// options, applying any pending migration.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        PgStore::connect_with(url, None, StoreOptions::new()).await
    }

    /// Connects to `url` and keeps everything in `schema`, creating it if needed; the
    /// wake-up channel is then `ferry_work_<schema>`. For isolated tests and for several
    /// stores in one database.
    pub async fn connect_with_schema(url: &str, schema: &str) -> Result<Self, Error> {
        PgStore::connect_with(url, Some(schema), StoreOptions::new()).await
    }

    /// Connects with every option. `schema` must be a plain lowercase identifier
    /// (`[a-z_][a-z0-9_]*`, at most 40 bytes).
    pub async fn connect_with(
        url: &str,
        schema: Option<&str>,
        options: StoreOptions,
    ) -> Result<Self, Error> {
        let ctx = |source| Error::Sql {
            context: format!("connecting to {}", redact(url)),
            source,
        };
        let mut connect = PgConnectOptions::from_str(url).map_err(ctx)?;
        if let Some(schema) = schema {
            check_schema(schema)?;
            connect = connect.options([("search_path", schema)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.get())
            .connect_with(connect.clone())
            .await
            .map_err(ctx)?;
        migrations::apply(&pool, schema).await?;
        let channel = match schema {
            Some(s) => format!("ferry_work_{s}"),
            None => "ferry_work".to_owned(),
        };
        // A pool of its own: the listener holds its connection for good.
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(connect)
            .await
            .map_err(ctx)?;
        let mut listener = PgListener::connect_with(&listen_pool).await.map_err(ctx)?;
        listener.listen(&channel).await.map_err(ctx)?;
        let wake = Arc::new(Wakeups::default());
        let listener = tokio::spawn(forward(listener, Arc::clone(&wake)));
        Ok(PgStore {
            pool,
            schema: schema.map(str::to_owned),
            channel,
            options,
            wake,
            listener,
        })
    }

    /// The schema given to [`connect_with_schema`](Self::connect_with_schema), if any.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    fn now(&self) -> f64 {
        self.options.clock.now()
    }

    async fn begin(&self, what: &'static str) -> Result<Tx, Error> {
        self.pool.begin().await.map_err(sql(what))
    }

    /// Queues a wake-up for every listener; delivered when `tx` commits.
    async fn notify(&self, tx: &mut Tx) -> Result<(), Error> {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(&self.channel)
            .execute(&mut **tx)
            .await
            .map_err(sql("notifying workers"))?;
        Ok(())
    }

    async fn job_by_key(
        &self,
        tx: &mut Tx,
        tenant: &str,
        key: &str,
    ) -> Result<Option<JobRecord>, Error> {
        let row = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE tenant = $1 AND idempotency_key = $2"
        ))
        .bind(tenant)
        .bind(key)
        .fetch_optional(&mut **tx)
        .await
        .map_err(sql("creating a job"))?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn submit_job_(&self, job: NewJob) -> Result<Submitted, Error> {
        const W: &str = "creating a job";
        common::validate(&job)?;
        let now = self.now();
        let params = job.params.to_string();
        let id = JobId::new();
        let copy_data = copy_rows(&id, &job, now);
        let mut tx = self.begin(W).await?;
        if let Some(key) = &job.idempotency_key {
            if let Some(existing) = self.job_by_key(&mut tx, &job.tenant, key).await? {
                return Ok(Submitted {
                    job: existing,
                    created: false,
                });
            }
        }
        let priority = job.priority.index() as i64;
        let limit = self.options.limit(job.priority);
        // Serialises creators of one priority, so the limit holds across processes.
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(LOCK_CLASS)
            .bind(priority as i32)
            .execute(&mut *tx)
            .await
            .map_err(sql(W))?;
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
        let total = job.items.len() as i64;
        let record = common::new_job_record(id.clone(), &job, now);
        let inserted = sqlx::query(
            "INSERT INTO jobs (id, tenant, handler, params, priority, status, idempotency_key, \
             total, created_at, completed_at) \
             VALUES ($1, $2, $3, $4::json, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING",
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
        .map_err(sql(W))?
        .rows_affected();
        if inserted == 0 {
            // A concurrent request with the same idempotency key won; return its job.
            tx.rollback().await.map_err(sql(W))?;
            let mut tx = self.begin(W).await?;
            let key = job.idempotency_key.as_deref().unwrap_or_default();
            let job = self
                .job_by_key(&mut tx, &job.tenant, key)
                .await?
                .ok_or_else(|| Error::Corrupt {
                    message: format!("idempotency key {key:?} conflicts but names no job"),
                })?;
            return Ok(Submitted {
                job,
                created: false,
            });
        }
        if !copy_data.is_empty() {
            let mut copy = tx
                .copy_in_raw(
                    "COPY items (job_id, key, payload, priority, state, available_at) FROM STDIN",
                )
                .await
                .map_err(sql(W))?;
            let mut sent = Ok(());
            for chunk in copy_data.chunks(COPY_CHUNK) {
                if let Err(e) = copy.send(chunk).await {
                    sent = Err(e);
                    break;
                }
            }
            match sent {
                Ok(()) => {
                    copy.finish().await.map_err(sql(W))?;
                }
                Err(e) => {
                    // Best effort: the transaction is rolled back either way.
                    let _ = copy.abort("ferry-store: sending items failed").await;
                    return Err(sql(W)(e));
                }
            }
            self.notify(&mut tx).await?;
        }
        tx.commit().await.map_err(sql(W))?;
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
        .fetch_optional(&self.pool)
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
        .fetch_all(&self.pool)
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
            tx.rollback().await.map_err(sql(W))?;
            return Ok(Vec::new());
        }
        let mut job_ids: Vec<String> = rows.iter().map(|r| r.job_id.clone()).collect();
        job_ids.sort_unstable();
        job_ids.dedup();
        let jobs = sqlx::query(
            "SELECT id, tenant, handler, params::text, started_at IS NULL FROM jobs \
             WHERE id = ANY($1)",
        )
        .bind(&job_ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(sql(W))?;
        let mut info = BTreeMap::new();
        let mut unstarted = Vec::new();
        for row in &jobs {
            let id: String = row.try_get(0).map_err(sql(W))?;
            let tenant: String = row.try_get(1).map_err(sql(W))?;
            let handler: String = row.try_get(2).map_err(sql(W))?;
            let params: String = row.try_get(3).map_err(sql(W))?;
            if row.try_get::<bool, _>(4).map_err(sql(W))? {
                unstarted.push(id.clone());
            }
            info.insert(id, (tenant, handler, json(&params, "job parameters")?));
        }
        unstarted.sort_unstable();
        for id in &unstarted {
            sqlx::query(
                "UPDATE jobs SET started_at = $2, \
                 status = CASE WHEN status = 'pending' THEN 'processing' ELSE status END \
                 WHERE id = $1 AND started_at IS NULL",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(sql(W))?;
        }
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
        // Items being completed right now are locked and skipped: they are ending anyway.
        let r = sqlx::query(
            "WITH mine AS MATERIALIZED (SELECT id FROM items \
                 WHERE state = 'leased' AND lease_owner = $1 ORDER BY id FOR UPDATE SKIP LOCKED) \
             UPDATE items i SET lease_until = $2 FROM mine WHERE i.id = mine.id",
        )
        .bind(worker)
        .bind(self.now() + secs(lease))
        .execute(&self.pool)
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
        let ids: Vec<i64> = by_id.keys().copied().collect();
        let mut tx = self.begin(W).await?;
        let done = sqlx::query(
            "WITH mine AS MATERIALIZED (SELECT id FROM items \
                 WHERE id = ANY($1) AND state = 'leased' AND lease_owner = $2 \
                 ORDER BY id FOR UPDATE) \
             UPDATE items i SET state = 'done', lease_owner = NULL, lease_until = NULL \
             FROM mine WHERE i.id = mine.id RETURNING i.id, i.job_id",
        )
        .bind(&ids)
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
        let mut per_job: BTreeMap<String, i64> = BTreeMap::new();
        if !job_of.is_empty() {
            let done_ids: Vec<i64> = job_of.keys().copied().collect();
            let values: Vec<&str> = done_ids
                .iter()
                .map(|id| by_id.get(id).map_or("null", String::as_str))
                .collect();
            let inserted = sqlx::query(
                "INSERT INTO results (item_id, result, recorded_at) \
                 SELECT t.item_id, t.result::json, $3 \
                 FROM UNNEST($1::bigint[], $2::text[]) AS t (item_id, result) \
                 ON CONFLICT (item_id) DO NOTHING RETURNING item_id",
            )
            .bind(&done_ids)
            .bind(&values)
            .bind(now)
            .fetch_all(&mut *tx)
            .await
            .map_err(sql(W))?;
            for row in &inserted {
                let id: i64 = row.try_get(0).map_err(sql(W))?;
                if let Some(job) = job_of.get(&id) {
                    *per_job.entry(job.clone()).or_default() += 1;
                }
            }
        }
        let mut recorded = 0;
        for (job, n) in &per_job {
            recorded += *n as u64;
            let delta = Delta {
                succeeded: *n,
                ..Delta::default()
            };
            adjust(&mut tx, job, delta, now).await?;
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
            "SELECT job_id, attempts FROM items \
             WHERE id = $1 AND state = 'leased' AND lease_owner = $2 FOR UPDATE",
        )
        .bind(item_id)
        .bind(worker)
        .fetch_optional(&mut *tx)
        .await
        .map_err(sql(W))?;
        let Some(row) = row else {
            tx.rollback().await.map_err(sql(W))?;
            return Ok(FailOutcome::NotLeased);
        };
        let job: String = row.try_get(0).map_err(sql(W))?;
        let attempts: i64 = row.try_get(1).map_err(sql(W))?;
        let row = sqlx::query("SELECT status, tenant FROM jobs WHERE id = $1 FOR UPDATE")
            .bind(&job)
            .fetch_one(&mut *tx)
            .await
            .map_err(sql(W))?;
        let status: String = row.try_get(0).map_err(sql(W))?;
        let tenant: String = row.try_get(1).map_err(sql(W))?;
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
            self.notify(&mut tx).await?;
            FailOutcome::Retrying
        };
        tx.commit().await.map_err(sql(W))?;
        Ok(outcome)
    }

    /// Takes leases back (release or rescue): items of cancelled jobs end cancelled, the
    /// others are queued again. A rescue skips items locked by a concurrent `complete`.
    async fn take_back(&self, worker: Option<&str>, refund_attempt: bool) -> Result<u64, Error> {
        const W: &str = "taking leases back";
        let now = self.now();
        let mut tx = self.begin(W).await?;
        let rows = match worker {
            // Waits for the worker's own in-progress `complete` (same id order: no
            // deadlock), then skips what it finished.
            Some(worker) => sqlx::query(
                "SELECT id, job_id FROM items WHERE state = 'leased' AND lease_owner = $1 \
                 ORDER BY id FOR UPDATE",
            )
            .bind(worker),
            None => sqlx::query(
                "SELECT id, job_id FROM items WHERE state = 'leased' AND lease_until < $1 \
                 ORDER BY id FOR UPDATE SKIP LOCKED",
            )
            .bind(now),
        }
        .fetch_all(&mut *tx)
        .await
        .map_err(sql(W))?;
        if rows.is_empty() {
            tx.rollback().await.map_err(sql(W))?;
            return Ok(0);
        }
        let mut items: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for row in &rows {
            let id: i64 = row.try_get(0).map_err(sql(W))?;
            let job: String = row.try_get(1).map_err(sql(W))?;
            items.entry(job).or_default().push(id);
        }
        let cancelled = locked_cancelled_jobs(&mut tx, items.keys().cloned().collect()).await?;
        let mut requeue = Vec::new();
        for (job, ids) in &items {
            if cancelled.contains(job) {
                end_items(&mut tx, ids, "cancelled", None).await?;
                let delta = Delta {
                    cancelled: ids.len() as i64,
                    ..Delta::default()
                };
                adjust(&mut tx, job, delta, now).await?;
            } else {
                requeue.extend_from_slice(ids);
            }
        }
        if !requeue.is_empty() {
            let attempts = if refund_attempt {
                "GREATEST(attempts - 1, 0)"
            } else {
                "attempts"
            };
            sqlx::query(&format!(
                "UPDATE items SET state = 'queued', lease_owner = NULL, lease_until = NULL, \
                 attempts = {attempts} WHERE id = ANY($1)"
            ))
            .bind(&requeue)
            .execute(&mut *tx)
            .await
            .map_err(sql(W))?;
            self.notify(&mut tx).await?;
        }
        tx.commit().await.map_err(sql(W))?;
        Ok(rows.len() as u64)
    }

    async fn cancel_job_(&self, tenant: &str, id: &JobId) -> Result<Option<JobRecord>, Error> {
        const W: &str = "cancelling a job";
        let now = self.now();
        let mut tx = self.begin(W).await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM jobs WHERE tenant = $1 AND id = $2 FOR UPDATE")
                .bind(tenant)
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(sql(W))?;
        let Some(status) = status else {
            tx.rollback().await.map_err(sql(W))?;
            return Ok(None);
        };
        if JobStatus::parse(&status).is_some_and(|s| !s.is_finished()) {
            // Items locked by a concurrent claim are becoming in-flight: skip them, they end
            // cancelled (or with their result) when their worker reports.
            let n = sqlx::query(
                "WITH q AS MATERIALIZED (SELECT id FROM items \
                     WHERE job_id = $1 AND state = 'queued' FOR UPDATE SKIP LOCKED) \
                 UPDATE items i SET state = 'cancelled' FROM q WHERE i.id = q.id",
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
        let exists = sqlx::query("SELECT id FROM jobs WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(job_id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(sql(W))?;
        if exists.is_none() {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT i.id, i.key, i.state, r.result::text, i.last_error FROM items i \
             LEFT JOIN results r ON r.item_id = i.id \
             WHERE i.job_id = $1 AND i.id > $2 ORDER BY i.id LIMIT $3",
        )
        .bind(job_id.as_str())
        .bind(after.unwrap_or(0))
        .bind(limit as i64 + 1)
        .fetch_all(&self.pool)
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
            "SELECT d.item_id, i.job_id, i.key, i.payload::text, d.error, d.attempts, d.dead_at \
             FROM dead_letters d JOIN items i ON i.id = d.item_id \
             WHERE d.tenant = $1 AND d.item_id < $2 ORDER BY d.item_id DESC LIMIT $3",
        )
        .bind(tenant)
        .bind(cursor.unwrap_or(i64::MAX))
        .bind(limit as i64 + 1)
        .fetch_all(&self.pool)
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
            "SELECT i.id, i.job_id FROM dead_letters d JOIN items i ON i.id = d.item_id \
             WHERE d.tenant = $1 AND d.item_id = ANY($2) AND i.state = 'dead' \
             ORDER BY i.id FOR UPDATE OF i",
        )
        .bind(tenant)
        .bind(&item_ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(sql(W))?;
        let mut items: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for row in &rows {
            let id: i64 = row.try_get(0).map_err(sql(W))?;
            let job: String = row.try_get(1).map_err(sql(W))?;
            items.entry(job).or_default().push(id);
        }
        let cancelled = locked_cancelled_jobs(&mut tx, items.keys().cloned().collect()).await?;
        let mut ids = Vec::new();
        for (job, job_items) in &items {
            if cancelled.contains(job) {
                continue;
            }
            ids.extend_from_slice(job_items);
            let delta = Delta {
                failed: -(job_items.len() as i64),
                ..Delta::default()
            };
            adjust(&mut tx, job, delta, now).await?;
        }
        if ids.is_empty() {
            tx.rollback().await.map_err(sql(W))?;
            return Ok(0);
        }
        sqlx::query("DELETE FROM dead_letters WHERE item_id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await
            .map_err(sql(W))?;
        sqlx::query(
            "UPDATE items SET state = 'queued', attempts = 0, available_at = $2, \
             lease_owner = NULL, lease_until = NULL WHERE id = ANY($1)",
        )
        .bind(&ids)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(sql(W))?;
        self.notify(&mut tx).await?;
        tx.commit().await.map_err(sql(W))?;
        Ok(ids.len() as u64)
    }

    async fn queue_depths_(&self) -> Result<Vec<QueueDepth>, Error> {
        const W: &str = "reading queue depths";
        let jobs = sqlx::query(
            "SELECT priority, COUNT(*) FROM jobs WHERE status IN ('pending', 'processing') \
             GROUP BY priority",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(sql(W))?;
        let items = sqlx::query(
            "SELECT priority, state, COUNT(*) FROM items WHERE state IN ('queued', 'leased') \
             GROUP BY priority, state",
        )
        .fetch_all(&self.pool)
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
        let n = sqlx::query(
            "DELETE FROM jobs WHERE status IN ('completed', 'failed', 'cancelled') \
             AND completed_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM items i WHERE i.job_id = jobs.id AND i.state = 'leased')",
        )
        .bind(self.now() - secs(older_than))
        .execute(&self.pool)
        .await
        .map_err(sql("sweeping finished jobs"))?
        .rows_affected();
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
        .execute(&self.pool)
        .await
        .map_err(sql("creating an API key"))?;
        Ok(IssuedKey { key, plaintext })
    }

    async fn list_keys_(&self, tenant: Option<&str>) -> Result<Vec<ApiKey>, Error> {
        let rows = sqlx::query(
            "SELECT id, tenant, name, created_at, revoked_at FROM api_keys \
             WHERE $1::text IS NULL OR tenant = $1 ORDER BY created_at, id",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await
        .map_err(sql("listing API keys"))?;
        rows.iter().map(api_key_from_row).collect()
    }

    async fn revoke_key_(&self, id: &str) -> Result<bool, Error> {
        let r =
            sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id)
                .bind(self.now())
                .execute(&self.pool)
                .await
                .map_err(sql("revoking an API key"))?;
        Ok(r.rows_affected() > 0)
    }

    async fn tenant_for_key_(&self, plaintext: &str) -> Result<Option<String>, Error> {
        sqlx::query_scalar("SELECT tenant FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
            .bind(common::key_hash(plaintext))
            .fetch_optional(&self.pool)
            .await
            .map_err(sql("checking an API key"))
    }
}

/// Checks a schema name: it goes into `search_path` and a channel name unquoted.
fn check_schema(schema: &str) -> Result<(), Error> {
    let mut chars = schema.chars();
    let ok = schema.len() <= 40
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidOption {
            option: "schema",
            message: format!("{schema:?} is not a lowercase identifier of at most 40 bytes"),
        })
    }
}

/// Relays notifications to the in-process waiters until the store is dropped.
async fn forward(mut listener: PgListener, wake: Arc<Wakeups>) {
    loop {
        match listener.try_recv().await {
            Ok(Some(_)) => wake.wake(),
            // The connection dropped (and is re-established): a notification may have been
            // lost, so wake everyone to look.
            Ok(None) => wake.wake(),
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN connection failed; retrying in 1 s");
                wake.wake();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The `COPY ... FROM STDIN` text-format rows for a job's items.
fn copy_rows(id: &JobId, job: &NewJob, now: f64) -> Vec<u8> {
    let mut out = String::new();
    let priority = job.priority.index();
    for item in &job.items {
        copy_escape(&mut out, id.as_str());
        out.push('\t');
        copy_escape(&mut out, &item.key);
        out.push('\t');
        copy_escape(&mut out, &item.payload.to_string());
        out.push_str(&format!("\t{priority}\tqueued\t{now}\n"));
    }
    out.into_bytes()
}

/// Escapes a value for `COPY` text format.
fn copy_escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
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

/// Leases up to `n` available items of one priority, oldest first, skipping items other
/// claimers hold locked.
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
        "WITH picked AS MATERIALIZED (SELECT id FROM items \
             WHERE state = 'queued' AND priority = $3 AND available_at <= $4 \
             ORDER BY id LIMIT $5 FOR UPDATE SKIP LOCKED) \
         UPDATE items i SET state = 'leased', lease_owner = $1, lease_until = $2, \
             attempts = i.attempts + 1 \
         FROM picked WHERE i.id = picked.id \
         RETURNING i.id, i.job_id, i.key, i.payload::text, i.attempts",
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

/// Locks the jobs (in id order) and returns those that are cancelled.
async fn locked_cancelled_jobs(tx: &mut Tx, jobs: Vec<String>) -> Result<Vec<String>, Error> {
    sqlx::query_scalar(
        "SELECT id FROM (SELECT id, status FROM jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE) j \
         WHERE status = 'cancelled'",
    )
    .bind(&jobs)
    .fetch_all(&mut **tx)
    .await
    .map_err(sql("locking jobs"))
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
         last_error = COALESCE($3, last_error) WHERE id = ANY($1)",
    )
    .bind(ids)
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

impl Store for PgStore {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_is_escaped() {
        let mut s = String::new();
        copy_escape(&mut s, "a\tb\nc\\d\re");
        assert_eq!(s, "a\\tb\\nc\\\\d\\re");
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(check_schema("ferry_test_01").is_ok());
        for bad in ["", "1abc", "Ab", "a-b", "a\"b", &"x".repeat(41)] {
            assert!(check_schema(bad).is_err(), "{bad}");
        }
    }
}
