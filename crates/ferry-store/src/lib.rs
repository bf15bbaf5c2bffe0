//! # ferry-store
//!
//! Durable jobs for `ferry serve` and `ferry worker`: jobs and their items, leases held by
//! workers, results recorded exactly once, retries, dead letters, cancellation, result TTL,
//! queue limits, wake-ups and API keys. One object-safe [`Store`] trait, two backends
//! sharing one test suite:
//!
//! - [`SqliteStore`]: one SQLite file (WAL), the embedded default for a single process;
//! - [`PgStore`]: PostgreSQL, for several workers on several machines (`FOR UPDATE SKIP
//!   LOCKED` claims, `COPY` bulk inserts, `LISTEN/NOTIFY` wake-ups).
//!
//! ## Priority rule
//!
//! Each claim is split 4 : 2 : 1 between high, medium and low (remainders drawn at random
//! with the same weights), and whatever a priority cannot fill goes to the others, highest
//! first. Busy queues thus get 4/7, 2/7 and 1/7 of the workers, and low is never starved,
//! even by claims of one item.
//!
//! ## Fairness rule
//!
//! Within a priority, a claim rotates between tenants, then between one tenant's jobs
//! (the rule in full: `fair`): `t` busy tenants get a `t`-th each of the claim, whatever
//! their backlogs, each tenant's part is split between its jobs, and within a job items go
//! oldest first. Per-tenant quotas: queued items ([`StoreOptions::tenant_max_queued`],
//! refused with [`Error::TenantQuota`]) and items in flight
//! ([`StoreOptions::tenant_max_in_flight`], enforced by claims).
//!
//! ## Exactly-once results
//!
//! An item moves `leased → done` only in [`Store::complete`], only while the completing
//! worker still holds its lease, in the same transaction that inserts its result; and
//! `results.item_id` is unique. A rescued item finished late by its first worker is skipped,
//! and no item can ever have two results.
//!
//! ## Layout
//!
//! - [`Store`] (`store`): the contract; [`open`] (`open`): a store from a path or URL;
//! - `ops`: every operation, written once for both backends (jobs, claims, completion,
//!   dead letters) and the one `impl Store`;
//! - `backend`: the seam a database fills in: its pools and transactions, the statements
//!   that differ (`JobStatements`, `LeaseStatements`), and the SQL both run (`Queries`);
//! - `sqlite`, `postgres`: the two backends, each split into `store` (connection), `jobs`,
//!   `leases` and `migrations`;
//! - `schedule` (the priority rule), `fair` (the fairness rule), `common` (validation, row decoding, paging, wake-ups),
//!   `types`, `options`, `clock`, `error`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferry_store::Error> {
//! use std::time::Duration;
//! use ferry_store::{NewItem, NewJob, Priority, StoreOptions};
//!
//! let store = ferry_store::open("ferry.db", None, StoreOptions::new()).await?;
//! let job = store
//!     .create_job(NewJob {
//!         tenant: String::new(),
//!         handler: "sentiment".into(),
//!         params: serde_json::json!({}),
//!         priority: Priority::Medium,
//!         items: vec![NewItem { key: "0".into(), payload: "I love it".into() }],
//!         idempotency_key: None,
//!         limits: Default::default(),
//!     })
//!     .await?;
//! for item in store.claim("worker-1", 32, Duration::from_secs(30)).await? {
//!     store.complete("worker-1", vec![(item.item_id, serde_json::json!("POSITIVE"))]).await?;
//! }
//! assert!(store.job("", &job.id).await?.is_some_and(|j| j.succeeded == 1));
//! # Ok(()) }
//! ```

mod backend;
mod clock;
mod common;
mod error;
mod fair;
mod open;
mod ops;
mod options;
mod postgres;
mod schedule;
mod sqlite;
mod store;
mod types;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::Error;
pub use open::{is_postgres_url, open};
pub use options::StoreOptions;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use store::Store;
pub use types::{
    ApiKey, ClaimedItem, DeadLetter, FailOutcome, IssuedKey, ItemStatus, JobId, JobLimits,
    JobRecord, JobStatus, NewItem, NewJob, Page, Priority, QueueDepth, RawJson, ResultRow,
    Submitted,
};
