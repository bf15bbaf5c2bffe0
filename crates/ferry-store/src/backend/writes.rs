//! [`WriteStatements`]: the three hottest write transactions (a job submitted, a batch
//! claimed, a batch completed) and every statement they run, on a transaction of the
//! backend's choosing.
//!
//! PostgreSQL runs them on its ordinary transaction (`Backend::Tx`). SQLite runs them on a
//! connection the store holds itself, on the caller's thread (`sqlite::writer`): sqlx hands
//! every statement of a SQLite transaction to the connection's own thread and back, and
//! these three transactions are most of what `ferry serve` does per item.

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
