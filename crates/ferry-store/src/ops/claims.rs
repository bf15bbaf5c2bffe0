//! Claims and leases: handing out items by the priority rule (see
//! [`schedule`](crate::schedule)) and, within a priority, by the fairness rule (see
//! [`fair`](crate::fair)); and taking leases back from a stopping worker (release) or a
//! dead one (rescue).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use crate::backend::{LeaseStatements, Queries, Taken, WriteStatements};
use crate::common::{secs, Delta};
use crate::error::{json, Error};
use crate::fair::{self, Lane};
use crate::schedule::Plan;
use crate::types::{db_index, ClaimedItem, JobId, Priority};

/// [`Store::claim`](crate::Store::claim).
pub(super) async fn claim<B: WriteStatements>(
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
    let mut tx = b.begin_write(W).await?;
    let mut lanes = b.lanes(&mut tx).await?;
    if lanes.iter().all(Vec::is_empty) {
        return Ok(Vec::new());
    }
    let mut room = BTreeMap::new();
    if let Some(max) = b.options().tenant_max_in_flight {
        let tenants: BTreeSet<&str> = lanes.iter().flatten().map(|l| l.tenant.as_str()).collect();
        for tenant in tenants {
            let busy = b.in_flight(&mut tx, tenant).await?.max(0) as u64;
            room.insert(tenant.to_owned(), max.get().saturating_sub(busy));
        }
    }
    // This claim's number: after every turn the lanes remember, so whoever it serves goes
    // to the back of the rotation.
    let stamp = 1 + lanes
        .iter()
        .flatten()
        .map(|l| l.served.max(l.tenant_served))
        .max()
        .unwrap_or(0);
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
            let lanes = &mut lanes[db_index(p)];
            let got = take_fairly(b, &mut tx, worker, until, now, p, n, lanes, &mut room).await?;
            plan.record(p, n, got.len());
            rows.extend(got);
        }
    }
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut per_job: BTreeMap<String, i64> = BTreeMap::new();
    for r in &rows {
        *per_job.entry(r.job_id.clone()).or_default() += 1;
    }
    // Jobs in id order: the lock order every operation keeps.
    let mut info = BTreeMap::new();
    let mut tenants = BTreeSet::new();
    for (job, n) in per_job {
        let served = b.serve_job(&mut tx, &job, n, stamp, now).await?;
        let params = json(&served.params, "job parameters")?;
        tenants.insert(served.tenant.clone());
        let cap = served.max_batch_size.map(|n| n.max(1) as u64);
        info.insert(job, (served.tenant, served.handler, params, cap));
    }
    for tenant in &tenants {
        b.serve_tenant(&mut tx, tenant, stamp).await?;
    }
    b.commit_write(tx, W).await?;
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

/// Takes up to `n` items of priority `p` from its `lanes` by the fairness rule, dealing
/// again what a lane could not give (it ran dry, or its items wait or are locked) until
/// `n` are taken or no lane has more. Lowers the lanes' caps and the tenants' `room`.
#[allow(clippy::too_many_arguments)]
async fn take_fairly<B: WriteStatements>(
    b: &B,
    tx: &mut B::WriteTx,
    worker: &str,
    until: f64,
    now: f64,
    p: Priority,
    n: usize,
    lanes: &mut [Lane],
    room: &mut BTreeMap<String, u64>,
) -> Result<Vec<Taken>, Error> {
    let mut out: Vec<Taken> = Vec::new();
    while out.len() < n {
        let asks = fair::deal(lanes, n - out.len(), room);
        let wanted: Vec<(&str, i64)> = lanes
            .iter()
            .zip(&asks)
            .filter(|(_, a)| **a > 0)
            .map(|(l, a)| (l.job.as_str(), *a as i64))
            .collect();
        if wanted.is_empty() {
            break;
        }
        let got = b.take(tx, worker, until, p, &wanted, now).await?;
        let mut per_job: HashMap<&str, u64> = HashMap::new();
        for t in &got {
            *per_job.entry(t.job_id.as_str()).or_default() += 1;
        }
        for (lane, ask) in lanes.iter_mut().zip(&asks) {
            if *ask == 0 {
                continue;
            }
            let g = per_job.get(lane.job.as_str()).copied().unwrap_or(0);
            // A lane that gave less than asked has nothing more for this claim.
            lane.cap = if g < *ask as u64 { 0 } else { lane.cap - g };
            lane.taken += g;
            if let Some(r) = room.get_mut(&lane.tenant) {
                *r = r.saturating_sub(g);
            }
        }
        out.extend(got);
    }
    Ok(out)
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
        let delta = if cancelled.contains(job) {
            b.end_items(&mut tx, ids, "cancelled", None).await?;
            Delta {
                cancelled: ids.len() as i64,
                ..Delta::default()
            }
        } else {
            requeue.extend_from_slice(ids);
            Delta {
                queued: ids.len() as i64,
                ..Delta::default()
            }
        };
        B::DB::adjust(&mut tx, job, delta, now).await?;
    }
    if !requeue.is_empty() {
        b.requeue(&mut tx, &requeue, refund_attempt).await?;
        b.notify(&mut tx).await?;
    }
    b.commit(tx, W).await?;
    Ok(rows.len() as u64)
}
