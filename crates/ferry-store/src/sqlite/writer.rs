//! The store's own write connection: the transactions of submit, claim and complete run on
//! it, whole, on the caller's thread (rusqlite, not sqlx).
//!
//! sqlx runs each SQLite connection on a thread of its own and passes every statement (and
//! every row) across a channel: a submit, a claim or a completion was about ten statements,
//! each two thread hand-offs. Here a transaction takes the connection (an async mutex, so a
//! task waiting for it does not block its thread), then runs `BEGIN IMMEDIATE`, its
//! statements (prepared once and cached on the connection) and `COMMIT` where it is called,
//! with no await in between: one poll, no hand-off. The choice against a writer thread
//! taking closures: that still costs a hand-off and a wake-up per transaction, and these
//! transactions are short (tens to hundreds of microseconds for a batch of 100). What it
//! costs instead: while a transaction runs it holds the calling runtime thread (a submit of
//! 200,000 items, for as long as their inserts take), and when another process holds the
//! file's write lock (`ferry worker` beside `ferry serve --no-worker`) the caller's thread
//! waits in SQLite's busy handler, up to the busy timeout, as sqlx's connection thread did.
//!
//! The sqlx writer still runs the other transactions (cancel, fail, release, rescue,
//! re-drive, sweep); each takes this connection's mutex too, for as long as it runs, so
//! that within the process at most one write transaction is open and a transaction here
//! never waits in the busy handler for a sqlx transaction that needs this thread to finish.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::error::Error;

/// Statements cached on the connection (the three transactions use about twenty).
const CACHED_STATEMENTS: usize = 64;

/// The write connection, behind the process's one write gate.
#[derive(Debug)]
pub(crate) struct DirectWriter {
    conn: Arc<Mutex<Connection>>,
}

impl DirectWriter {
    /// Opens a connection to the store's file (already created and migrated), with the
    /// settings of sqlx's connections: WAL (a setting of the file), `synchronous = NORMAL`,
    /// foreign keys, the busy timeout, the memory map, temporary storage in memory and how
    /// many pages the log holds before a commit copies them into the file.
    pub(crate) fn open(
        path: &Path,
        mmap_bytes: u64,
        autocheckpoint_pages: u32,
        busy: Duration,
    ) -> Result<Self, Error> {
        const W: &str = "opening the store's write connection";
        let open = || -> rusqlite::Result<Connection> {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(busy)?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.pragma_update(None, "foreign_keys", true)?;
            conn.pragma_update(None, "mmap_size", mmap_bytes)?;
            conn.pragma_update(None, "temp_store", "MEMORY")?;
            conn.pragma_update(None, "wal_autocheckpoint", autocheckpoint_pages)?;
            conn.set_prepared_statement_cache_capacity(CACHED_STATEMENTS);
            Ok(conn)
        };
        let conn = open().map_err(direct(W))?;
        Ok(DirectWriter {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// The write gate: held by every write transaction of the process while it runs.
    pub(crate) async fn gate(&self) -> OwnedMutexGuard<Connection> {
        self.conn.clone().lock_owned().await
    }

    /// Opens a `BEGIN IMMEDIATE` transaction on the connection; `what` names it in errors.
    pub(crate) async fn begin(&self, what: &'static str) -> Result<WriteTx, Error> {
        let conn = self.gate().await;
        if !conn.is_autocommit() {
            // A transaction whose rollback failed when it was dropped: try again.
            conn.execute_batch("ROLLBACK").map_err(direct(what))?;
        }
        conn.prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut s| s.execute([]))
            .map_err(direct(what))?;
        Ok(WriteTx {
            conn,
            open: true,
            wake: false,
        })
    }
}

/// A write transaction on [`DirectWriter`]'s connection: rolled back when dropped
/// uncommitted.
#[derive(Debug)]
pub(crate) struct WriteTx {
    conn: OwnedMutexGuard<Connection>,
    /// Begun and neither committed nor rolled back.
    open: bool,
    /// Wake waiting workers once it commits.
    pub(super) wake: bool,
}

impl WriteTx {
    /// The connection, inside the transaction.
    pub(super) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Commits; returns whether to wake waiting workers.
    pub(super) fn commit(mut self, what: &'static str) -> Result<bool, Error> {
        self.conn
            .prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]))
            .map_err(direct(what))?;
        self.open = false;
        Ok(self.wake)
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if self.open {
            // Best effort: the next `begin` tries again if this one failed.
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "rolling back a write transaction failed");
            }
        }
    }
}

/// Maps a rusqlite error to [`Error::Direct`] naming what was being done.
pub(super) fn direct(context: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |source| Error::Direct {
        context: context.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

    use std::path::PathBuf;

    use super::*;
    use crate::backend::Backend;
    use crate::sqlite::scratch::job;
    use crate::sqlite::SqliteStore;
    use crate::store::Store;

    /// A fresh directory for one test's store.
    fn scratch(name: &str) -> PathBuf {
        crate::sqlite::scratch::scratch("writer", name)
    }

    #[tokio::test]
    async fn a_dropped_transaction_rolls_back_and_the_next_one_begins() {
        let dir = scratch("rollback");
        let path = dir.join("t.db");
        let setup = Connection::open(&path).unwrap();
        setup
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER);")
            .unwrap();
        let writer = DirectWriter::open(&path, 0, 4321, Duration::from_secs(1)).unwrap();
        let tx = writer.begin("testing").await.unwrap();
        let pages: i64 = tx
            .conn()
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            pages, 4321,
            "the log's checkpoint interval is the one given"
        );
        tx.conn().execute("INSERT INTO t VALUES (1)", []).unwrap();
        drop(tx);
        let tx = writer.begin("testing").await.unwrap();
        tx.conn().execute("INSERT INTO t VALUES (2)", []).unwrap();
        assert!(
            !tx.commit("testing").unwrap(),
            "nothing asked for a wake-up"
        );
        let seen: Vec<i64> = setup
            .prepare("SELECT x FROM t")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(seen, vec![2], "the dropped transaction's row is gone");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A submit (the store's own connection) while a sqlx transaction is open on a
    /// single-threaded runtime: it waits at the gate without holding the thread, so the
    /// sqlx transaction can finish, instead of both waiting on SQLite's write lock until the
    /// busy timeout.
    #[tokio::test(flavor = "current_thread")]
    async fn a_submit_waits_at_the_gate_for_an_open_sqlx_transaction() {
        let dir = scratch("gate");
        let store = std::sync::Arc::new(SqliteStore::open(dir.join("s.db")).await.unwrap());
        let tx = store.begin("testing").await.unwrap();
        let submit = tokio::spawn({
            let store = std::sync::Arc::clone(&store);
            async move { store.submit_job(job(3)).await }
        });
        tokio::task::yield_now().await;
        assert!(
            !submit.is_finished(),
            "the submit waits while the transaction is open"
        );
        let started = std::time::Instant::now();
        store.commit(tx, "testing").await.unwrap();
        let submitted = submit.await.unwrap().unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        let job = store.job("", &submitted.job.id).await.unwrap().unwrap();
        assert_eq!(job.total, 3);
        drop(store);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
