//! The statements whose SQL or locking differs between databases, by concept:
//! [`JobStatements`] (submission, cancellation, re-drive) and [`LeaseStatements`] (claims,
//! leases, completion, failure, taking leases back). Each runs inside the caller's
//! transaction unless it says otherwise; PostgreSQL locks what it reads, SQLite needs no
//! row locks (its transactions hold the one write lock).

use std::future::Future;

use super::connection::Backend;
use crate::error::Error;
use crate::types::{JobId, JobRecord, NewJob, Priority};

/// A claimed row before its job's details are attached.
#[derive(Debug)]
pub(crate) struct Taken {
    pub(crate) id: i64,
    pub(crate) job_id: String,
    pub(crate) key: String,
    /// JSON text.
    pub(crate) payload: String,
    pub(crate) attempts: i64,
    pub(crate) priority: Priority,
}

/// What a claim attaches to its items from their job.
#[derive(Debug)]
pub(crate) struct ClaimedJob {
    pub(crate) id: String,
    pub(crate) tenant: String,
    pub(crate) handler: String,
    /// JSON text.
    pub(crate) params: String,
    /// The job's cap on items per handler call.
    pub(crate) max_batch_size: Option<i64>,
}

/// An item a worker holds, as [`Store::fail`](crate::Store::fail) needs it.
#[derive(Debug)]
pub(crate) struct LeasedItem {
    pub(crate) job: String,
    pub(crate) attempts: i64,
    pub(crate) job_status: String,
    pub(crate) tenant: String,
}

/// Submission, cancellation and re-drive statements.
pub(crate) trait JobStatements: Backend {
    /// Serialises job creation in `priority` until the transaction ends, so the queue
    /// limit holds across processes.
    fn lock_queue(
        &self,
        tx: &mut Self::Tx,
        priority: Priority,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Inserts the job row of `record`; `false` when a concurrent job with the same
    /// idempotency key won.
    fn insert_job(
        &self,
        tx: &mut Self::Tx,
        job: &NewJob,
        record: &JobRecord,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Bulk-inserts the job's items, queued and available from `now`.
    fn insert_items(
        &self,
        tx: &mut Self::Tx,
        id: &JobId,
        job: &NewJob,
        now: f64,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The status of the tenant's job, locking it.
    fn lock_job_status(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        id: &JobId,
    ) -> impl Future<Output = Result<Option<String>, Error>> + Send;

    /// Ends the job's queued items `cancelled` (skipping any a concurrent claim holds);
    /// returns how many.
    fn cancel_queued(
        &self,
        tx: &mut Self::Tx,
        id: &JobId,
    ) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Which of `ids` are the tenant's dead items, with their jobs, locking them.
    fn dead_items(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        ids: &[i64],
    ) -> impl Future<Output = Result<Vec<(i64, String)>, Error>> + Send;

    /// Deletes the dead letters of `ids` and queues the items again from `now`, attempts 0.
    fn redrive_items(
        &self,
        tx: &mut Self::Tx,
        ids: &[i64],
        now: f64,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Claim, lease, completion and failure statements.
pub(crate) trait LeaseStatements: Backend {
    /// Leases up to `n` available items of one priority to `worker` until `until`, oldest
    /// first, counting an attempt (PostgreSQL skips items other claimers hold locked).
    fn take(
        &self,
        tx: &mut Self::Tx,
        worker: &str,
        until: f64,
        priority: Priority,
        n: usize,
        now: f64,
    ) -> impl Future<Output = Result<Vec<Taken>, Error>> + Send;

    /// The claimed items' jobs (ids sorted, distinct), marking those not yet started as
    /// started (`processing`) at `now`.
    fn start_jobs(
        &self,
        tx: &mut Self::Tx,
        job_ids: &[String],
        now: f64,
    ) -> impl Future<Output = Result<Vec<ClaimedJob>, Error>> + Send;

    /// Extends every lease `worker` holds to `until`, outside any transaction; returns how
    /// many.
    fn extend_leases(
        &self,
        worker: &str,
        until: f64,
    ) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Moves those of `ids` still leased to `worker` to `done`; returns them with their jobs.
    fn finish_leased(
        &self,
        tx: &mut Self::Tx,
        worker: &str,
        ids: &[i64],
    ) -> impl Future<Output = Result<Vec<(i64, String)>, Error>> + Send;

    /// Inserts results (item id, JSON text) unless the item has one; returns the ids
    /// inserted.
    fn insert_results(
        &self,
        tx: &mut Self::Tx,
        rows: &[(i64, &str)],
        now: f64,
    ) -> impl Future<Output = Result<Vec<i64>, Error>> + Send;

    /// The item if it is leased to `worker`, locking it and its job.
    fn leased_item(
        &self,
        tx: &mut Self::Tx,
        worker: &str,
        item_id: i64,
    ) -> impl Future<Output = Result<Option<LeasedItem>, Error>> + Send;

    /// The leases to take back, with their jobs, locking them: all of `worker`'s, or (for
    /// `None`) all that ran out before `now`, skipping any a concurrent `complete` holds.
    fn leases_to_take_back(
        &self,
        tx: &mut Self::Tx,
        worker: Option<&str>,
        now: f64,
    ) -> impl Future<Output = Result<Vec<(i64, String)>, Error>> + Send;

    /// Which of `jobs` (sorted) are cancelled, locking them in order.
    fn cancelled_jobs(
        &self,
        tx: &mut Self::Tx,
        jobs: &[String],
    ) -> impl Future<Output = Result<Vec<String>, Error>> + Send;

    /// Queues leased items again; with `refund_attempt` their claim does not count.
    fn requeue(
        &self,
        tx: &mut Self::Tx,
        ids: &[i64],
        refund_attempt: bool,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Ends leased items in `state` (`dead` or `cancelled`), keeping `error` if given.
    fn end_items(
        &self,
        tx: &mut Self::Tx,
        ids: &[i64],
        state: &'static str,
        error: Option<&str>,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}
