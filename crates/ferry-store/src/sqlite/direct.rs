//! Reads on the caller's thread: the store's hottest reads (a job by id, a page of
//! results, the queue depths) on SQLite connections held by the store itself, not by
//! sqlx.
//!
//! sqlx runs each SQLite connection on a thread of its own and passes every statement and
//! every row across a channel: two thread hand-offs per statement, which cost more than
//! the statement (a primary-key lookup in a memory-mapped file takes microseconds). These
//! reads are short and do not wait on a writer (WAL: readers see the last commit), so they
//! run where they are called, blocking the caller's thread for as long as the statement
//! runs. (SQLite can still answer "busy" in rare cases, such as recovering the WAL index
//! after a crash; they then wait up to the busy timeout, as sqlx's connections do.) They
//! read the file, not a cache: writes by other processes sharing the file (a `ferry
//! worker` beside `ferry serve --no-worker`) show at once.

use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde_json::value::RawValue;

use crate::common::{
    page, page_limit, queue_depths_from, JobColumns, ResultColumns, JOB_COLUMNS, JOB_EXISTS,
    QUEUE_DEPTHS, RESULTS_PAGE,
};
use crate::error::Error;
use crate::options::StoreOptions;
use crate::sqlite::writer::direct;
use crate::types::{JobId, JobRecord, Page, QueueDepth, RawJson, ResultRow};

/// Idle connections kept for reuse; more are opened under load and closed when returned.
const KEEP_IDLE: usize = 8;

/// Connections to the store's file for reads, used on the calling thread: opened read-write
/// (a WAL reader writes the shared-memory index) with `query_only` set.
#[derive(Debug)]
pub(crate) struct DirectReader {
    path: std::path::PathBuf,
    mmap_bytes: u64,
    idle: Mutex<Vec<Connection>>,
}

impl DirectReader {
    /// Connections to the file at `path` (opened when first needed).
    pub(crate) fn new(path: &Path, mmap_bytes: u64) -> Self {
        DirectReader {
            path: path.to_owned(),
            mmap_bytes,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.pragma_update(None, "query_only", true)?;
        conn.pragma_update(None, "mmap_size", self.mmap_bytes)?;
        Ok(conn)
    }

    /// Runs `f` on an idle connection (or a new one), `what` naming it in errors.
    fn with<T>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Connection) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let conn = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match conn {
            Some(c) => c,
            None => self.open().map_err(direct(what))?,
        };
        let out = f(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < KEEP_IDLE {
            idle.push(conn);
        }
        out
    }

    /// [`Store::job`](crate::Store::job).
    pub(crate) fn job(&self, tenant: &str, id: &JobId) -> Result<Option<JobRecord>, Error> {
        const W: &str = "reading a job";
        self.with(W, |conn| {
            let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE tenant = $1 AND id = $2");
            let mut stmt = conn.prepare_cached(&sql).map_err(direct(W))?;
            stmt.query_row((tenant, id.as_str()), job_columns)
                .optional()
                .map_err(direct(W))?
                .map(JobColumns::into_record)
                .transpose()
        })
    }

    /// [`Store::results`](crate::Store::results).
    pub(crate) fn results(
        &self,
        tenant: &str,
        job_id: &JobId,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Option<Page<ResultRow>>, Error> {
        self.result_page(tenant, job_id, after, limit, ResultColumns::into_row)
    }

    /// [`Store::results_raw`](crate::Store::results_raw): each result the text stored,
    /// checked to be JSON but not parsed.
    pub(crate) fn results_raw(
        &self,
        tenant: &str,
        job_id: &JobId,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Option<Page<ResultRow<RawJson>>>, Error> {
        self.result_page(tenant, job_id, after, limit, raw_row)
    }

    /// A page of results, each row made by `row`.
    fn result_page<R>(
        &self,
        tenant: &str,
        job_id: &JobId,
        after: Option<i64>,
        limit: usize,
        row: fn(ResultColumns) -> Result<ResultRow<R>, Error>,
    ) -> Result<Option<Page<ResultRow<R>>>, Error> {
        const W: &str = "reading results";
        let limit = page_limit(limit);
        self.with(W, |conn| {
            let mut stmt = conn.prepare_cached(RESULTS_PAGE).map_err(direct(W))?;
            let columns = stmt
                .query_map(
                    (
                        tenant,
                        job_id.as_str(),
                        after.unwrap_or(0),
                        limit as i64 + 1,
                    ),
                    |row| {
                        Ok(ResultColumns {
                            item_id: row.get(0)?,
                            key: row.get(1)?,
                            state: row.get(2)?,
                            result: row.get(3)?,
                            error: row.get(4)?,
                        })
                    },
                )
                .map_err(direct(W))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(direct(W))?;
            if columns.is_empty() {
                let mut exists = conn.prepare_cached(JOB_EXISTS).map_err(direct(W))?;
                if !exists
                    .exists((tenant, job_id.as_str()))
                    .map_err(direct(W))?
                {
                    return Ok(None);
                }
            }
            let rows = columns
                .into_iter()
                .map(row)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some(page(rows, limit, |r| r.item_id)))
        })
    }

    /// [`Store::queue_depths`](crate::Store::queue_depths).
    pub(crate) fn queue_depths(&self, options: &StoreOptions) -> Result<Vec<QueueDepth>, Error> {
        const W: &str = "reading queue depths";
        self.with(W, |conn| {
            let mut stmt = conn.prepare_cached(QUEUE_DEPTHS).map_err(direct(W))?;
            let rows = stmt
                .query_map((), |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, i64>(3)?,
                    ))
                })
                .map_err(direct(W))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(direct(W))?;
            Ok(queue_depths_from(&rows, options))
        })
    }
}

/// A results row with its result as the JSON text stored (checked, not parsed).
fn raw_row(columns: ResultColumns) -> Result<ResultRow<RawJson>, Error> {
    columns.into_row_with(|text| {
        RawValue::from_string(text).map_err(|e| Error::Corrupt {
            message: format!("a result is not JSON: {e}"),
        })
    })
}

/// Reads a row of [`JOB_COLUMNS`].
pub(super) fn job_columns(row: &rusqlite::Row<'_>) -> rusqlite::Result<JobColumns> {
    Ok(JobColumns {
        id: row.get(0)?,
        tenant: row.get(1)?,
        handler: row.get(2)?,
        params: row.get(3)?,
        priority: row.get(4)?,
        status: row.get(5)?,
        total: row.get(6)?,
        succeeded: row.get(7)?,
        failed: row.get(8)?,
        cancelled: row.get(9)?,
        created_at: row.get(10)?,
        started_at: row.get(11)?,
        completed_at: row.get(12)?,
        error: row.get(13)?,
        timeout_seconds: row.get(14)?,
        max_batch_size: row.get(15)?,
    })
}
