//! The SQLite schema's migrations: embedded SQL files applied in order, the version kept in
//! `schema_version`.

use sqlx::SqlitePool;

use crate::error::{sql, Error};

/// The migrations, in order; `schema_version` records the last one applied.
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("0001_init.sql"))];

/// Applies every migration newer than the file's version, all in one write transaction.
pub(super) async fn apply(pool: &SqlitePool) -> Result<(), Error> {
    const W: &str = "migrating the store";
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(sql(W))?;
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .execute(&mut *tx)
        .await
        .map_err(sql(W))?;
    let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
        .fetch_one(&mut *tx)
        .await
        .map_err(sql(W))?;
    let current = current.unwrap_or(0);
    let supported = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if current > supported {
        return Err(Error::SchemaTooNew {
            found: current,
            supported,
        });
    }
    for (version, script) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        sqlx::raw_sql(script)
            .execute(&mut *tx)
            .await
            .map_err(sql(W))?;
        sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(sql(W))?;
        tracing::info!(version, "applied store migration");
    }
    tx.commit().await.map_err(sql(W))
}
