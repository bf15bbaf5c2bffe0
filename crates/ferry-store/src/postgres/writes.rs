//! PostgreSQL's submit, claim and complete statements ([`WriteStatements`]), on its ordinary
//! transactions: items bulk-inserted with `COPY`, queue limits serialised by an advisory
//! lock, claims picked with `FOR UPDATE SKIP LOCKED` (concurrent workers never wait on each
//! other; rows are locked items first, then jobs in id order, so no two operations
//! deadlock), results inserted with one `UNNEST`. The statements both databases share are
//! those of [`Queries`] and [`FairQueries`].

use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row};

use crate::backend::{
    Backend, ClaimedJob, FairQueries, Queries, Taken, TenantBacklog, WriteStatements,
};
use crate::common::Delta;
use crate::error::{sql, Error};
use crate::fair::Lane;
use crate::postgres::leases::id_and_job;
use crate::postgres::migrations::LOCK_CLASS;
use crate::postgres::store::{PgStore, PgTx};
use crate::types::{db_index, JobId, JobRecord, NewJob, Priority};

/// Bytes per `COPY` message.
const COPY_CHUNK: usize = 1 << 20;

impl WriteStatements for PgStore {
    type WriteTx = PgTx;

    async fn begin_write(&self, what: &'static str) -> Result<PgTx, Error> {
        self.begin(what).await
    }

    async fn commit_write(&self, tx: PgTx, what: &'static str) -> Result<(), Error> {
        self.commit(tx, what).await
    }

    async fn notify_write(&self, tx: &mut PgTx) -> Result<(), Error> {
        self.notify(tx).await
    }

    async fn job_by_key(
        &self,
        tx: &mut PgTx,
        tenant: &str,
        key: &str,
    ) -> Result<Option<JobRecord>, Error> {
        Postgres::job_by_key(tx, tenant, key).await
    }

    async fn count_unfinished(&self, tx: &mut PgTx, priority: Priority) -> Result<i64, Error> {
        Postgres::count_unfinished(tx, priority).await
    }

    async fn count_finished_since(
        &self,
        tx: &mut PgTx,
        priority: Priority,
        since: f64,
    ) -> Result<i64, Error> {
        Postgres::count_finished_since(tx, priority, since).await
    }

    async fn tenant_backlog(&self, tx: &mut PgTx, tenant: &str) -> Result<TenantBacklog, Error> {
        Postgres::tenant_backlog(tx, tenant).await
    }

    async fn lanes(&self, tx: &mut PgTx) -> Result<[Vec<Lane>; 3], Error> {
        Postgres::lanes(tx).await
    }

    async fn in_flight(&self, tx: &mut PgTx, tenant: &str) -> Result<i64, Error> {
        Postgres::in_flight(tx, tenant).await
    }

    async fn serve_job(
        &self,
        tx: &mut PgTx,
        job: &str,
        taken: i64,
        stamp: i64,
        now: f64,
    ) -> Result<ClaimedJob, Error> {
        Postgres::serve_job(tx, job, taken, stamp, now).await
    }

    async fn serve_tenant(&self, tx: &mut PgTx, tenant: &str, stamp: i64) -> Result<(), Error> {
        Postgres::serve_tenant(tx, tenant, stamp).await
    }

    async fn adjust_job(
        &self,
        tx: &mut PgTx,
        job: &str,
        delta: Delta,
        now: f64,
    ) -> Result<(), Error> {
        Postgres::adjust(tx, job, delta, now).await
    }

    async fn lock_queue(&self, tx: &mut PgTx, priority: Priority) -> Result<(), Error> {
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(LOCK_CLASS)
            .bind(db_index(priority) as i32)
            .execute(&mut **tx)
            .await
            .map_err(sql("creating a job"))?;
        Ok(())
    }

    async fn lock_tenant(&self, tx: &mut PgTx, tenant: &str) -> Result<(), Error> {
        // Another class than the queue locks: their keys are the priorities 0 to 2.
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(LOCK_CLASS + 1)
            .bind(tenant)
            .execute(&mut **tx)
            .await
            .map_err(sql("creating a job"))?;
        Ok(())
    }

    async fn insert_job(
        &self,
        tx: &mut PgTx,
        job: &NewJob,
        record: &JobRecord,
    ) -> Result<bool, Error> {
        let inserted = sqlx::query(
            "INSERT INTO jobs (id, tenant, handler, params, priority, status, idempotency_key, \
             total, queued, created_at, completed_at, timeout_seconds, max_batch_size) \
             VALUES ($1, $2, $3, $4::json, $5, $6, $7, $8, $8, $9, $10, $11, $12) \
             ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING",
        )
        .bind(record.id.as_str())
        .bind(&job.tenant)
        .bind(&job.handler)
        .bind(job.params.to_string())
        .bind(db_index(job.priority) as i64)
        .bind(record.status.as_str())
        .bind(&job.idempotency_key)
        .bind(record.total as i64)
        .bind(record.created_at)
        .bind(record.completed_at)
        .bind(job.limits.timeout_seconds)
        .bind(
            job.limits
                .max_batch_size
                .map(|n| n.min(i64::MAX as u64) as i64),
        )
        .execute(&mut **tx)
        .await
        .map_err(sql("creating a job"))?
        .rows_affected();
        Ok(inserted > 0)
    }

    async fn insert_items(
        &self,
        tx: &mut PgTx,
        id: &JobId,
        job: &NewJob,
        now: f64,
    ) -> Result<(), Error> {
        const W: &str = "creating a job";
        let data = copy_rows(id, job, now);
        let mut copy = tx
            .copy_in_raw(
                "COPY items (job_id, key, payload, priority, state, available_at) FROM STDIN",
            )
            .await
            .map_err(sql(W))?;
        for chunk in data.chunks(COPY_CHUNK) {
            if let Err(e) = copy.send(chunk).await {
                // Best effort: the transaction is rolled back either way.
                let _ = copy.abort("ferry-store: sending items failed").await;
                return Err(sql(W)(e));
            }
        }
        copy.finish().await.map_err(sql(W))?;
        Ok(())
    }

    async fn take(
        &self,
        tx: &mut PgTx,
        worker: &str,
        until: f64,
        priority: Priority,
        asks: &[(&str, i64)],
        now: f64,
    ) -> Result<Vec<Taken>, Error> {
        const W: &str = "claiming items";
        let (jobs, counts): (Vec<&str>, Vec<i64>) = asks.iter().copied().unzip();
        // One statement for every job asked: each lateral pick walks only its job's active
        // items (`items_active`); the update is a HOT update (migration 5), and the claim's
        // leases are recorded in one `leases` row, where renewals and take-backs find them.
        let rows = sqlx::query(
            "WITH picked AS MATERIALIZED (SELECT p.id \
                 FROM UNNEST($3::text[], $4::bigint[]) AS a (job_id, n) \
                 CROSS JOIN LATERAL (SELECT id FROM items \
                     WHERE job_id = a.job_id AND active AND state = 'queued' \
                     AND available_at <= $5 \
                     ORDER BY id LIMIT a.n FOR UPDATE SKIP LOCKED) p), \
             taken AS (UPDATE items i SET state = 'leased', lease_owner = $1, \
                 lease_until = $2, attempts = i.attempts + 1 \
                 FROM picked WHERE i.id = picked.id \
                 RETURNING i.id, i.job_id, i.key, i.payload::text AS payload, i.attempts), \
             granted AS (INSERT INTO leases (owner, until, items) \
                 SELECT $1, $2, array_agg(id) FROM taken HAVING COUNT(*) > 0) \
             SELECT id, job_id, key, payload, attempts FROM taken",
        )
        .bind(worker)
        .bind(until)
        .bind(&jobs)
        .bind(&counts)
        .bind(now)
        .fetch_all(&mut **tx)
        .await
        .map_err(sql(W))?;
        let taken = |row: &PgRow| -> Result<Taken, sqlx::Error> {
            Ok(Taken {
                id: row.try_get(0)?,
                job_id: row.try_get(1)?,
                key: row.try_get(2)?,
                payload: row.try_get(3)?,
                attempts: row.try_get(4)?,
                priority,
            })
        };
        rows.iter().map(|r| taken(r).map_err(sql(W))).collect()
    }

    async fn finish_leased(
        &self,
        tx: &mut PgTx,
        worker: &str,
        ids: &[i64],
    ) -> Result<Vec<(i64, String)>, Error> {
        const W: &str = "recording results";
        let rows = sqlx::query(
            "WITH mine AS MATERIALIZED (SELECT id FROM items \
                 WHERE id = ANY($1) AND state = 'leased' AND lease_owner = $2 \
                 ORDER BY id FOR UPDATE) \
             UPDATE items i SET state = 'done', lease_owner = NULL, lease_until = NULL \
             FROM mine WHERE i.id = mine.id RETURNING i.id, i.job_id",
        )
        .bind(ids)
        .bind(worker)
        .fetch_all(&mut **tx)
        .await
        .map_err(sql(W))?;
        id_and_job(&rows, W)
    }

    async fn insert_results(
        &self,
        tx: &mut PgTx,
        rows: &[(i64, &str)],
        now: f64,
    ) -> Result<Vec<i64>, Error> {
        let (ids, values): (Vec<i64>, Vec<&str>) = rows.iter().copied().unzip();
        sqlx::query_scalar(
            "INSERT INTO results (item_id, result, recorded_at) \
             SELECT t.item_id, t.result::json, $3 \
             FROM UNNEST($1::bigint[], $2::text[]) AS t (item_id, result) \
             ON CONFLICT (item_id) DO NOTHING RETURNING item_id",
        )
        .bind(&ids)
        .bind(&values)
        .bind(now)
        .fetch_all(&mut **tx)
        .await
        .map_err(sql("recording results"))
    }
}

/// The `COPY ... FROM STDIN` text-format rows for a job's items.
fn copy_rows(id: &JobId, job: &NewJob, now: f64) -> Vec<u8> {
    let mut out = String::new();
    let priority = db_index(job.priority);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_is_escaped() {
        let mut s = String::new();
        copy_escape(&mut s, "a\tb\nc\\d\re");
        assert_eq!(s, "a\\tb\\nc\\\\d\\re");
    }
}
