//! Submitting jobs (validation, idempotency keys, queue limits, bulk item inserts),
//! cancelling them, failing those past their deadline, and the measured throughput.

use crate::backend::{JobStatements, Queries, WriteStatements};
use crate::common::{self, RETRY_WINDOW_SECS};
use crate::error::Error;
use crate::types::{JobId, JobRecord, JobStatus, NewJob, Submitted};

/// [`Store::submit_job`](crate::Store::submit_job).
///
/// The queue limits are exact: the count that admits a job is taken under a lock that
/// serialises submissions of its priority (and of its tenant, for the quota). That lock is
/// taken *after* the job and its items are written, just before the commit, so concurrent
/// submissions write their items side by side and queue only for the count and the commit
/// (on PostgreSQL a `COPY` of a hundred items takes milliseconds; holding the lock across
/// it made every submission wait for the others' copies). The count then includes the job
/// itself, which is subtracted; a job refused at that point is rolled back. An unlocked
/// look before the writes turns most refusals away without writing anything, so a full
/// queue does not cost a copy per retried request.
pub(super) async fn submit<B: WriteStatements>(b: &B, job: NewJob) -> Result<Submitted, Error> {
    const W: &str = "creating a job";
    common::validate(&job)?;
    let now = b.now();
    let mut tx = b.begin_write(W).await?;
    if let Some(key) = &job.idempotency_key {
        if let Some(existing) = b.job_by_key(&mut tx, &job.tenant, key).await? {
            return Ok(Submitted {
                job: existing,
                created: false,
            });
        }
    }
    let quota = b.options().tenant_max_queued.map(|max| max.get());
    if let Some(max) = quota {
        let more = job.items.len() as u64;
        if more > max {
            return Err(Error::InvalidJob {
                message: format!(
                    "the job has {more} items, more than the tenant's quota of {max} queued items"
                ),
            });
        }
    }
    // The unlocked look: nothing of this job is written yet, so nothing is subtracted.
    check_queue(b, &mut tx, &job, now, 0).await?;
    if let Some(max) = quota {
        check_quota(b, &mut tx, &job, max, now, 0).await?;
    }
    let record = common::new_job_record(JobId::new(), &job, now);
    if !b.insert_job(&mut tx, &job, &record).await? {
        // A concurrent request with the same idempotency key won; return its job.
        drop(tx);
        let mut tx = b.begin_write(W).await?;
        let key = job.idempotency_key.as_deref().unwrap_or_default();
        let existing = b
            .job_by_key(&mut tx, &job.tenant, key)
            .await?
            .ok_or_else(|| Error::Corrupt {
                message: format!("idempotency key {key:?} conflicts but names no job"),
            })?;
        return Ok(Submitted {
            job: existing,
            created: false,
        });
    }
    if !job.items.is_empty() {
        b.insert_items(&mut tx, &record.id, &job, now).await?;
    }
    // The exact look, under the locks (queue first, then tenant: one order for all).
    b.lock_queue(&mut tx, job.priority).await?;
    let itself = u64::from(!record.status.is_finished());
    check_queue(b, &mut tx, &job, now, itself).await?;
    if let Some(max) = quota {
        b.lock_tenant(&mut tx, &job.tenant).await?;
        check_quota(b, &mut tx, &job, max, now, job.items.len() as u64).await?;
    }
    if !job.items.is_empty() {
        b.notify_write(&mut tx).await?;
    }
    b.commit_write(tx, W).await?;
    Ok(Submitted {
        created: true,
        job: record,
    })
}

/// Refuses a job when its priority's queue already holds its limit of unfinished jobs
/// (`QueueFull`, with a retry hint). `itself`: how many of the unfinished jobs counted are
/// the job being submitted (1 once it is written and unfinished, else 0).
async fn check_queue<B: WriteStatements>(
    b: &B,
    tx: &mut B::WriteTx,
    job: &NewJob,
    now: f64,
    itself: u64,
) -> Result<(), Error> {
    let limit = b.options().limit(job.priority);
    let unfinished =
        (b.count_unfinished(tx, job.priority).await?.max(0) as u64).saturating_sub(itself);
    if unfinished < limit {
        return Ok(());
    }
    let since = now - RETRY_WINDOW_SECS;
    let finished = b.count_finished_since(tx, job.priority, since).await?;
    Err(Error::QueueFull {
        priority: job.priority,
        limit,
        retry_after_secs: common::retry_after_secs(finished),
    })
}

/// Refuses a job that would take its tenant past `max` queued items (`TenantQuota`, retry
/// later). `itself`: how many of the tenant's queued items counted are the job's own (its
/// item count once it is written, else 0).
async fn check_quota<B: WriteStatements>(
    b: &B,
    tx: &mut B::WriteTx,
    job: &NewJob,
    max: u64,
    now: f64,
    itself: u64,
) -> Result<(), Error> {
    let more = job.items.len() as u64;
    let backlog = b.tenant_backlog(tx, &job.tenant).await?;
    let queued = (backlog.queued.max(0) as u64).saturating_sub(itself);
    if queued + more <= max {
        return Ok(());
    }
    Err(Error::TenantQuota {
        tenant: job.tenant.clone(),
        limit: max,
        queued,
        more,
        retry_after_secs: common::quota_retry_after_secs(&backlog, queued + more - max, now),
    })
}

/// [`Store::cancel_job`](crate::Store::cancel_job).
pub(super) async fn cancel<B: JobStatements>(
    b: &B,
    tenant: &str,
    id: &JobId,
) -> Result<Option<JobRecord>, Error> {
    const W: &str = "cancelling a job";
    let now = b.now();
    let mut tx = b.begin(W).await?;
    let Some(status) = b.lock_job_status(&mut tx, tenant, id).await? else {
        return Ok(None);
    };
    if JobStatus::parse(&status).is_some_and(|s| !s.is_finished()) {
        let n = b.cancel_queued(&mut tx, id).await?;
        B::DB::mark_cancelled(&mut tx, id, n, now, None).await?;
    }
    let job = B::DB::job_by_id(&mut tx, id).await?;
    b.commit(tx, W).await?;
    Ok(Some(job))
}

/// [`Store::expire_overdue`](crate::Store::expire_overdue).
pub(super) async fn expire_overdue<B: JobStatements>(b: &B) -> Result<Vec<JobRecord>, Error> {
    const W: &str = "failing overdue jobs";
    let now = b.now();
    let mut expired = Vec::new();
    for (tenant, id, timeout) in B::DB::overdue_jobs(b.reader(), now).await? {
        let mut tx = b.begin(W).await?;
        let Some(status) = b.lock_job_status(&mut tx, &tenant, &id).await? else {
            continue;
        };
        if JobStatus::parse(&status).is_some_and(|s| s.is_finished()) {
            continue; // it finished (or was cancelled) since the read
        }
        let n = b.cancel_queued(&mut tx, &id).await?;
        let reason = format!(
            "timed out: the job did not finish within its timeout_seconds ({timeout} s); \
             {n} unfinished items were cancelled"
        );
        B::DB::mark_cancelled(&mut tx, &id, n, now, Some(&reason)).await?;
        let job = B::DB::job_by_id(&mut tx, &id).await?;
        b.commit(tx, W).await?;
        tracing::info!(job = %id, cancelled = n, "a job passed its timeout_seconds: failed");
        expired.push(job);
    }
    Ok(expired)
}

/// [`Store::throughput`](crate::Store::throughput).
pub(super) async fn throughput<B: JobStatements>(
    b: &B,
    window: std::time::Duration,
) -> Result<Option<f64>, Error> {
    let since = b.now() - common::secs(window);
    let (items, first, last) = B::DB::finished_since(b.reader(), since).await?;
    Ok(match (first, last) {
        (Some(first), Some(last)) if items > 0 && last > first => {
            Some(items as f64 / (last - first))
        }
        _ => None,
    })
}
