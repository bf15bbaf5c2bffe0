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
    (5, include_str!("0005_plain_checks.sql")),
];

/// Applies every migration newer than the file's version, all in one write transaction.
/// When any was applied, the schema cookie moves on too: a migration may edit a table's
/// definition in place (`writable_schema`, version 5), which leaves the cookie as it was,
/// and connections read the schema again only when it changes.
pub(super) async fn apply(pool: &SqlitePool) -> Result<(), Error> {
    const W: &str = "migrating the store";
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(sql(W))?;
    let applied = crate::common::migrate::<sqlx::Sqlite>(&mut tx, MIGRATIONS, "INTEGER").await?;
    if applied > 0 {
        let cookie: i64 = sqlx::query_scalar("PRAGMA schema_version")
            .fetch_one(&mut *tx)
            .await
            .map_err(sql(W))?;
        sqlx::raw_sql(&format!("PRAGMA schema_version = {}", cookie + 1))
            .execute(&mut *tx)
            .await
            .map_err(sql(W))?;
    }
    tx.commit().await.map_err(sql(W))
}
