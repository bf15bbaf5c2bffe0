//! PostgreSQL's submission, cancellation and re-drive statements: items bulk-inserted with
//! `COPY`, queue limits serialised by an advisory lock, rows locked (`FOR UPDATE`) before
//! they change.

use sqlx::Row;

use crate::backend::JobStatements;
use crate::error::{sql, Error};
use crate::postgres::migrations::LOCK_CLASS;
use crate::postgres::store::{PgStore, PgTx};
use crate::types::{db_index, JobId, JobRecord, NewJob, Priority};

/// Bytes per `COPY` message.
const COPY_CHUNK: usize = 1 << 20;

impl JobStatements for PgStore {
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

    async fn lock_job_status(
        &self,
        tx: &mut PgTx,
        tenant: &str,
        id: &JobId,
    ) -> Result<Option<String>, Error> {
        sqlx::query_scalar("SELECT status FROM jobs WHERE tenant = $1 AND id = $2 FOR UPDATE")
            .bind(tenant)
            .bind(id.as_str())
            .fetch_optional(&mut **tx)
            .await
            .map_err(sql("cancelling a job"))
    }

    async fn cancel_queued(&self, tx: &mut PgTx, id: &JobId) -> Result<u64, Error> {
        // Items locked by a concurrent claim are becoming in-flight: skip them, they end
        // cancelled (or with their result) when their worker reports.
        let r = sqlx::query(
            "WITH q AS MATERIALIZED (SELECT id FROM items \
                 WHERE job_id = $1 AND state = 'queued' FOR UPDATE SKIP LOCKED) \
             UPDATE items i SET state = 'cancelled' FROM q WHERE i.id = q.id",
        )
        .bind(id.as_str())
        .execute(&mut **tx)
        .await
        .map_err(sql("cancelling a job"))?;
        Ok(r.rows_affected())
    }

    async fn dead_items(
        &self,
        tx: &mut PgTx,
        tenant: &str,
        ids: &[i64],
    ) -> Result<Vec<(i64, String)>, Error> {
        const W: &str = "redriving dead letters";
        let rows = sqlx::query(
            "SELECT i.id, i.job_id FROM dead_letters d JOIN items i ON i.id = d.item_id \
             WHERE d.tenant = $1 AND d.item_id = ANY($2) AND i.state = 'dead' \
             ORDER BY i.id FOR UPDATE OF i",
        )
        .bind(tenant)
        .bind(ids)
        .fetch_all(&mut **tx)
        .await
        .map_err(sql(W))?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get(0).map_err(sql(W))?,
                    row.try_get(1).map_err(sql(W))?,
                ))
            })
            .collect()
    }

    async fn redrive_items(&self, tx: &mut PgTx, ids: &[i64], now: f64) -> Result<(), Error> {
        const W: &str = "redriving dead letters";
        sqlx::query("DELETE FROM dead_letters WHERE item_id = ANY($1)")
            .bind(ids)
            .execute(&mut **tx)
            .await
            .map_err(sql(W))?;
        sqlx::query(
            "UPDATE items SET state = 'queued', attempts = 0, available_at = $2, \
             lease_owner = NULL, lease_until = NULL WHERE id = ANY($1)",
        )
        .bind(ids)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(sql(W))?;
        Ok(())
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
