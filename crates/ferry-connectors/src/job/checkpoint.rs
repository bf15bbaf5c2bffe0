//! The run checkpoint: an SQLite file beside the job that records each item key's outcome,
//! so `--resume` sends only what was not confirmed.
//!
//! One row per key (`PRIMARY KEY`), written in one transaction per settled batch, in WAL mode
//! with `synchronous = NORMAL`: durable against a killed process (the point of a checkpoint),
//! not against power loss. A key is recorded only after the target confirmed it, so a crash
//! between the target's answer and the write can re-send the batches answered in that
//! window (usually one; as many as were answered while the last write was being
//! committed); that window is the only source of a repeat. So an interrupted run that exits
//! at once (a second Ctrl-C, a kill) re-sends at most the batches that were in flight and
//! those answered but not yet written; a graceful stop (the first Ctrl-C) records those too
//! before it exits, and its resume repeats nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;

use crate::error::Error;
use ferry_core::Settled;

/// How an item ended, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The target confirmed it.
    Succeeded,
    /// It went to the dead-letter file.
    DeadLettered,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "succeeded",
            Status::DeadLettered => "dead_lettered",
        }
    }
}

/// An open checkpoint.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pool: SqlitePool,
    path: PathBuf,
}

impl Checkpoint {
    /// Opens (creating if needed) the checkpoint at `path`.
    pub async fn open(path: &Path) -> Result<Self, Error> {
        let ctx = |e: sqlx::Error| Error::Sql {
            context: format!("opening checkpoint {}", path.display()),
            source: e,
        };
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(ctx)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(ctx)?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS outcomes (
                key TEXT PRIMARY KEY NOT NULL,
                status TEXT NOT NULL,
                error TEXT,
                at REAL NOT NULL DEFAULT (unixepoch('subsec'))
            )",
        )
        .execute(&pool)
        .await
        .map_err(ctx)?;
        Ok(Checkpoint {
            pool,
            path: path.to_owned(),
        })
    }

    /// Where it lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn ctx(&self, what: &str) -> impl Fn(sqlx::Error) -> Error + '_ {
        let what = what.to_owned();
        move |e| Error::Sql {
            context: format!("{what} checkpoint {}", self.path.display()),
            source: e,
        }
    }

    /// Number of keys recorded.
    pub async fn len(&self) -> Result<u64, Error> {
        let row = sqlx::query("SELECT COUNT(*) FROM outcomes")
            .fetch_one(&self.pool)
            .await
            .map_err(self.ctx("reading"))?;
        Ok(row.try_get::<i64, _>(0).map_err(self.ctx("reading"))? as u64)
    }

    /// Whether nothing is recorded.
    pub async fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len().await? == 0)
    }

    /// Every recorded key (succeeded or dead-lettered): what `--resume` skips.
    pub async fn settled_keys(&self) -> Result<HashSet<String>, Error> {
        let rows = sqlx::query("SELECT key FROM outcomes")
            .fetch_all(&self.pool)
            .await
            .map_err(self.ctx("reading"))?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).map_err(self.ctx("reading")))
            .collect()
    }

    /// Records a settled batch in one transaction.
    pub async fn record(&self, rows: &[(String, Status, Option<String>)]) -> Result<(), Error> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(self.ctx("writing"))?;
        for (key, status, error) in rows {
            sqlx::query("INSERT INTO outcomes (key, status, error) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET status = excluded.status, error = excluded.error, at = excluded.at")
                .bind(key)
                .bind(status.as_str())
                .bind(error)
                .execute(&mut *tx)
                .await
                .map_err(self.ctx("writing"))?;
        }
        tx.commit().await.map_err(self.ctx("writing"))
    }

    /// Forgets everything (`--restart`).
    pub async fn clear(&self) -> Result<(), Error> {
        sqlx::query("DELETE FROM outcomes")
            .execute(&self.pool)
            .await
            .map_err(self.ctx("clearing"))?;
        Ok(())
    }
}

/// The checkpoint rows of a settled batch: its succeeded and dead-lettered items, with the
/// reason of each dead letter. A cancelled item is not recorded: a resume sends it again.
pub(crate) fn checkpoint_rows<T, R>(
    batch: &[Settled<T, R>],
) -> Vec<(String, Status, Option<String>)> {
    batch
        .iter()
        .filter_map(|s| match s {
            Settled::Succeeded { item, .. } => {
                Some((item.key().to_string(), Status::Succeeded, None))
            }
            Settled::DeadLettered(d) => Some((
                d.item.key().to_string(),
                Status::DeadLettered,
                Some(d.error.clone()),
            )),
            Settled::Cancelled(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_survive_reopening_and_upsert() {
        let dir = std::env::temp_dir().join(format!("ferry-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("job.checkpoint.db");
        let _ = std::fs::remove_file(&path);
        {
            let c = Checkpoint::open(&path).await.unwrap();
            c.record(&[
                ("a".into(), Status::Succeeded, None),
                ("b".into(), Status::DeadLettered, Some("bad".into())),
            ])
            .await
            .unwrap();
            c.record(&[("b".into(), Status::Succeeded, None)])
                .await
                .unwrap();
        }
        let c = Checkpoint::open(&path).await.unwrap();
        assert_eq!(c.len().await.unwrap(), 2);
        let keys = c.settled_keys().await.unwrap();
        assert!(keys.contains("a") && keys.contains("b"));
        c.clear().await.unwrap();
        assert_eq!(c.len().await.unwrap(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
