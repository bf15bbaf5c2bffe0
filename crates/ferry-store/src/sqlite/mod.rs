//! The SQLite backend: the embedded default, one file in WAL mode, one process.
//!
//! Owns the SQLite schema (`0001_init.sql`, applied by [`SqliteStore::open`] and recorded in
//! `schema_version`) and the SQLite form of every [`Store`](crate::Store) operation. Claims
//! and every other write run in `BEGIN IMMEDIATE` transactions on one writer connection;
//! wake-ups are an in-process `tokio::sync::Notify`, since only this process writes.

mod migrations;
mod store;

pub use store::SqliteStore;
