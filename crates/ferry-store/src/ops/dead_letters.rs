//! Re-driving dead letters: the tenant's dead items of unfinished jobs go back to the queue
//! with their attempts reset, and their jobs count them as failed no more.

use std::collections::BTreeMap;

use crate::backend::{JobStatements, LeaseStatements, Queries};
use crate::common::Delta;
use crate::error::Error;

/// [`Store::redrive`](crate::Store::redrive).
pub(super) async fn redrive<B: JobStatements + LeaseStatements>(
    b: &B,
    tenant: &str,
    item_ids: Vec<i64>,
) -> Result<u64, Error> {
    const W: &str = "redriving dead letters";
    if item_ids.is_empty() {
        return Ok(0);
    }
    let now = b.now();
    let mut tx = b.begin(W).await?;
    let mut items: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (id, job) in b.dead_items(&mut tx, tenant, &item_ids).await? {
        items.entry(job).or_default().push(id);
    }
    let jobs: Vec<String> = items.keys().cloned().collect();
    let cancelled = b.cancelled_jobs(&mut tx, &jobs).await?;
    let mut ids = Vec::new();
    for (job, job_items) in &items {
        if cancelled.contains(job) {
            continue;
        }
        ids.extend_from_slice(job_items);
        let delta = Delta {
            failed: -(job_items.len() as i64),
            queued: job_items.len() as i64,
            ..Delta::default()
        };
        B::DB::adjust(&mut tx, job, delta, now).await?;
    }
    if ids.is_empty() {
        return Ok(0);
    }
    b.redrive_items(&mut tx, &ids, now).await?;
    b.notify(&mut tx).await?;
    b.commit(tx, W).await?;
    Ok(ids.len() as u64)
}
