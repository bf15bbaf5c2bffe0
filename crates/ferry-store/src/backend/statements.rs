//! The statements whose SQL or locking differs between databases, by concept:
//! [`JobStatements`] (cancellation, re-drive) and [`LeaseStatements`] (leases, failure,
//! taking leases back); those of submission, claims and completion are
//! [`WriteStatements`](super::WriteStatements). Each runs inside the caller's
//! transaction unless it says otherwise; PostgreSQL locks what it reads, SQLite needs no
//! row locks (its transactions hold the one write lock).

use std::future::Future;

use super::connection::Backend;
use crate::error::Error;
use crate::types::{JobId, Priority};

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

/// An item a worker holds, as [`Store::fail`](crate::Store::fail) needs it.
#[derive(Debug)]
pub(crate) struct LeasedItem {
    pub(crate) job: String,
    pub(crate) attempts: i64,
    pub(crate) job_status: String,
    pub(crate) tenant: String,
}

/// Cancellation and re-drive statements.
pub(crate) trait JobStatements: Backend {
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

/// Lease, failure and take-back statements.
pub(crate) trait LeaseStatements: Backend {
    /// Extends every lease `worker` holds to `until`, outside any transaction; returns how
    /// many.
    fn extend_leases(
        &self,
        worker: &str,
        until: f64,
    ) -> impl Future<Output = Result<u64, Error>> + Send;

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

    /// Which of `jobs` (sorted) are cancelled, locking them all in order.
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
