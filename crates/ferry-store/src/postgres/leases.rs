//! PostgreSQL's claim, lease, completion and failure statements. Claims pick items with
//! `FOR UPDATE SKIP LOCKED`, so concurrent workers never wait on each other; rows are locked
//! items first, then jobs in id order, so no two operations deadlock; results go in one
//! `UNNEST` insert.

use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::backend::{Backend, ClaimedJob, LeaseStatements, LeasedItem, Taken};
use crate::error::{sql, Error};
use crate::postgres::store::{PgStore, PgTx};
use crate::types::{db_index, Priority};

/// Decodes `(id, job_id)` rows.
fn id_and_job(rows: &[PgRow], what: &'static str) -> Result<Vec<(i64, String)>, Error> {
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get(0).map_err(sql(what))?,
                row.try_get(1).map_err(sql(what))?,
            ))
        })
        .collect()
}

impl LeaseStatements for PgStore {
    async fn take(
        &self,
        tx: &mut PgTx,
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
        .bind(db_index(priority) as i64)
        .bind(now)
        .bind(n as i64)
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

    async fn start_jobs(
        &self,
        tx: &mut PgTx,
        job_ids: &[String],
        now: f64,
    ) -> Result<Vec<ClaimedJob>, Error> {
        const W: &str = "claiming items";
        let rows = sqlx::query(
            "SELECT id, tenant, handler, params::text, started_at IS NULL, max_batch_size FROM jobs \
             WHERE id = ANY($1) ORDER BY id",
        )
        .bind(job_ids)
        .fetch_all(&mut **tx)
        .await
        .map_err(sql(W))?;
        let mut jobs = Vec::with_capacity(rows.len());
        for row in &rows {
            let job = ClaimedJob {
                id: row.try_get(0).map_err(sql(W))?,
                tenant: row.try_get(1).map_err(sql(W))?,
                handler: row.try_get(2).map_err(sql(W))?,
                params: row.try_get(3).map_err(sql(W))?,
                max_batch_size: row.try_get(5).map_err(sql(W))?,
            };
            // One job at a time, in id order: the lock order every operation keeps.
            if row.try_get::<bool, _>(4).map_err(sql(W))? {
                sqlx::query(
                    "UPDATE jobs SET started_at = $2, \
                     status = CASE WHEN status = 'pending' THEN 'processing' ELSE status END \
                     WHERE id = $1 AND started_at IS NULL",
                )
                .bind(&job.id)
                .bind(now)
                .execute(&mut **tx)
                .await
                .map_err(sql(W))?;
            }
            jobs.push(job);
        }
        Ok(jobs)
    }

    async fn extend_leases(&self, worker: &str, until: f64) -> Result<u64, Error> {
        // Items being completed right now are locked and skipped: they are ending anyway.
        let r = sqlx::query(
            "WITH mine AS MATERIALIZED (SELECT id FROM items \
                 WHERE state = 'leased' AND lease_owner = $1 ORDER BY id FOR UPDATE SKIP LOCKED) \
             UPDATE items i SET lease_until = $2 FROM mine WHERE i.id = mine.id",
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

    async fn leased_item(
        &self,
        tx: &mut PgTx,
        worker: &str,
        item_id: i64,
    ) -> Result<Option<LeasedItem>, Error> {
        const W: &str = "recording a failed item";
        let row = sqlx::query(
            "SELECT job_id, attempts FROM items \
             WHERE id = $1 AND state = 'leased' AND lease_owner = $2 FOR UPDATE",
        )
        .bind(item_id)
        .bind(worker)
        .fetch_optional(&mut **tx)
        .await
        .map_err(sql(W))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let job: String = row.try_get(0).map_err(sql(W))?;
        let attempts: i64 = row.try_get(1).map_err(sql(W))?;
        let row = sqlx::query("SELECT status, tenant FROM jobs WHERE id = $1 FOR UPDATE")
            .bind(&job)
            .fetch_one(&mut **tx)
            .await
            .map_err(sql(W))?;
        Ok(Some(LeasedItem {
            job,
            attempts,
            job_status: row.try_get(0).map_err(sql(W))?,
            tenant: row.try_get(1).map_err(sql(W))?,
        }))
    }

    async fn leases_to_take_back(
        &self,
        tx: &mut PgTx,
        worker: Option<&str>,
        now: f64,
    ) -> Result<Vec<(i64, String)>, Error> {
        const W: &str = "taking leases back";
        let rows = match worker {
            // Waits for the worker's own in-progress `complete` (same id order: no
            // deadlock), then skips what it finished.
            Some(worker) => sqlx::query(
                "SELECT id, job_id FROM items WHERE state = 'leased' AND lease_owner = $1 \
                 ORDER BY id FOR UPDATE",
            )
            .bind(worker),
            // Skips items locked by a concurrent `complete`.
            None => sqlx::query(
                "SELECT id, job_id FROM items WHERE state = 'leased' AND lease_until < $1 \
                 ORDER BY id FOR UPDATE SKIP LOCKED",
            )
            .bind(now),
        }
        .fetch_all(&mut **tx)
        .await
        .map_err(sql(W))?;
        id_and_job(&rows, W)
    }

    async fn cancelled_jobs(&self, tx: &mut PgTx, jobs: &[String]) -> Result<Vec<String>, Error> {
        sqlx::query_scalar(
            "SELECT id FROM (SELECT id, status FROM jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE) j \
             WHERE status = 'cancelled'",
        )
        .bind(jobs)
        .fetch_all(&mut **tx)
        .await
        .map_err(sql("locking jobs"))
    }

    async fn requeue(&self, tx: &mut PgTx, ids: &[i64], refund_attempt: bool) -> Result<(), Error> {
        let attempts = if refund_attempt {
            "GREATEST(attempts - 1, 0)"
        } else {
            "attempts"
        };
        sqlx::query(&format!(
            "UPDATE items SET state = 'queued', lease_owner = NULL, lease_until = NULL, \
             attempts = {attempts} WHERE id = ANY($1)"
        ))
        .bind(ids)
        .execute(&mut **tx)
        .await
        .map_err(sql("taking leases back"))?;
        Ok(())
    }

    async fn end_items(
        &self,
        tx: &mut PgTx,
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
}
