//! The SQLite schema's migrations: embedded SQL files applied in order, the version kept in
//! `schema_version`.

use sqlx::SqlitePool;

use crate::error::{sql, Error};

/// The migrations, in order; `schema_version` records the last one applied.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("0001_init.sql")),
    (2, include_str!("0002_fair_claims.sql")),
    (3, include_str!("0003_job_limits.sql")),
    (4, include_str!("0004_lean_counts.sql")),
];

/// Applies every migration newer than the file's version, all in one write transaction.
pub(super) async fn apply(pool: &SqlitePool) -> Result<(), Error> {
    const W: &str = "migrating the store";
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(sql(W))?;
    crate::common::migrate::<sqlx::Sqlite>(&mut tx, MIGRATIONS, "INTEGER").await?;
    tx.commit().await.map_err(sql(W))
}
