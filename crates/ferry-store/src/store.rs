//! The [`Store`] trait: every durable operation of `ferry serve` and `ferry worker`, one
//! contract for both backends (the integration suite in `tests/` runs on each).
//!
//! The life of an item: `queued` → [`claim`](Store::claim) → `leased` to one worker until
//! `lease_until` → [`complete`](Store::complete) (`done`, its result recorded exactly once),
//! [`fail`](Store::fail) (`queued` again after a delay, or `dead`), or back to `queued` by
//! [`release`](Store::release) / [`rescue_expired`](Store::rescue_expired). A dead item
//! returns to `queued` by [`redrive`](Store::redrive); a queued one ends `cancelled` with its
//! job.

use std::time::Duration;

use ferry_core::BoxFuture;
use serde_json::Value;

use crate::error::Error;
use crate::types::{
    ApiKey, ClaimedItem, DeadLetter, FailOutcome, IssuedKey, JobId, JobRecord, NewJob, Page,
    QueueDepth, RawJson, ResultRow, Submitted,
};

/// Durable jobs, items, results, dead letters and API keys.
///
/// Object-safe: the service holds an `Arc<dyn Store>`. Tenants: every client-facing method
/// takes the caller's tenant and sees only that tenant's jobs (`""` is the tenant of a
/// service without API keys); worker methods (`claim` … `rescue_expired`) are not scoped.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Creates a job and all its items in one transaction (bulk insert), and says whether
    /// it did.
    ///
    /// With an `idempotency_key`, a job of the same tenant and key is returned as it is
    /// (`created: false`) instead of creating another (even when the queue is full; also
    /// when a concurrent call with the same key won). Otherwise [`Error::QueueFull`] when
    /// the priority already holds its limit of unfinished jobs, [`Error::TenantQuota`] when
    /// the job would take its tenant past its queued-items quota, and
    /// [`Error::InvalidJob`] for duplicate item keys, an empty handler name or more items
    /// than the quota.
    fn submit_job(&self, job: NewJob) -> BoxFuture<'_, Result<Submitted, Error>>;

    /// [`submit_job`](Store::submit_job), for callers that need only the job.
    fn create_job(&self, job: NewJob) -> BoxFuture<'_, Result<JobRecord, Error>> {
        Box::pin(async move { self.submit_job(job).await.map(|s| s.job) })
    }

    /// The tenant's job, if it exists.
    fn job<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a JobId,
    ) -> BoxFuture<'a, Result<Option<JobRecord>, Error>>;

    /// The tenant's jobs, newest first, `limit` per page; `cursor` is a previous page's
    /// `next_cursor`.
    fn list_jobs<'a>(
        &'a self,
        tenant: &'a str,
        limit: usize,
        cursor: Option<i64>,
    ) -> BoxFuture<'a, Result<Page<JobRecord>, Error>>;

    /// Leases up to `limit` available items to `worker` until now + `lease`, incrementing
    /// their attempts; never the same item to two workers. Items are chosen by the rules in
    /// the crate docs (4 : 2 : 1 shares of high, medium, low, unused shares filled from the
    /// others; within a priority, rotating between tenants, then between a tenant's jobs;
    /// oldest first within a job), skipping tenants at their in-flight quota. A claim takes
    /// at most 10,000 items.
    fn claim<'a>(
        &'a self,
        worker: &'a str,
        limit: usize,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Vec<ClaimedItem>, Error>>;

    /// Extends every lease `worker` holds to now + `lease`; returns how many.
    fn heartbeat<'a>(
        &'a self,
        worker: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<u64, Error>>;

    /// Records results, in one transaction: each item still leased to `worker` becomes done
    /// and its result is inserted. An item the worker no longer holds (rescued and given to
    /// another worker, already completed, unknown) is skipped, never an error. Returns how
    /// many results were recorded.
    ///
    /// Exactly once: the item's state moves `leased → done` only under the worker's lease,
    /// and `results.item_id` is unique, so no item can ever have two results. A lease whose
    /// time ran out still counts as held until [`rescue_expired`](Store::rescue_expired)
    /// takes it back.
    fn complete<'a>(
        &'a self,
        worker: &'a str,
        results: Vec<(i64, Value)>,
    ) -> BoxFuture<'a, Result<u64, Error>>;

    /// Records a failed attempt of an item `worker` holds: with `dead`, into the dead
    /// letters (the job's `failed` count); otherwise back to the queue, claimable from now +
    /// `retry_after` (at once for `None`). `error` is kept as the item's last error.
    fn fail<'a>(
        &'a self,
        worker: &'a str,
        item_id: i64,
        error: &'a str,
        retry_after: Option<Duration>,
        dead: bool,
    ) -> BoxFuture<'a, Result<FailOutcome, Error>>;

    /// Gives back every lease `worker` holds (graceful shutdown): the items are queued again,
    /// and the claim does not count as an attempt. Returns how many.
    fn release<'a>(&'a self, worker: &'a str) -> BoxFuture<'a, Result<u64, Error>>;

    /// Queues again every item whose lease ran out (its worker died or hung); the attempt
    /// counts. Returns how many. Run it periodically (any worker may).
    fn rescue_expired(&self) -> BoxFuture<'_, Result<u64, Error>>;

    /// Cancels the tenant's job: its queued items end `cancelled` now and it is `Cancelled`
    /// from now on. Items in flight finish as their worker reports them: a completed one
    /// keeps its result (the work was done), a failed, released or rescued one ends
    /// cancelled. Cancelling a finished job changes nothing. `None` if there is no such job.
    fn cancel_job<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a JobId,
    ) -> BoxFuture<'a, Result<Option<JobRecord>, Error>>;

    /// Fails every unfinished job whose `timeout_seconds` ran out (created more than that
    /// long ago), as [`cancel_job`](Self::cancel_job) does but with a reason: its queued
    /// items end cancelled, items in flight finish as their worker reports them, and the
    /// job reads `Failed` with an error naming the timeout. Returns the jobs it failed.
    /// Run it periodically (any process may; the service does every 250 ms).
    fn expire_overdue(&self) -> BoxFuture<'_, Result<Vec<JobRecord>, Error>>;

    /// Items per second over the jobs that finished within the last `window`: the items
    /// that ended in them over the span from the first one's start to the last one's end.
    /// `None` when no job with items finished in the window (nothing measured yet).
    fn throughput(&self, window: Duration) -> BoxFuture<'_, Result<Option<f64>, Error>>;

    /// Every item of the tenant's job in item order, with its result or error, after item
    /// `after_item_id`, `limit` per page. `None` if there is no such job.
    fn results<'a>(
        &'a self,
        tenant: &'a str,
        job_id: &'a JobId,
        after_item_id: Option<i64>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Option<Page<ResultRow>>, Error>>;

    /// [`results`](Store::results) with each result as its JSON text, for passing results
    /// through unchanged (the batch API's pages). By default the parsed results written
    /// back to text; SQLite hands over the stored text without parsing it.
    fn results_raw<'a>(
        &'a self,
        tenant: &'a str,
        job_id: &'a JobId,
        after_item_id: Option<i64>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Option<Page<ResultRow<RawJson>>>, Error>> {
        Box::pin(async move {
            let page = self.results(tenant, job_id, after_item_id, limit).await?;
            page.map(raw_page).transpose()
        })
    }

    /// The tenant's dead letters, newest first (by item id), `limit` per page.
    fn dead_letters<'a>(
        &'a self,
        tenant: &'a str,
        limit: usize,
        cursor: Option<i64>,
    ) -> BoxFuture<'a, Result<Page<DeadLetter>, Error>>;

    /// Queues the tenant's dead-lettered items again with their attempts reset; items that
    /// are not dead, not the tenant's, or of a cancelled job are skipped. Returns how many.
    fn redrive<'a>(
        &'a self,
        tenant: &'a str,
        item_ids: Vec<i64>,
    ) -> BoxFuture<'a, Result<u64, Error>>;

    /// Per priority (high first): unfinished jobs, the limit, queued and in-flight items.
    fn queue_depths(&self) -> BoxFuture<'_, Result<Vec<QueueDepth>, Error>>;

    /// The result TTL: deletes every finished job (completed, failed, cancelled with nothing
    /// in flight) that finished more than `older_than` ago, with its items, results and dead
    /// letters. Returns how many jobs.
    fn sweep_results(&self, older_than: Duration) -> BoxFuture<'_, Result<u64, Error>>;

    /// Waits until new work may be claimable (a job created, an item failed back to the
    /// queue, released, rescued or redriven) or `timeout` passes; `true` when woken. A
    /// wake-up that came while nobody waited is kept for the next call, so a worker that
    /// checks, finds nothing and then waits misses nothing; wake-ups may be spurious, and
    /// callers still poll now and then as a fallback.
    fn wait_for_work(&self, timeout: Duration) -> BoxFuture<'_, Result<bool, Error>>;

    /// Issues an API key for `tenant`. Only its SHA-256 hash is stored.
    fn create_key<'a>(
        &'a self,
        tenant: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<IssuedKey, Error>>;

    /// API keys, revoked ones included, of one tenant or (`None`) all.
    fn list_keys<'a>(
        &'a self,
        tenant: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<ApiKey>, Error>>;

    /// Revokes a key; `false` if no unrevoked key has that id.
    fn revoke_key<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, Error>>;

    /// The tenant a presented key authenticates, if it is a live key.
    fn tenant_for_key<'a>(
        &'a self,
        plaintext: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, Error>>;
}

/// A page of parsed results written back to JSON text.
pub(crate) fn raw_page(page: Page<ResultRow>) -> Result<Page<ResultRow<RawJson>>, Error> {
    let items = page
        .items
        .into_iter()
        .map(|r| {
            let result = r
                .result
                .map(|v| serde_json::value::to_raw_value(&v))
                .transpose()
                .map_err(|e| Error::Corrupt {
                    message: format!("a result could not be encoded: {e}"),
                })?;
            Ok(ResultRow {
                item_id: r.item_id,
                key: r.key,
                result,
                error: r.error,
                status: r.status,
            })
        })
        .collect::<Result<_, Error>>()?;
    Ok(Page {
        items,
        next_cursor: page.next_cursor,
    })
}
