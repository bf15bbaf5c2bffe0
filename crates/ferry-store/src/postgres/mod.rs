//! The PostgreSQL backend: several workers on several machines sharing one database.
//!
//! Owns the PostgreSQL schema (`0001_init.sql`, applied under an advisory lock by
//! [`PgStore::connect`] and recorded in `schema_version`) and the PostgreSQL form of every
//! [`Store`](crate::Store) operation: `FOR UPDATE SKIP LOCKED` claims, `COPY` bulk inserts,
//! `UNNEST` bulk result inserts, and `LISTEN/NOTIFY` wake-ups relayed by a background task.

mod migrations;
mod store;

pub use store::PgStore;
