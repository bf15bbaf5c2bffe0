//! The PostgreSQL schema's migrations: embedded SQL files applied in order under an advisory
//! lock, the version kept in `schema_version`.

use sqlx::PgPool;

use crate::error::{sql, Error};

/// The advisory-lock class serialising migrations and (per priority) queue-limit checks.
pub(super) const LOCK_CLASS: i32 = 0x6665_7272; // "ferr"

/// The migrations, in order; `schema_version` records the last one applied.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("0001_init.sql")),
    (2, include_str!("0002_fair_claims.sql")),
    (3, include_str!("0003_job_limits.sql")),
    (4, include_str!("0004_lean_counts.sql")),
    (5, include_str!("0005_lean_items.sql")),
];

/// Applies every migration newer than the schema's version in one transaction, under an
/// advisory lock so workers starting together migrate once.
pub(super) async fn apply(pool: &PgPool, schema: Option<&str>) -> Result<(), Error> {
    const W: &str = "migrating the store";
    let mut tx = pool.begin().await.map_err(sql(W))?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, 0)")
        .bind(LOCK_CLASS)
        .execute(&mut *tx)
        .await
        .map_err(sql(W))?;
    if let Some(schema) = schema {
        // `schema` is a checked plain identifier.
        sqlx::raw_sql(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .execute(&mut *tx)
            .await
            .map_err(sql(W))?;
    }
    crate::common::migrate::<sqlx::Postgres>(&mut tx, MIGRATIONS, "BIGINT").await?;
    tx.commit().await.map_err(sql(W))
}
