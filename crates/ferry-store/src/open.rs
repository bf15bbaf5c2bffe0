//! Opening a store from the one string a user gives: a `postgres://` (or `postgresql://`)
//! URL selects [`PgStore`], anything else is the path of an SQLite file ([`SqliteStore`],
//! created if missing).

use std::sync::Arc;

use crate::error::Error;
use crate::options::StoreOptions;
use crate::postgres::PgStore;
use crate::sqlite::SqliteStore;
use crate::store::Store;

/// Whether `spec` names a PostgreSQL database rather than an SQLite file.
pub fn is_postgres_url(spec: &str) -> bool {
    let lower = spec.to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// Opens the store that `spec` names, with `options`. `schema` keeps a PostgreSQL store's
/// tables in that schema (see [`PgStore::connect_with`]); it is an error for SQLite.
pub async fn open(
    spec: &str,
    schema: Option<&str>,
    options: StoreOptions,
) -> Result<Arc<dyn Store>, Error> {
    if is_postgres_url(spec) {
        return Ok(Arc::new(
            PgStore::connect_with(spec, schema, options).await?,
        ));
    }
    if schema.is_some() {
        return Err(Error::InvalidOption {
            option: "schema",
            message: "a schema applies to PostgreSQL stores only".into(),
        });
    }
    Ok(Arc::new(SqliteStore::open_with(spec, options).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_postgres_urls_from_paths() {
        assert!(is_postgres_url("postgres://h/db"));
        assert!(is_postgres_url("PostgreSQL://h/db"));
        assert!(!is_postgres_url("ferry.db"));
        assert!(!is_postgres_url("/tmp/postgres/ferry.db"));
    }

    #[tokio::test]
    async fn a_schema_is_refused_for_sqlite() {
        let err = open("unused.db", Some("s"), StoreOptions::new())
            .await
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("invalid store option `schema`: a schema applies to PostgreSQL stores only")
        );
    }
}
