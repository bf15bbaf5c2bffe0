//! Ending attempts: results recorded exactly once, only under the worker's lease
//! ([`complete`]), and failed attempts retried, dead-lettered or, for a cancelled job,
//! ended cancelled ([`fail`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::backend::{LeaseStatements, Queries, WriteStatements};
use crate::common::{secs, Delta};
use crate::error::Error;
use crate::types::{FailOutcome, JobStatus};

/// [`Store::complete`](crate::Store::complete).
pub(super) async fn complete<B: WriteStatements>(
    b: &B,
    worker: &str,
    results: Vec<(i64, Value)>,
) -> Result<u64, Error> {
    const W: &str = "recording results";
    let mut by_id: BTreeMap<i64, String> = BTreeMap::new();
    for (id, value) in &results {
        by_id.entry(*id).or_insert_with(|| value.to_string());
    }
    if by_id.is_empty() {
        return Ok(0);
    }
    let now = b.now();
    let ids: Vec<i64> = by_id.keys().copied().collect();
    let mut tx = b.begin_write(W).await?;
    let job_of: BTreeMap<i64, String> = b
        .finish_leased(&mut tx, worker, &ids)
        .await?
        .into_iter()
        .collect();
    let rows: Vec<(i64, &str)> = job_of
        .keys()
        .map(|id| (*id, by_id.get(id).map_or("null", String::as_str)))
        .collect();
    let mut per_job: BTreeMap<&str, i64> = BTreeMap::new();
    if !rows.is_empty() {
        for id in b.insert_results(&mut tx, &rows, now).await? {
            if let Some(job) = job_of.get(&id) {
                *per_job.entry(job).or_default() += 1;
            }
        }
    }
    let mut recorded = 0;
    // Under an in-flight quota, a finished item may let a waiting worker claim again.
    if !per_job.is_empty() && b.options().tenant_max_in_flight.is_some() {
        b.notify_write(&mut tx).await?;
    }
    for (job, n) in per_job {
        recorded += n as u64;
        let delta = Delta {
            succeeded: n,
            ..Delta::default()
        };
        b.adjust_job(&mut tx, job, delta, now).await?;
    }
    b.commit_write(tx, W).await?;
    if recorded < by_id.len() as u64 {
        tracing::debug!(
            worker,
            skipped = by_id.len() as u64 - recorded,
            "results for items not leased to this worker were skipped"
        );
    }
    Ok(recorded)
}

/// [`Store::fail`](crate::Store::fail).
pub(super) async fn fail<B: LeaseStatements>(
    b: &B,
    worker: &str,
    item_id: i64,
    error: &str,
    retry_after: Option<Duration>,
    dead: bool,
) -> Result<FailOutcome, Error> {
    const W: &str = "recording a failed item";
    let now = b.now();
    let mut tx = b.begin(W).await?;
    let Some(item) = b.leased_item(&mut tx, worker, item_id).await? else {
        return Ok(FailOutcome::NotLeased);
    };
    let (outcome, delta) = if item.job_status == JobStatus::Cancelled.as_str() {
        b.end_items(&mut tx, &[item_id], "cancelled", Some(error))
            .await?;
        let delta = Delta {
            cancelled: 1,
            ..Delta::default()
        };
        (FailOutcome::Cancelled, delta)
    } else if dead {
        b.end_items(&mut tx, &[item_id], "dead", Some(error))
            .await?;
        B::DB::insert_dead_letter(&mut tx, item_id, &item.tenant, error, item.attempts, now)
            .await?;
        if b.options().tenant_max_in_flight.is_some() {
            b.notify(&mut tx).await?;
        }
        let delta = Delta {
            failed: 1,
            ..Delta::default()
        };
        (FailOutcome::DeadLettered, delta)
    } else {
        let at = now + retry_after.map_or(0.0, secs);
        B::DB::retry_later(&mut tx, item_id, at, error).await?;
        b.notify(&mut tx).await?;
        let delta = Delta {
            queued: 1,
            ..Delta::default()
        };
        (FailOutcome::Retrying, delta)
    };
    B::DB::adjust(&mut tx, &item.job, delta, now).await?;
    b.commit(tx, W).await?;
    Ok(outcome)
}
