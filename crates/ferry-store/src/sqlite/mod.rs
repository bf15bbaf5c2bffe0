//! The SQLite backend: the embedded default, one file in WAL mode, one process.
//!
//! Owns the SQLite schema (`0001_init.sql`, applied by [`SqliteStore::open`] and recorded in
//! `schema_version`) and the SQLite form of the statements that differ between databases.
//! Every write transaction is `BEGIN IMMEDIATE`, one at a time in the process: submit,
//! claim and complete on the store's own write connection on the caller's thread
//! (`writer`), the others on sqlx's writer connection; wake-ups are an in-process
//! `tokio::sync::Notify`, since only this process writes.
//!
//! - `store`: opening the file, the pools, transactions and wake-ups;
//! - `direct`: the hottest reads on the caller's thread (rusqlite, not sqlx);
//! - `writer`: the store's write connection and its transactions (rusqlite, not sqlx);
//! - `writes`: the statements of submit, claim and complete, on that connection;
//! - `jobs`: cancellation and re-drive statements (sqlx);
//! - `leases`: lease, failure and take-back statements (sqlx);
//! - `sql`: statement text (JSON id lists);
//! - `migrations`: the schema's versions.

mod direct;
mod jobs;
mod leases;
mod migrations;
#[cfg(test)]
mod scratch;
mod sql;
mod store;
mod writer;
mod writes;

pub use store::SqliteStore;
