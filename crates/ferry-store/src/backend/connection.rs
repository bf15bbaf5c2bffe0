//! [`Backend`]: what every operation needs of a database: the clock and limits, its pools,
//! its transactions, and how it wakes waiting workers.

use std::fmt::Debug;
use std::future::Future;
use std::ops::DerefMut;

use sqlx::{Database, Pool};

use super::queries::Queries;
use crate::common::Wakeups;
use crate::error::Error;
use crate::options::StoreOptions;
use crate::types::{JobId, JobRecord, Page, QueueDepth, RawJson, ResultRow};

/// A database the store runs on (implemented by [`SqliteStore`](crate::SqliteStore) and
/// [`PgStore`](crate::PgStore)).
pub(crate) trait Backend: Send + Sync + Debug {
    /// The sqlx driver; it runs the shared [`Queries`].
    type DB: Queries;
    /// A write transaction; dereferences to its connection for the shared queries.
    type Tx: DerefMut<Target = <Self::DB as Database>::Connection> + Send;

    /// The options the store was opened with.
    fn options(&self) -> &StoreOptions;

    /// The in-process waiters of [`Store::wait_for_work`](crate::Store::wait_for_work).
    fn wakeups(&self) -> &Wakeups;

    /// The pool for reads (SQLite: readers that writes do not block).
    fn reader(&self) -> &Pool<Self::DB>;

    /// The pool for single-statement writes (SQLite: sqlx's writer connection).
    fn writer(&self) -> &Pool<Self::DB>;

    /// Opens a write transaction; `what` names the operation in errors.
    fn begin(&self, what: &'static str) -> impl Future<Output = Result<Self::Tx, Error>> + Send;

    /// Commits `tx`, delivering any wake-up queued by [`notify`](Backend::notify).
    fn commit(
        &self,
        tx: Self::Tx,
        what: &'static str,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Wakes waiting workers (in every process sharing the database) once `tx` commits.
    fn notify(&self, tx: &mut Self::Tx) -> impl Future<Output = Result<(), Error>> + Send;

    /// [`Store::job`](crate::Store::job), the read the service answers most often (every
    /// status poll); by default a statement on the [`reader`](Backend::reader) pool.
    fn read_job<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a JobId,
    ) -> impl Future<Output = Result<Option<JobRecord>, Error>> + Send + 'a {
        Self::DB::job(self.reader(), tenant, id)
    }

    /// [`Store::results`](crate::Store::results); by default a statement on the
    /// [`reader`](Backend::reader) pool.
    fn read_results<'a>(
        &'a self,
        tenant: &'a str,
        job_id: &'a JobId,
        after: Option<i64>,
        limit: usize,
    ) -> impl Future<Output = Result<Option<Page<ResultRow>>, Error>> + Send + 'a {
        Self::DB::results(self.reader(), tenant, job_id, after, limit)
    }

    /// [`Store::results_raw`](crate::Store::results_raw); by default
    /// [`read_results`](Backend::read_results) written back to JSON text.
    fn read_results_raw<'a>(
        &'a self,
        tenant: &'a str,
        job_id: &'a JobId,
        after: Option<i64>,
        limit: usize,
    ) -> impl Future<Output = Result<Option<Page<ResultRow<RawJson>>>, Error>> + Send + 'a {
        async move {
            let page = self.read_results(tenant, job_id, after, limit).await?;
            page.map(crate::store::raw_page).transpose()
        }
    }

    /// [`Store::queue_depths`](crate::Store::queue_depths) (read at every batch-API
    /// submit); by default a statement on the [`reader`](Backend::reader) pool.
    fn read_queue_depths(&self) -> impl Future<Output = Result<Vec<QueueDepth>, Error>> + Send {
        Self::DB::queue_depths(self.reader(), self.options())
    }

    /// The current time from the configured clock.
    fn now(&self) -> f64 {
        self.options().clock.now()
    }
}
