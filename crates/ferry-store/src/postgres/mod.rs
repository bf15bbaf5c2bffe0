//! The PostgreSQL backend: several workers on several machines sharing one database.
//!
//! Owns the PostgreSQL schema (`0001_init.sql`, applied under an advisory lock by
//! [`PgStore::connect`] and recorded in `schema_version`) and the PostgreSQL form of the
//! statements that differ between databases: `FOR UPDATE SKIP LOCKED` claims, `COPY` bulk
//! inserts, `UNNEST` bulk result inserts, and `LISTEN/NOTIFY` wake-ups relayed by a
//! background task. Since version 5 a claim's update of an item is a HOT update: no index of
//! `items` covers what a claim changes, queued items are found through `items_active` and
//! leases through `leases` (one row per claim; the item row stays the truth).
//!
//! - `store`: connecting, the schema option, transactions and the `LISTEN` relay;
//! - `jobs`: cancellation and re-drive statements;
//! - `leases`: lease, failure and take-back statements;
//! - `writes`: the statements of submit, claim and complete;
//! - `migrations`: the schema's versions.

mod jobs;
mod leases;
mod migrations;
mod store;
mod writes;

pub use store::PgStore;
