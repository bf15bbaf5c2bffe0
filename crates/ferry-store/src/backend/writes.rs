//! [`WriteStatements`]: the three hottest write transactions (a job submitted, a batch
//! claimed, a batch completed) and every statement they run, on a transaction of the
//! backend's choosing.
//!
//! PostgreSQL runs them on its ordinary transaction (`Backend::Tx`). SQLite runs them on a
//! connection the store holds itself, on the caller's thread (`sqlite::writer`): sqlx hands
//! every statement of a SQLite transaction to the connection's own thread and back, and
//! these three transactions are most of what `ferry serve` does per item.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use super::connection::Backend;
use super::fair_queries::{ClaimedJob, TenantBacklog};
use super::statements::Taken;
use crate::common::Delta;
use crate::error::Error;
use crate::fair::Lane;
use crate::types::{JobId, JobRecord, NewJob, Priority};

/// The statements of submit, claim and complete, each inside the caller's write
/// transaction ([`begin_write`](WriteStatements::begin_write)).
pub(crate) trait WriteStatements: Backend {
    /// A write transaction for these statements.
    type WriteTx: Send;

    /// Opens a write transaction; `what` names the operation in errors.
    fn begin_write(
        &self,
        what: &'static str,
    ) -> impl Future<Output = Result<Self::WriteTx, Error>> + Send;

    /// Commits `tx`, delivering any wake-up queued by
    /// [`notify_write`](WriteStatements::notify_write). Dropping a transaction rolls it back.
    fn commit_write(
        &self,
        tx: Self::WriteTx,
        what: &'static str,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Wakes waiting workers (in every process sharing the database) once `tx` commits.
    fn notify_write(
        &self,
        tx: &mut Self::WriteTx,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The tenant's job with this idempotency key.
    fn job_by_key(
        &self,
        tx: &mut Self::WriteTx,
        tenant: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<JobRecord>, Error>> + Send;

    /// Serialises job creation in `priority` until the transaction ends, so the queue
    /// limit holds across processes.
    fn lock_queue(
        &self,
        tx: &mut Self::WriteTx,
        priority: Priority,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Unfinished jobs of a priority.
    fn count_unfinished(
        &self,
        tx: &mut Self::WriteTx,
        priority: Priority,
    ) -> impl Future<Output = Result<i64, Error>> + Send;

    /// Jobs of a priority finished since `since`.
    fn count_finished_since(
        &self,
        tx: &mut Self::WriteTx,
        priority: Priority,
        since: f64,
    ) -> impl Future<Output = Result<i64, Error>> + Send;

    /// Serialises quota checks of `tenant` until the transaction ends, so its quota holds
    /// across processes.
    fn lock_tenant(
        &self,
        tx: &mut Self::WriteTx,
        tenant: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The tenant's queued items and progress, for its quota.
    fn tenant_backlog(
        &self,
        tx: &mut Self::WriteTx,
        tenant: &str,
    ) -> impl Future<Output = Result<TenantBacklog, Error>> + Send;

    /// Inserts the job row of `record`; `false` when a concurrent job with the same
    /// idempotency key won.
    fn insert_job(
        &self,
        tx: &mut Self::WriteTx,
        job: &NewJob,
        record: &JobRecord,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Bulk-inserts the job's items, queued and available from `now`.
    fn insert_items(
        &self,
        tx: &mut Self::WriteTx,
        id: &JobId,
        job: &NewJob,
        now: f64,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// [`insert_job`](Self::insert_job) and, if it inserted the job,
    /// [`insert_items`](Self::insert_items); whether it did. A backend may do both in one
    /// statement.
    fn insert_job_with_items<'a>(
        &'a self,
        tx: &'a mut Self::WriteTx,
        job: &'a NewJob,
        record: &'a JobRecord,
        now: f64,
    ) -> impl Future<Output = Result<bool, Error>> + Send + 'a {
        async move {
            if !self.insert_job(tx, job, record).await? {
                return Ok(false);
            }
            if !job.items.is_empty() {
                self.insert_items(tx, &record.id, job, now).await?;
            }
            Ok(true)
        }
    }

    /// Every job with queued items, by priority, with the claim numbers that last served
    /// it and its tenant: the lanes of the fair rotation.
    fn lanes(
        &self,
        tx: &mut Self::WriteTx,
    ) -> impl Future<Output = Result<[Vec<Lane>; 3], Error>> + Send;

    /// Items of the tenant's unfinished jobs in flight (claimed, not yet ended).
    fn in_flight(
        &self,
        tx: &mut Self::WriteTx,
        tenant: &str,
    ) -> impl Future<Output = Result<i64, Error>> + Send;

    /// Leases, for each `(job, n)` of `asks`, up to `n` available items of that job (all of
    /// `priority`) to `worker` until `until`, oldest first, counting an attempt (PostgreSQL
    /// skips items other claimers hold locked). The jobs' counters are the caller's.
    fn take(
        &self,
        tx: &mut Self::WriteTx,
        worker: &str,
        until: f64,
        priority: Priority,
        asks: &[(&str, i64)],
        now: f64,
    ) -> impl Future<Output = Result<Vec<Taken>, Error>> + Send;

    /// Records that claim `stamp` took `taken` items of `job` at `now` (its queued count
    /// drops, it is started); returns what its items need.
    fn serve_job(
        &self,
        tx: &mut Self::WriteTx,
        job: &str,
        taken: i64,
        stamp: i64,
        now: f64,
    ) -> impl Future<Output = Result<ClaimedJob, Error>> + Send;

    /// Records that claim `stamp` served `tenant`.
    fn serve_tenant(
        &self,
        tx: &mut Self::WriteTx,
        tenant: &str,
        stamp: i64,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Records that claim `stamp` took, of each job of `per_job`, that many items at `now`
    /// and served its tenant; returns what each job's items need. By default
    /// [`serve_job`](Self::serve_job) per job, then [`serve_tenant`](Self::serve_tenant)
    /// per tenant, each in id (name) order, the lock order every operation keeps.
    fn serve_all<'a>(
        &'a self,
        tx: &'a mut Self::WriteTx,
        per_job: &'a BTreeMap<String, i64>,
        stamp: i64,
        now: f64,
    ) -> impl Future<Output = Result<BTreeMap<String, ClaimedJob>, Error>> + Send + 'a {
        async move {
            let mut served = BTreeMap::new();
            let mut tenants = BTreeSet::new();
            for (job, n) in per_job {
                let s = self.serve_job(tx, job, *n, stamp, now).await?;
                tenants.insert(s.tenant.clone());
                served.insert(job.clone(), s);
            }
            for tenant in &tenants {
                self.serve_tenant(tx, tenant, stamp).await?;
            }
            Ok(served)
        }
    }

    /// Moves those of `ids` still leased to `worker` to `done`; returns them with their jobs.
    fn finish_leased(
        &self,
        tx: &mut Self::WriteTx,
        worker: &str,
        ids: &[i64],
    ) -> impl Future<Output = Result<Vec<(i64, String)>, Error>> + Send;

    /// Inserts results (item id, JSON text) unless the item has one; returns the ids
    /// inserted.
    fn insert_results(
        &self,
        tx: &mut Self::WriteTx,
        rows: &[(i64, &str)],
        now: f64,
    ) -> impl Future<Output = Result<Vec<i64>, Error>> + Send;

    /// [`Store::complete`](crate::Store::complete) in one statement, outside any
    /// transaction, where the backend can: each of `results` (item id, result JSON text)
    /// still leased to `worker` ends done with its result, and its job counts it; returns
    /// how many, or `None` where the caller is to run the transaction of
    /// [`finish_leased`](Self::finish_leased), [`insert_results`](Self::insert_results) and
    /// [`adjust_job`](Self::adjust_job) instead (the default).
    fn complete_at_once<'a>(
        &'a self,
        worker: &'a str,
        results: &'a BTreeMap<i64, String>,
        now: f64,
    ) -> impl Future<Output = Result<Option<u64>, Error>> + Send + 'a {
        let _ = (worker, results, now);
        async { Ok(None) }
    }

    /// Updates a job's counters and re-derives its status
    /// ([`ADJUST_JOB`](crate::common::ADJUST_JOB)).
    fn adjust_job(
        &self,
        tx: &mut Self::WriteTx,
        job: &str,
        delta: Delta,
        now: f64,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}
