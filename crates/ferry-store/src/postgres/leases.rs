//! PostgreSQL's lease, failure and take-back statements (claims and completion are in
//! `writes`). Rows are locked items first, then jobs in id order, so no two operations
//! deadlock. A worker's leases are found through `leases`, one row per claim (no index of
//! `items` covers the lease columns, so that a claim's update is a HOT update); the item row
//! stays the truth, and every statement checks it. Lock order: `leases` rows are locked
//! only by statements that then wait on no row lock (item locks there skip locked rows), or
//! after the items they cover.

use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::backend::{Backend, LeaseStatements, LeasedItem};
use crate::error::{sql, Error};
use crate::postgres::store::{PgStore, PgTx};

/// Decodes `(id, job_id)` rows.
pub(super) fn id_and_job(rows: &[PgRow], what: &'static str) -> Result<Vec<(i64, String)>, Error> {
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
    async fn extend_leases(&self, worker: &str, until: f64) -> Result<u64, Error> {
        const W: &str = "extending leases";
        // First the worker's claims whose items have all ended (or moved on) are dropped.
        sqlx::query(
            "DELETE FROM leases g WHERE owner = $1 AND NOT EXISTS (SELECT 1 FROM items i \
             WHERE i.id = ANY(g.items) AND i.state = 'leased' AND i.lease_owner = $1)",
        )
        .bind(worker)
        .execute(self.writer())
        .await
        .map_err(sql(W))?;
        // Items being completed right now are locked and skipped: they are ending anyway.
        let r = sqlx::query(
            "WITH held AS (UPDATE leases SET until = $2 WHERE owner = $1 RETURNING items), \
             mine AS MATERIALIZED (SELECT id FROM items \
                 WHERE id IN (SELECT UNNEST(items) FROM held) AND state = 'leased' \
                 AND lease_owner = $1 ORDER BY id FOR UPDATE SKIP LOCKED) \
             UPDATE items i SET lease_until = $2 FROM mine WHERE i.id = mine.id",
        )
        .bind(worker)
        .bind(until)
        .execute(self.writer())
        .await
        .map_err(sql(W))?;
        Ok(r.rows_affected())
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
            // deadlock), then skips what it finished. Every item of the worker's claims is
            // then taken back or ended, so the claims' rows go too.
            Some(worker) => {
                let rows = sqlx::query(
                    "SELECT id, job_id FROM items \
                     WHERE id IN (SELECT UNNEST(items) FROM leases WHERE owner = $1) \
                     AND state = 'leased' AND lease_owner = $1 ORDER BY id FOR UPDATE",
                )
                .bind(worker)
                .fetch_all(&mut **tx)
                .await
                .map_err(sql(W))?;
                sqlx::query("DELETE FROM leases WHERE owner = $1")
                    .bind(worker)
                    .execute(&mut **tx)
                    .await
                    .map_err(sql(W))?;
                return id_and_job(&rows, W);
            }
            // Skips items locked by a concurrent `complete`.
            None => {
                // First drops the expired claims none of whose items is still leased
                // under them (a dead worker's, once their items were taken back).
                sqlx::query(
                    "DELETE FROM leases g WHERE until < $1 AND NOT EXISTS \
                     (SELECT 1 FROM items i WHERE i.id = ANY(g.items) AND i.state = 'leased' \
                     AND i.lease_owner = g.owner)",
                )
                .bind(now)
                .execute(&mut **tx)
                .await
                .map_err(sql(W))?;
                sqlx::query(
                    "SELECT id, job_id FROM items \
                     WHERE id IN (SELECT UNNEST(items) FROM leases WHERE until < $1) \
                     AND state = 'leased' AND lease_until < $1 \
                     ORDER BY id FOR UPDATE SKIP LOCKED",
                )
                .bind(now)
            }
        }
        .fetch_all(&mut **tx)
        .await
        .map_err(sql(W))?;
        id_and_job(&rows, W)
    }

    async fn cancelled_jobs(&self, tx: &mut PgTx, jobs: &[String]) -> Result<Vec<String>, Error> {
        const W: &str = "locking jobs";
        // Every job is locked, cancelled or not (the caller updates them all); a status
        // filter in SQL would be pushed below the lock and leave the others unlocked.
        let rows =
            sqlx::query("SELECT id, status FROM jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE")
                .bind(jobs)
                .fetch_all(&mut **tx)
                .await
                .map_err(sql(W))?;
        let mut cancelled = Vec::new();
        for row in &rows {
            let status: String = row.try_get(1).map_err(sql(W))?;
            if status == "cancelled" {
                cancelled.push(row.try_get(0).map_err(sql(W))?);
            }
        }
        Ok(cancelled)
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
