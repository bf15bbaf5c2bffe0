//! SQLite's claim, lease, completion and failure statements. Claims are one
//! `UPDATE … RETURNING` per priority; results go in multi-row `INSERT`s.

use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::backend::{Backend, ClaimedJob, LeaseStatements, LeasedItem, Taken};
use crate::error::{sql, Error};
use crate::sqlite::sql::{id_list, values, INSERT_CHUNK};
use crate::sqlite::store::{SqliteStore, SqliteTx};
use crate::types::{db_index, Priority};

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
    async fn take(
        &self,
        tx: &mut SqliteTx,
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
        .bind(db_index(priority) as i64)
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

    async fn start_jobs(
        &self,
        tx: &mut SqliteTx,
        job_ids: &[String],
        now: f64,
    ) -> Result<Vec<ClaimedJob>, Error> {
        const W: &str = "claiming items";
        let ids = Value::from(job_ids.to_vec()).to_string();
        let rows = sqlx::query(
            "SELECT id, tenant, handler, params, max_batch_size FROM jobs \
             WHERE id IN (SELECT value FROM json_each($1))",
        )
        .bind(&ids)
        .fetch_all(&mut **tx)
        .await
        .map_err(sql(W))?;
        sqlx::query(
            "UPDATE jobs SET started_at = $2, \
             status = CASE WHEN status = 'pending' THEN 'processing' ELSE status END \
             WHERE id IN (SELECT value FROM json_each($1)) AND started_at IS NULL",
        )
        .bind(&ids)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(sql(W))?;
        rows.iter()
            .map(|row| {
                Ok(ClaimedJob {
                    id: row.try_get(0).map_err(sql(W))?,
                    tenant: row.try_get(1).map_err(sql(W))?,
                    handler: row.try_get(2).map_err(sql(W))?,
                    params: row.try_get(3).map_err(sql(W))?,
                    max_batch_size: row.try_get(4).map_err(sql(W))?,
                })
            })
            .collect()
    }

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

    async fn finish_leased(
        &self,
        tx: &mut SqliteTx,
        worker: &str,
        ids: &[i64],
    ) -> Result<Vec<(i64, String)>, Error> {
        const W: &str = "recording results";
        let rows = sqlx::query(
            "UPDATE items SET state = 'done', lease_owner = NULL, lease_until = NULL \
             WHERE id IN (SELECT value FROM json_each($1)) AND state = 'leased' \
             AND lease_owner = $2 RETURNING id, job_id",
        )
        .bind(id_list(ids))
        .bind(worker)
        .fetch_all(&mut **tx)
        .await
        .map_err(sql(W))?;
        id_and_job(&rows, W)
    }

    async fn insert_results(
        &self,
        tx: &mut SqliteTx,
        rows: &[(i64, &str)],
        now: f64,
    ) -> Result<Vec<i64>, Error> {
        const W: &str = "recording results";
        let mut inserted = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(INSERT_CHUNK) {
            let q = format!(
                "INSERT INTO results (item_id, result, recorded_at) VALUES {} \
                 ON CONFLICT (item_id) DO NOTHING RETURNING item_id",
                values(chunk.len(), 2, 2, "({}, $1)")
            );
            let mut query = sqlx::query_scalar::<_, i64>(&q).persistent(false).bind(now);
            for (id, result) in chunk {
                query = query.bind(*id).bind(*result);
            }
            inserted.extend(query.fetch_all(&mut **tx).await.map_err(sql(W))?);
        }
        Ok(inserted)
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
