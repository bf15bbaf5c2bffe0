//! SQLite's claim, lease, completion and failure statements. Statements that pick many rows
//! answer them as one JSON array (`json_group_array`), and many rows are written from one
//! (`json_each`): sqlx passes every row between the connection's thread and the caller
//! separately, so fewer rows mean fewer thread hand-offs.

use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::backend::{Backend, LeaseStatements, LeasedItem, Taken};
use crate::error::{sql, Error};
use crate::sqlite::sql::id_list;
use crate::sqlite::store::{SqliteStore, SqliteTx};
use crate::types::Priority;

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

/// Decodes the one JSON row an aggregating statement (`json_group_array`) answers.
fn decode<T: serde::de::DeserializeOwned>(text: &str, what: &'static str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt {
        message: format!("{what}: an aggregated row is not the JSON expected: {e}"),
    })
}

impl LeaseStatements for SqliteStore {
    async fn take(
        &self,
        tx: &mut SqliteTx,
        worker: &str,
        until: f64,
        priority: Priority,
        asks: &[(&str, i64)],
        now: f64,
    ) -> Result<Vec<Taken>, Error> {
        const W: &str = "claiming items";
        let mut taken = Vec::new();
        // Per job, one cached `SELECT` answering one row (the picked items as one JSON
        // array); then one `UPDATE` leases them all. sqlx hands every row a statement answers
        // from the connection's thread to the caller one by one, so one row beats a
        // `RETURNING` of hundreds.
        for (job, n) in asks {
            let picked: String = sqlx::query_scalar(
                "SELECT json_group_array(json_array(id, key, payload, attempts + 1)) \
                 FROM (SELECT id, key, payload, attempts FROM items \
                 WHERE job_id = $1 AND state = 'queued' AND available_at <= $2 \
                 ORDER BY id LIMIT $3)",
            )
            .bind(*job)
            .bind(now)
            .bind(*n)
            .fetch_one(&mut **tx)
            .await
            .map_err(sql(W))?;
            let picked: Vec<(i64, String, String, i64)> = decode(&picked, W)?;
            taken.extend(
                picked
                    .into_iter()
                    .map(|(id, key, payload, attempts)| Taken {
                        id,
                        job_id: (*job).to_owned(),
                        key,
                        payload,
                        attempts,
                        priority,
                    }),
            );
        }
        if !taken.is_empty() {
            let ids: Vec<i64> = taken.iter().map(|t| t.id).collect();
            sqlx::query(
                "UPDATE items SET state = 'leased', lease_owner = $1, lease_until = $2, \
                 attempts = attempts + 1 WHERE id IN (SELECT value FROM json_each($3))",
            )
            .bind(worker)
            .bind(until)
            .bind(id_list(&ids))
            .execute(&mut **tx)
            .await
            .map_err(sql(W))?;
        }
        Ok(taken)
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
        // One row answered (see `take`): the items still leased to `worker`, then one
        // `UPDATE` ends them.
        let held: String = sqlx::query_scalar(
            "SELECT json_group_array(json_array(id, job_id)) FROM items \
             WHERE id IN (SELECT value FROM json_each($1)) AND state = 'leased' \
             AND lease_owner = $2",
        )
        .bind(id_list(ids))
        .bind(worker)
        .fetch_one(&mut **tx)
        .await
        .map_err(sql(W))?;
        let held: Vec<(i64, String)> = decode(&held, W)?;
        if !held.is_empty() {
            let ids: Vec<i64> = held.iter().map(|(id, _)| *id).collect();
            sqlx::query(
                "UPDATE items SET state = 'done', lease_owner = NULL, lease_until = NULL \
                 WHERE id IN (SELECT value FROM json_each($1))",
            )
            .bind(id_list(&ids))
            .execute(&mut **tx)
            .await
            .map_err(sql(W))?;
        }
        Ok(held)
    }

    async fn insert_results(
        &self,
        tx: &mut SqliteTx,
        rows: &[(i64, &str)],
        now: f64,
    ) -> Result<Vec<i64>, Error> {
        const W: &str = "recording results";
        // Items that already have a result keep it (the unique key's backstop; an item
        // just taken from its lease has none). One row answered (see `take`), then one cached
        // `INSERT` of the rows as one JSON array of `[id, result text]`.
        let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
        let had: String = sqlx::query_scalar(
            "SELECT json_group_array(item_id) FROM results \
             WHERE item_id IN (SELECT value FROM json_each($1))",
        )
        .bind(id_list(&ids))
        .fetch_one(&mut **tx)
        .await
        .map_err(sql(W))?;
        let had: std::collections::HashSet<i64> = decode(&had, W)?;
        let rows = serde_json::to_string(rows).map_err(|e| Error::Corrupt {
            message: format!("a result could not be encoded: {e}"),
        })?;
        sqlx::query(
            "INSERT INTO results (item_id, result, recorded_at) \
             SELECT value ->> 0, value ->> 1, $2 FROM json_each($1) WHERE true \
             ON CONFLICT (item_id) DO NOTHING",
        )
        .bind(rows)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(sql(W))?;
        Ok(ids.into_iter().filter(|id| !had.contains(id)).collect())
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
