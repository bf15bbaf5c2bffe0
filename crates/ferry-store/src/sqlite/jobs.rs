//! SQLite's submission, cancellation and re-drive statements: items inserted, and id lists
//! passed, as one JSON array each (`json_each`). No row locks:
//! every write transaction holds SQLite's one write lock.

use sqlx::Row;

use crate::backend::JobStatements;
use crate::error::{sql, Error};
use crate::sqlite::sql::id_list;
use crate::sqlite::store::{SqliteStore, SqliteTx};
use crate::types::{db_index, JobId, JobRecord, NewJob, Priority};

impl JobStatements for SqliteStore {
    async fn lock_queue(&self, _tx: &mut SqliteTx, _priority: Priority) -> Result<(), Error> {
        // `BEGIN IMMEDIATE` already serialises every writer.
        Ok(())
    }

    async fn lock_tenant(&self, _tx: &mut SqliteTx, _tenant: &str) -> Result<(), Error> {
        // `BEGIN IMMEDIATE` already serialises every writer.
        Ok(())
    }

    async fn insert_job(
        &self,
        tx: &mut SqliteTx,
        job: &NewJob,
        record: &JobRecord,
    ) -> Result<bool, Error> {
        sqlx::query(
            "INSERT INTO jobs (id, tenant, handler, params, priority, status, idempotency_key, \
             total, queued, created_at, completed_at, timeout_seconds, max_batch_size) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11, $12)",
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
        .map_err(sql("creating a job"))?;
        // The idempotency key was checked under the same write lock.
        Ok(true)
    }

    async fn insert_items(
        &self,
        tx: &mut SqliteTx,
        id: &JobId,
        job: &NewJob,
        now: f64,
    ) -> Result<(), Error> {
        // One cached statement for the whole job, whatever its size: the items travel as
        // one JSON array of `[key, payload text]` pairs, read by `json_each` (no statement
        // text to build, no placeholders to look up).
        let rows: Vec<(&str, String)> = job
            .items
            .iter()
            .map(|item| (item.key.as_str(), item.payload.to_string()))
            .collect();
        let rows = serde_json::to_string(&rows).map_err(|e| Error::Corrupt {
            message: format!("an item could not be encoded: {e}"),
        })?;
        sqlx::query(
            "INSERT INTO items (job_id, key, payload, priority, state, available_at) \
             SELECT $1, value ->> 0, value ->> 1, $2, 'queued', $3 FROM json_each($4)",
        )
        .bind(id.as_str())
        .bind(db_index(job.priority) as i64)
        .bind(now)
        .bind(rows)
        .execute(&mut **tx)
        .await
        .map_err(sql("creating a job"))?;
        Ok(())
    }

    async fn lock_job_status(
        &self,
        tx: &mut SqliteTx,
        tenant: &str,
        id: &JobId,
    ) -> Result<Option<String>, Error> {
        sqlx::query_scalar("SELECT status FROM jobs WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id.as_str())
            .fetch_optional(&mut **tx)
            .await
            .map_err(sql("cancelling a job"))
    }

    async fn cancel_queued(&self, tx: &mut SqliteTx, id: &JobId) -> Result<u64, Error> {
        let r = sqlx::query(
            "UPDATE items SET state = 'cancelled' WHERE job_id = $1 AND state = 'queued'",
        )
        .bind(id.as_str())
        .execute(&mut **tx)
        .await
        .map_err(sql("cancelling a job"))?;
        Ok(r.rows_affected())
    }

    async fn dead_items(
        &self,
        tx: &mut SqliteTx,
        tenant: &str,
        ids: &[i64],
    ) -> Result<Vec<(i64, String)>, Error> {
        const W: &str = "redriving dead letters";
        let rows = sqlx::query(
            "SELECT d.item_id, i.job_id FROM dead_letters d JOIN items i ON i.id = d.item_id \
             WHERE d.tenant = $1 AND d.item_id IN (SELECT value FROM json_each($2)) \
             AND i.state = 'dead' ORDER BY i.id",
        )
        .bind(tenant)
        .bind(id_list(ids))
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

    async fn redrive_items(&self, tx: &mut SqliteTx, ids: &[i64], now: f64) -> Result<(), Error> {
        const W: &str = "redriving dead letters";
        let ids = id_list(ids);
        sqlx::query("DELETE FROM dead_letters WHERE item_id IN (SELECT value FROM json_each($1))")
            .bind(&ids)
            .execute(&mut **tx)
            .await
            .map_err(sql(W))?;
        sqlx::query(
            "UPDATE items SET state = 'queued', attempts = 0, available_at = $2, \
             lease_owner = NULL, lease_until = NULL \
             WHERE id IN (SELECT value FROM json_each($1))",
        )
        .bind(&ids)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(sql(W))?;
        Ok(())
    }
}
