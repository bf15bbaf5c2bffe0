//! [`SqliteStore`]: opening the file, its two pools, and its transactions.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use tokio::sync::OwnedMutexGuard;

use crate::backend::Backend;
use crate::common::Wakeups;
use crate::error::{sql, Error};
use crate::options::{pool_options, StoreOptions};
use crate::sqlite::direct::DirectReader;
use crate::sqlite::migrations;
use crate::sqlite::writer::DirectWriter;
use crate::types::{JobId, JobRecord, Page, QueueDepth, RawJson, ResultRow};

/// How much of the file readers and the writer map into memory (`PRAGMA mmap_size`).
const MMAP_BYTES: u64 = 1 << 30;

/// How many pages the write-ahead log may hold before a commit copies them into the file
/// (`PRAGMA wal_autocheckpoint`; SQLite's default is 1,000). A checkpoint writes each page
/// once however often it changed since the last, and syncs the log and the file (two
/// `fsync`s, `synchronous = NORMAL`): the jobs' rows, the index pages that every job
/// touches and the tables' last pages change in almost every commit, so a longer log writes
/// fewer pages in all. The log file grows to about 40 MiB (4 KiB pages) and stays that size.
const WAL_AUTOCHECKPOINT_PAGES: u32 = 10_000;

/// How long a connection waits for another's write lock before it answers "busy".
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The embedded store: one SQLite file in WAL mode, for one process.
///
/// Write transactions run one at a time in the process (a gate they all pass), each `BEGIN
/// IMMEDIATE` (SQLite has one writer anyway; taking the lock up front means a transaction
/// never fails half-way to upgrade it): submit, claim and complete on a connection of the
/// store's own (`writer`), the others on sqlx's writer connection. Reads use a pool of
/// their own and are not blocked by writes (WAL). `synchronous = NORMAL`: durable against a
/// killed process, not against power loss. The log is copied into the file every 10,000
/// pages (`wal_autocheckpoint`), not SQLite's 1,000. The file is read through a memory map of up to 1
/// GiB (`mmap_size`). A job, a page of results and the queue depths are read on connections
/// of the store's own, on the caller's thread (`direct`), not through sqlx's connection
/// threads; the transactions of submit, claim and complete likewise run whole on a write
/// connection of its own (`writer`).
#[derive(Debug)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// The hottest reads, on the caller's thread (see `direct`).
    direct: DirectReader,
    /// The write transactions of submit, claim and complete, on the caller's thread, and
    /// the gate every write transaction passes (see `writer`).
    pub(super) write: DirectWriter,
    path: PathBuf,
    options: StoreOptions,
    pub(super) wake: Wakeups,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` with default options, applying any
    /// pending migration.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        SqliteStore::open_with(path, StoreOptions::new()).await
    }

    /// Opens the store at `path` with `options`.
    pub async fn open_with(path: impl AsRef<Path>, options: StoreOptions) -> Result<Self, Error> {
        let path = path.as_ref().to_owned();
        let ctx = |source| Error::Sql {
            context: format!("opening the store {}", path.display()),
            source,
        };
        let connect = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            // Pages read through a memory map: every commit empties the readers' page
            // caches, and re-reading pages by `pread` copied them through the kernel each time.
            .pragma("mmap_size", MMAP_BYTES.to_string())
            // Statement journals (an `INSERT` of a job's items may need to undo itself) and
            // temporary b-trees in memory: no temporary file created and deleted per job.
            .pragma("temp_store", "MEMORY")
            .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string());
        let writer = pool_options::<Sqlite>()
            .max_connections(1)
            .connect_with(connect.clone())
            .await
            .map_err(ctx)?;
        migrations::apply(&writer).await?;
        let reader = pool_options::<Sqlite>()
            .max_connections(options.max_connections.get())
            .connect_with(connect)
            .await
            .map_err(ctx)?;
        let write = DirectWriter::open(&path, MMAP_BYTES, WAL_AUTOCHECKPOINT_PAGES, BUSY_TIMEOUT)?;
        Ok(SqliteStore {
            writer,
            reader,
            direct: DirectReader::new(&path, MMAP_BYTES),
            write,
            path,
            options,
            wake: Wakeups::default(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A `BEGIN IMMEDIATE` transaction on the sqlx writer, remembering whether to wake workers
/// when it commits (only this process writes, so wake-ups stay in the process). It holds
/// the process's write gate (see `writer`) until it ends.
#[derive(Debug)]
pub(crate) struct SqliteTx {
    tx: Transaction<'static, Sqlite>,
    wake: bool,
    /// Released after `tx` (fields drop in order).
    _gate: OwnedMutexGuard<rusqlite::Connection>,
}

impl Deref for SqliteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.tx
    }
}

impl DerefMut for SqliteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

impl Backend for SqliteStore {
    type DB = Sqlite;
    type Tx = SqliteTx;

    fn options(&self) -> &StoreOptions {
        &self.options
    }

    fn wakeups(&self) -> &Wakeups {
        &self.wake
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    async fn begin(&self, what: &'static str) -> Result<SqliteTx, Error> {
        let gate = self.write.gate().await;
        let tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(sql(what))?;
        Ok(SqliteTx {
            tx,
            wake: false,
            _gate: gate,
        })
    }

    async fn commit(&self, tx: SqliteTx, what: &'static str) -> Result<(), Error> {
        tx.tx.commit().await.map_err(sql(what))?;
        if tx.wake {
            self.wake.wake();
        }
        Ok(())
    }

    async fn notify(&self, tx: &mut SqliteTx) -> Result<(), Error> {
        tx.wake = true;
        Ok(())
    }

    async fn read_job(&self, tenant: &str, id: &JobId) -> Result<Option<JobRecord>, Error> {
        self.direct.job(tenant, id)
    }

    async fn read_results(
        &self,
        tenant: &str,
        job_id: &JobId,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Option<Page<ResultRow>>, Error> {
        self.direct.results(tenant, job_id, after, limit)
    }

    async fn read_results_raw(
        &self,
        tenant: &str,
        job_id: &JobId,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Option<Page<ResultRow<RawJson>>>, Error> {
        self.direct.results_raw(tenant, job_id, after, limit)
    }

    async fn read_queue_depths(&self) -> Result<Vec<QueueDepth>, Error> {
        self.direct.queue_depths(&self.options)
    }
}
