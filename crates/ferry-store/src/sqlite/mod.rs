//! The SQLite backend: the embedded default, one file in WAL mode, one process.
//!
//! Owns the SQLite schema (`0001_init.sql`, applied by [`SqliteStore::open`] and recorded in
//! `schema_version`) and the SQLite form of the statements that differ between databases.
//! Claims and every other write run in `BEGIN IMMEDIATE` transactions on one writer
//! connection; wake-ups are an in-process `tokio::sync::Notify`, since only this process
//! writes.
//!
//! - `store`: opening the file, the pools, transactions and wake-ups;
//! - `direct`: the hottest reads on the caller's thread (rusqlite, not sqlx);
//! - `jobs`: submission, cancellation and re-drive statements;
//! - `leases`: claim, lease, completion and failure statements;
//! - `sql`: statement text (JSON id lists);
//! - `migrations`: the schema's versions.

mod direct;
mod jobs;
mod leases;
mod migrations;
mod sql;
mod store;

pub use store::SqliteStore;
