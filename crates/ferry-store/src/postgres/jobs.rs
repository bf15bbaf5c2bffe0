//! PostgreSQL's cancellation and re-drive statements: rows locked (`FOR UPDATE`) before
//! they change.

use sqlx::Row;

use crate::backend::JobStatements;
use crate::error::{sql, Error};
use crate::postgres::store::{PgStore, PgTx};
use crate::types::JobId;

impl JobStatements for PgStore {
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
                 WHERE job_id = $1 AND active AND state = 'queued' FOR UPDATE SKIP LOCKED) \
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
