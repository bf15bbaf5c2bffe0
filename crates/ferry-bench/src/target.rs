//! The store a benchmark run gets to itself: a new SQLite file in a temporary directory or
//! a new schema in a PostgreSQL database, opened through `ferry_store::open` and removed
//! afterwards.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use ferry_store::{Store, StoreOptions};
use sqlx::postgres::PgPoolOptions;

/// A store made for one run.
pub(crate) enum Target {
    Sqlite { dir: PathBuf },
    Postgres { url: String, schema: String },
}

impl Target {
    /// A new target for `spec` (`sqlite` or a postgres:// URL); nothing is created in a
    /// database until it is opened.
    pub(crate) async fn create(spec: &str) -> anyhow::Result<Target> {
        static RUN: AtomicUsize = AtomicUsize::new(0);
        let n = RUN.fetch_add(1, Ordering::Relaxed);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_micros());
        let tag = format!("{}_{n}_{stamp}", std::process::id());
        if spec == "sqlite" {
            let dir = std::env::temp_dir().join(format!("ferry-bench-{tag}"));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            Ok(Target::Sqlite { dir })
        } else if is_postgres(spec) {
            Ok(Target::Postgres {
                url: spec.to_owned(),
                schema: format!("ferry_bench_{tag}"),
            })
        } else {
            bail!("--store takes `sqlite` or a postgres:// URL, not {spec:?}")
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Target::Sqlite { .. } => "sqlite (a new file)".to_owned(),
            Target::Postgres { url, .. } => format!("{} (a new schema)", redact(url)),
        }
    }

    /// The `--store` (and `--schema`) a `ferry worker` process gets.
    pub(crate) fn worker_args(&self) -> Vec<String> {
        match self {
            Target::Sqlite { dir } => {
                vec!["--store".into(), dir.join("store.db").display().to_string()]
            }
            Target::Postgres { url, schema } => vec![
                "--store".into(),
                url.clone(),
                "--schema".into(),
                schema.clone(),
            ],
        }
    }

    /// Opens the target's store (creating its tables).
    pub(crate) async fn open(&self, options: StoreOptions) -> anyhow::Result<Arc<dyn Store>> {
        Ok(match self {
            Target::Sqlite { dir } => {
                ferry_store::open(&dir.join("store.db").display().to_string(), None, options)
                    .await?
            }
            Target::Postgres { url, schema } => {
                ferry_store::open(url, Some(schema), options).await?
            }
        })
    }

    /// Deletes the file or drops the schema.
    pub(crate) async fn remove(&self) -> anyhow::Result<()> {
        match self {
            Target::Sqlite { dir } => {
                std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))
            }
            Target::Postgres { url, schema } => {
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(url)
                    .await
                    .context("connecting to drop the bench schema")?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&pool)
                    .await
                    .with_context(|| format!("dropping schema {schema}"))?;
                Ok(())
            }
        }
    }
}

/// Whether `spec` is a PostgreSQL URL.
pub(crate) fn is_postgres(spec: &str) -> bool {
    let lower = spec.to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// Whether PostgreSQL at `url` answers a query within about 2 s.
pub(crate) async fn pg_reachable(url: &str) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .connect(url)
        .await?;
    sqlx::query("SELECT 1").execute(&pool).await?;
    Ok(())
}

/// A URL without its password, for printing.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
