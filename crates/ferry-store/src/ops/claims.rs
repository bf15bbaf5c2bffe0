//! Claims and leases: handing out items by the priority rule (see
//! [`schedule`](crate::schedule)), and taking leases back from a stopping worker (release)
//! or a dead one (rescue).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::backend::{LeaseStatements, Queries};
use crate::common::{secs, Delta};
use crate::error::{json, Error};
use crate::schedule::Plan;
use crate::types::{ClaimedItem, JobId, Priority};

/// [`Store::claim`](crate::Store::claim).
pub(super) async fn claim<B: LeaseStatements>(
    b: &B,
    worker: &str,
    limit: usize,
    lease: Duration,
) -> Result<Vec<ClaimedItem>, Error> {
    const W: &str = "claiming items";
    if limit == 0 {
        return Ok(Vec::new());
    }
    let now = b.now();
    let until = now + secs(lease);
    let mut tx = b.begin(W).await?;
    let mut plan = Plan::new(limit);
    let mut rows = Vec::new();
    // The first pass asks each priority for its share; the fill pass (`None`) then asks
    // each, highest first, for whatever is still missing.
    let first = plan.first_pass().map(|(p, share)| (p, Some(share)));
    for (p, share) in first
        .into_iter()
        .chain(Priority::DESCENDING.map(|p| (p, None)))
    {
        let n = share.unwrap_or_else(|| plan.fill(p));
        if n > 0 {
            let got = b.take(&mut tx, worker, until, p, n, now).await?;
            plan.record(p, n, got.len());
            rows.extend(got);
        }
    }
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut job_ids: Vec<String> = rows.iter().map(|r| r.job_id.clone()).collect();
    job_ids.sort_unstable();
    job_ids.dedup();
    let mut info = BTreeMap::new();
    for job in b.start_jobs(&mut tx, &job_ids, now).await? {
        let params = json(&job.params, "job parameters")?;
        let cap = job.max_batch_size.map(|n| n.max(1) as u64);
        info.insert(job.id, (job.tenant, job.handler, params, cap));
    }
    b.commit(tx, W).await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for r in rows {
        let Some((tenant, handler, params, cap)) = info.get(&r.job_id) else {
            return Err(Error::Corrupt {
                message: format!("item {} belongs to a missing job {}", r.id, r.job_id),
            });
        };
        claimed.push(ClaimedItem {
            job_id: JobId::from(r.job_id),
            tenant: tenant.clone(),
            item_id: r.id,
            key: r.key,
            payload: json(&r.payload, "an item payload")?,
            handler: handler.clone(),
            params: params.clone(),
            priority: r.priority,
            attempts: r.attempts.clamp(0, u32::MAX as i64) as u32,
            max_batch_size: *cap,
        });
    }
    // Highest priority first (`Priority` orders `High` greatest).
    claimed.sort_by_key(|c| (std::cmp::Reverse(c.priority), c.item_id));
    tracing::debug!(worker, claimed = claimed.len(), "claimed items");
    Ok(claimed)
}

/// Takes leases back: all of `worker`'s ([`Store::release`](crate::Store::release), the
/// claim refunded), or all expired ones ([`Store::rescue_expired`](crate::Store::rescue_expired),
/// the attempt counts). Items of cancelled jobs end cancelled, the others are queued again.
/// Returns how many leases were taken back.
pub(super) async fn take_back<B: LeaseStatements>(
    b: &B,
    worker: Option<&str>,
    refund_attempt: bool,
) -> Result<u64, Error> {
    const W: &str = "taking leases back";
    let now = b.now();
    let mut tx = b.begin(W).await?;
    let rows = b.leases_to_take_back(&mut tx, worker, now).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut items: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (id, job) in &rows {
        items.entry(job.clone()).or_default().push(*id);
    }
    let jobs: Vec<String> = items.keys().cloned().collect();
    let cancelled = b.cancelled_jobs(&mut tx, &jobs).await?;
    let mut requeue = Vec::new();
    for (job, ids) in &items {
        if cancelled.contains(job) {
            b.end_items(&mut tx, ids, "cancelled", None).await?;
            let delta = Delta {
                cancelled: ids.len() as i64,
                ..Delta::default()
            };
            B::DB::adjust(&mut tx, job, delta, now).await?;
        } else {
            requeue.extend_from_slice(ids);
        }
    }
    if !requeue.is_empty() {
        b.requeue(&mut tx, &requeue, refund_attempt).await?;
        b.notify(&mut tx).await?;
    }
    b.commit(tx, W).await?;
    Ok(rows.len() as u64)
}
