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
//! - [`FairQueries`]: likewise, the statements of fair claims and tenant quotas.

mod connection;
mod fair_queries;
mod queries;
mod statements;

pub(crate) use connection::Backend;
pub(crate) use fair_queries::{FairQueries, TenantBacklog};
pub(crate) use queries::Queries;
pub(crate) use statements::{JobStatements, LeaseStatements, LeasedItem, Taken};
