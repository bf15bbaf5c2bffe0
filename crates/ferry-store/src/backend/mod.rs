//! The seam between the store's logic and a database.
//!
//! The store's operations (in `ops`) are written once, over these traits; a
//! backend supplies only what differs between databases:
//!
//! - [`Backend`]: its pools, transactions and wake-ups;
//! - [`JobStatements`] and [`LeaseStatements`]: the statements whose SQL or locking differs
//!   (bulk inserts, `FOR UPDATE SKIP LOCKED`, id lists as JSON or arrays);
//! - [`Queries`]: the statements both databases run unchanged, written once over any sqlx
//!   driver that can run them;
//! - [`FairQueries`]: likewise, the statements of fair claims and tenant quotas;
//! - [`WriteStatements`]: the three hottest write transactions (submit, claim, complete)
//!   on a transaction of the backend's choosing (SQLite: its own connection, no sqlx).

mod connection;
mod fair_queries;
mod queries;
mod statements;
mod writes;

pub(crate) use connection::Backend;
pub(crate) use fair_queries::ClaimedJob;
pub(crate) use fair_queries::{FairQueries, TenantBacklog};
pub(crate) use fair_queries::{IN_FLIGHT, LANES, SERVE_JOB, SERVE_TENANT, TENANT_BACKLOG};
pub(crate) use queries::{Queries, COUNT_FINISHED_SINCE, COUNT_UNFINISHED};
pub(crate) use statements::{JobStatements, LeaseStatements, LeasedItem, Taken};
pub(crate) use writes::WriteStatements;
