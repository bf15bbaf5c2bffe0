//! SQLite's cancellation and re-drive statements: id lists passed as one JSON array each
//! (`json_each`). No row locks: every write transaction holds SQLite's one write lock.

use sqlx::Row;

use crate::backend::JobStatements;
use crate::error::{sql, Error};
use crate::sqlite::sql::id_list;
use crate::sqlite::store::{SqliteStore, SqliteTx};
use crate::types::JobId;

impl JobStatements for SqliteStore {
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
