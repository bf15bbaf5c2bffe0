//! A fresh store per test: a temporary SQLite file, or a fresh PostgreSQL schema (dropped
//! afterwards), each with a manual clock and small high-priority queue limit, plus a raw
//! connection for checks the `Store` API cannot make.

use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ferry_store::{ManualClock, Priority, Store, StoreOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::SqlitePool;
use sqlx::Row;

/// Where the PostgreSQL tests run; `FERRY_TEST_PG_URL` overrides it.
pub(crate) const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The clock's reading when a test starts.
pub(crate) const T0: f64 = 1_700_000_000.0;

/// The high-priority queue limit in tests (medium and low keep their defaults).
pub(crate) const HIGH_LIMIT: usize = 3;

pub(crate) struct Fixture {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) raw: Raw,
    backend: Backend,
}

enum Backend {
    Sqlite { dir: PathBuf },
    Postgres { url: String, schema: String },
}

/// A direct connection to the same database.
pub(crate) enum Raw {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

fn options(clock: &Arc<ManualClock>) -> StoreOptions {
    StoreOptions::new()
        .clock(clock.clone())
        .queue_limit(Priority::High, NonZeroUsize::new(HIGH_LIMIT).unwrap())
        .max_connections(NonZeroU32::new(4).unwrap())
}

fn unique() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn pg_url() -> String {
    std::env::var("FERRY_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned())
}

impl Fixture {
    pub(crate) async fn sqlite() -> Fixture {
        let dir = std::env::temp_dir().join(format!("ferry-store-test-{}", unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store.db");
        let clock = Arc::new(ManualClock::new(T0));
        let store = ferry_store::open(path.to_str().unwrap(), None, options(&clock))
            .await
            .unwrap();
        let raw =
            SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&path))
                .await
                .unwrap();
        Fixture {
            store,
            clock,
            raw: Raw::Sqlite(raw),
            backend: Backend::Sqlite { dir },
        }
    }

    /// Fails (never skips) when PostgreSQL is unreachable.
    pub(crate) async fn postgres() -> Fixture {
        let url = pg_url();
        let schema = format!("ferry_test_{}", unique());
        let clock = Arc::new(ManualClock::new(T0));
        let store = match ferry_store::open(&url, Some(&schema), options(&clock)).await {
            Ok(store) => store,
            Err(e) => {
                panic!("PostgreSQL is required for these tests ({url}; set FERRY_TEST_PG_URL): {e}")
            }
        };
        let raw = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(raw_options(&url, &schema))
            .await
            .unwrap();
        Fixture {
            store,
            clock,
            raw: Raw::Postgres(raw),
            backend: Backend::Postgres { url, schema },
        }
    }

    /// Another store on the same database (another connection pool, another listener), for
    /// cross-connection wake-ups; `None` for SQLite, which serves one process.
    pub(crate) async fn second_store(&self) -> Option<Arc<dyn Store>> {
        match &self.backend {
            Backend::Sqlite { .. } => None,
            Backend::Postgres { url, schema } => {
                let store = ferry_store::open(url, Some(schema), options(&self.clock))
                    .await
                    .unwrap();
                Some(store)
            }
        }
    }

    /// Another store on the same database with `tune` applied to the test options (quotas);
    /// the test then uses only it, so SQLite's one-writer rule is kept.
    pub(crate) async fn reopen(
        &self,
        tune: impl FnOnce(StoreOptions) -> StoreOptions,
    ) -> Arc<dyn Store> {
        let options = tune(options(&self.clock));
        match &self.backend {
            Backend::Sqlite { dir } => {
                let path = dir.join("store.db");
                ferry_store::open(path.to_str().unwrap(), None, options)
                    .await
                    .unwrap()
            }
            Backend::Postgres { url, schema } => {
                ferry_store::open(url, Some(schema), options).await.unwrap()
            }
        }
    }

    /// Jobs whose queued-items counter disagrees with their items (must be none).
    pub(crate) async fn miscounted_jobs(&self) -> i64 {
        self.raw
            .scalar(
                "SELECT COUNT(*) FROM jobs j WHERE queued <> \
                 (SELECT COUNT(*) FROM items i WHERE i.job_id = j.id AND i.state = 'queued')",
            )
            .await
    }

    pub(crate) async fn cleanup(self) {
        let Fixture {
            store,
            raw,
            backend,
            ..
        } = self;
        drop(store);
        match (backend, raw) {
            (Backend::Sqlite { dir }, Raw::Sqlite(pool)) => {
                pool.close().await;
                let _ = std::fs::remove_dir_all(dir);
            }
            (Backend::Postgres { schema, .. }, Raw::Postgres(pool)) => {
                // Tasks of a failed test may still hold locks for a moment: retry, and
                // never let a cleanup failure hide the test's own.
                let drop_schema = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                for attempt in 1..=10 {
                    match sqlx::raw_sql(&drop_schema).execute(&pool).await {
                        Ok(_) => break,
                        Err(e) if attempt == 10 => eprintln!("could not drop {schema}: {e}"),
                        Err(_) => tokio::time::sleep(std::time::Duration::from_millis(300)).await,
                    }
                }
                pool.close().await;
            }
            _ => unreachable!("fixture backends match"),
        }
    }
}

fn raw_options(url: &str, schema: &str) -> PgConnectOptions {
    url.parse::<PgConnectOptions>()
        .unwrap()
        .options([("search_path", schema)])
}

impl Raw {
    pub(crate) async fn scalar(&self, sql: &str) -> i64 {
        match self {
            Raw::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
            Raw::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        }
    }

    pub(crate) async fn execute(&self, sql: &str) -> Result<u64, sqlx::Error> {
        match self {
            Raw::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected()),
            Raw::Postgres(p) => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected()),
        }
    }

    /// Every row of a query whose columns are all text.
    pub(crate) async fn texts(&self, sql: &str, columns: usize) -> Vec<Vec<String>> {
        match self {
            Raw::Sqlite(p) => sqlx::query(sql)
                .fetch_all(p)
                .await
                .unwrap()
                .iter()
                .map(|r| (0..columns).map(|i| r.get::<String, _>(i)).collect())
                .collect(),
            Raw::Postgres(p) => sqlx::query(sql)
                .fetch_all(p)
                .await
                .unwrap()
                .iter()
                .map(|r| (0..columns).map(|i| r.get::<String, _>(i)).collect())
                .collect(),
        }
    }
}
