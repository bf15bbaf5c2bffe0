//! SQLite's lease, failure and take-back statements (claims and completion are in
//! `writes`). Many rows are written from one JSON array of ids (`json_each`).

use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::backend::{Backend, LeaseStatements, LeasedItem};
use crate::error::{sql, Error};
use crate::sqlite::sql::id_list;
use crate::sqlite::store::{SqliteStore, SqliteTx};

/// Decodes `(id, job_id)` rows.
fn id_and_job(rows: &[SqliteRow], what: &'static str) -> Result<Vec<(i64, String)>, Error> {
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get(0).map_err(sql(what))?,
                row.try_get(1).map_err(sql(what))?,
            ))
        })
        .collect()
}

impl LeaseStatements for SqliteStore {
    async fn extend_leases(&self, worker: &str, until: f64) -> Result<u64, Error> {
        let r = sqlx::query(
            "UPDATE items SET lease_until = $2 WHERE state = 'leased' AND lease_owner = $1",
        )
        .bind(worker)
        .bind(until)
        .execute(self.writer())
        .await
        .map_err(sql("extending leases"))?;
        Ok(r.rows_affected())
    }

    async fn leased_item(
        &self,
        tx: &mut SqliteTx,
        worker: &str,
        item_id: i64,
    ) -> Result<Option<LeasedItem>, Error> {
        const W: &str = "recording a failed item";
        let row = sqlx::query(
            "SELECT i.job_id, i.attempts, j.status, j.tenant FROM items i \
             JOIN jobs j ON j.id = i.job_id \
             WHERE i.id = $1 AND i.state = 'leased' AND i.lease_owner = $2",
        )
        .bind(item_id)
        .bind(worker)
        .fetch_optional(&mut **tx)
        .await
        .map_err(sql(W))?;
        row.map(|row| {
            Ok(LeasedItem {
                job: row.try_get(0).map_err(sql(W))?,
                attempts: row.try_get(1).map_err(sql(W))?,
                job_status: row.try_get(2).map_err(sql(W))?,
                tenant: row.try_get(3).map_err(sql(W))?,
            })
        })
        .transpose()
    }

    async fn leases_to_take_back(
        &self,
        tx: &mut SqliteTx,
        worker: Option<&str>,
        now: f64,
    ) -> Result<Vec<(i64, String)>, Error> {
        const W: &str = "taking leases back";
        let rows = match worker {
            Some(worker) => sqlx::query(
                "SELECT id, job_id FROM items WHERE state = 'leased' AND lease_owner = $1",
            )
            .bind(worker),
            None => sqlx::query(
                "SELECT id, job_id FROM items WHERE state = 'leased' AND lease_until < $1",
            )
            .bind(now),
        }
        .fetch_all(&mut **tx)
        .await
        .map_err(sql(W))?;
        id_and_job(&rows, W)
    }

    async fn cancelled_jobs(
        &self,
        tx: &mut SqliteTx,
        jobs: &[String],
    ) -> Result<Vec<String>, Error> {
        sqlx::query_scalar(
            "SELECT id FROM jobs WHERE id IN (SELECT value FROM json_each($1)) \
             AND status = 'cancelled'",
        )
        .bind(Value::from(jobs.to_vec()).to_string())
        .fetch_all(&mut **tx)
        .await
        .map_err(sql("reading job states"))
    }

    async fn requeue(
        &self,
        tx: &mut SqliteTx,
        ids: &[i64],
        refund_attempt: bool,
    ) -> Result<(), Error> {
        let attempts = if refund_attempt {
            "MAX(attempts - 1, 0)"
        } else {
            "attempts"
        };
        sqlx::query(&format!(
            "UPDATE items SET state = 'queued', lease_owner = NULL, lease_until = NULL, \
             attempts = {attempts} WHERE id IN (SELECT value FROM json_each($1))"
        ))
        .bind(id_list(ids))
        .execute(&mut **tx)
        .await
        .map_err(sql("taking leases back"))?;
        Ok(())
    }

    async fn end_items(
        &self,
        tx: &mut SqliteTx,
        ids: &[i64],
        state: &'static str,
        error: Option<&str>,
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE items SET state = $2, lease_owner = NULL, lease_until = NULL, \
             last_error = COALESCE($3, last_error) WHERE id IN (SELECT value FROM json_each($1))",
        )
        .bind(id_list(ids))
        .bind(state)
        .bind(error)
        .execute(&mut **tx)
        .await
        .map_err(sql("ending items"))?;
        Ok(())
    }
}
