//! SQL sinks. The PostgreSQL `COPY` sink ([`CopySink`]) streams batches with `COPY`,
//! parent and child tables in one transaction, idempotent by key.
//!
//! The SQL sink ([`SqlSink`]): each batch becomes one multi-row `INSERT` (or upsert) in one
//! transaction, on SQLite, PostgreSQL or MariaDB/MySQL (`mysql://` or `mariadb://` URLs).
//!
//! Values come from each item's payload by column name. On PostgreSQL every value is sent as
//! text and cast to the column's own type (read from `information_schema` when the sink
//! opens), so JSON numbers, strings and dates land in `int4`, `numeric`, `date` or `jsonb`
//! columns alike; on SQLite and MariaDB values keep their JSON type (strings are converted
//! by the column; on MariaDB a timestamp's `T` and `Z` are dropped for `DATETIME` and
//! `TIMESTAMP` columns, which hold no zone). With a `key` column the statement is an upsert
//! (`ON CONFLICT (key) DO UPDATE`; on MariaDB `ON DUPLICATE KEY UPDATE`, or `INSERT IGNORE`
//! when the key is the only column), which makes a retried or resumed batch harmless.
//!
//! Errors: a constraint or type error fails the whole statement without saying which row, so
//! the batch is split until the bad row stands alone and is dead-lettered with the database's
//! message; connection errors are retried.

mod admin;
mod copy;

pub use admin::execute;
pub use copy::{ChildTable, CopySink, CopySinkConfig};

use std::str::FromStr;

use ferry_core::{Batch, BatchOutcome, BoxFuture, Handler};
use serde_json::Value;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::Row;

use crate::error::Error;

/// Settings of a [`SqlSink`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlSinkConfig {
    /// `sqlite:PATH` (created if missing), a `.db` path, `postgres://...`, or
    /// `mysql://...` / `mariadb://...`.
    pub url: String,
    /// The target table (it must exist).
    pub table: String,
    /// Payload fields to write, one column each (same names).
    pub columns: Vec<String>,
    /// A unique column: upsert on it instead of a plain insert.
    pub key: Option<String>,
}

enum Db {
    Sqlite(SqlitePool),
    /// The pool and each column's type name, in `columns` order.
    Postgres(PgPool, Vec<String>),
    /// The pool and, per column in `columns` order, whether it holds a date and time.
    MySql(MySqlPool, Vec<bool>),
}

/// Writes batches into a table.
pub struct SqlSink {
    db: Db,
    config: SqlSinkConfig,
}

impl std::fmt::Debug for SqlSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSink")
            .field("table", &self.config.table)
            .finish_non_exhaustive()
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

impl SqlSink {
    /// Connects and, on PostgreSQL, reads the column types; errors name the table or column.
    pub async fn open(config: SqlSinkConfig) -> Result<Self, Error> {
        if config.columns.is_empty() {
            return Err(Error::Http {
                url: config.table.clone(),
                message: "the SQL sink needs at least one column".into(),
            });
        }
        let ctx = |what: &str| {
            let what = format!("{what} (sink table `{}`)", config.table);
            move |source| Error::Sql {
                context: what.clone(),
                source,
            }
        };
        let lower = config.url.to_ascii_lowercase();
        let db = if lower.starts_with("mysql://") || lower.starts_with("mariadb://") {
            let url = match config.url.split_once("://") {
                Some((_, rest)) => format!("mysql://{rest}"),
                None => config.url.clone(),
            };
            let pool = MySqlPoolOptions::new()
                .max_connections(8)
                .connect(&url)
                .await
                .map_err(ctx("connecting"))?;
            let rows = sqlx::query("SELECT CAST(column_name AS CHAR), CAST(data_type AS CHAR) FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ?")
                .bind(&config.table)
                .fetch_all(&pool)
                .await
                .map_err(ctx("reading the columns"))?;
            let mut datetime = Vec::with_capacity(config.columns.len());
            for column in &config.columns {
                let found = rows
                    .iter()
                    .find(|r| r.try_get::<String, _>(0).is_ok_and(|n| &n == column));
                match found.and_then(|r| r.try_get::<String, _>(1).ok()) {
                    Some(t) => datetime.push(matches!(
                        t.to_ascii_lowercase().as_str(),
                        "datetime" | "timestamp"
                    )),
                    None => {
                        return Err(Error::Sql {
                            context: format!("sink table `{}`", config.table),
                            source: sqlx::Error::ColumnNotFound(column.clone()),
                        })
                    }
                }
            }
            Db::MySql(pool, datetime)
        } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .connect(&config.url)
                .await
                .map_err(ctx("connecting"))?;
            let rows = sqlx::query("SELECT column_name, udt_name FROM information_schema.columns WHERE table_name = $1 AND table_schema = current_schema()")
                .bind(&config.table)
                .fetch_all(&pool)
                .await
                .map_err(ctx("reading the columns"))?;
            let mut types = Vec::with_capacity(config.columns.len());
            for column in &config.columns {
                let found = rows
                    .iter()
                    .find(|r| r.try_get::<String, _>(0).is_ok_and(|n| &n == column));
                match found.and_then(|r| r.try_get::<String, _>(1).ok()) {
                    Some(t) => types.push(t),
                    None => {
                        return Err(Error::Sql {
                            context: format!("sink table `{}`", config.table),
                            source: sqlx::Error::ColumnNotFound(column.clone()),
                        })
                    }
                }
            }
            Db::Postgres(pool, types)
        } else {
            let options = if lower.starts_with("sqlite:") {
                SqliteConnectOptions::from_str(&config.url).map_err(ctx("connecting"))?
            } else {
                SqliteConnectOptions::new().filename(&config.url)
            };
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options.create_if_missing(true))
                .await
                .map_err(ctx("connecting"))?;
            Db::Sqlite(pool)
        };
        Ok(SqlSink { db, config })
    }

    /// The statement for `rows` rows (placeholders per database).
    fn statement(&self, rows: usize) -> String {
        if let Db::MySql(..) = &self.db {
            return self.mysql_statement(rows);
        }
        let cols = &self.config.columns;
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES ",
            quote(&self.config.table),
            cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
        );
        let mut n = 0;
        for r in 0..rows {
            if r > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for (c, _) in cols.iter().enumerate() {
                if c > 0 {
                    sql.push_str(", ");
                }
                n += 1;
                match &self.db {
                    Db::Sqlite(_) | Db::MySql(..) => sql.push('?'),
                    Db::Postgres(_, types) => sql.push_str(&format!("${n}::{}", quote(&types[c]))),
                }
            }
            sql.push(')');
        }
        if let Some(key) = &self.config.key {
            let updates: Vec<String> = cols
                .iter()
                .filter(|c| *c != key)
                .map(|c| format!("{0} = excluded.{0}", quote(c)))
                .collect();
            if updates.is_empty() {
                sql.push_str(&format!(" ON CONFLICT ({}) DO NOTHING", quote(key)));
            } else {
                sql.push_str(&format!(
                    " ON CONFLICT ({}) DO UPDATE SET {}",
                    quote(key),
                    updates.join(", ")
                ));
            }
        }
        sql
    }

    /// MariaDB's statement for `rows` rows: backquoted names, `?` placeholders, and
    /// `ON DUPLICATE KEY UPDATE` (or `INSERT IGNORE` when the key is the only column).
    fn mysql_statement(&self, rows: usize) -> String {
        let q = |ident: &str| format!("`{}`", ident.replace('`', "``"));
        let cols = &self.config.columns;
        let updates: Vec<String> = match &self.config.key {
            Some(key) => cols
                .iter()
                .filter(|c| *c != key)
                .map(|c| format!("{0} = VALUES({0})", q(c)))
                .collect(),
            None => Vec::new(),
        };
        let ignore = self.config.key.is_some() && updates.is_empty();
        let row = format!("({})", vec!["?"; cols.len()].join(", "));
        let mut sql = format!(
            "INSERT {}INTO {} ({}) VALUES {}",
            if ignore { "IGNORE " } else { "" },
            q(&self.config.table),
            cols.iter().map(|c| q(c)).collect::<Vec<_>>().join(", "),
            vec![row; rows].join(", ")
        );
        if !updates.is_empty() {
            sql.push_str(" ON DUPLICATE KEY UPDATE ");
            sql.push_str(&updates.join(", "));
        }
        sql
    }

    async fn write(&self, batch: &Batch<Value>) -> Result<(), sqlx::Error> {
        let sql = self.statement(batch.len());
        let field = |payload: &Value, c: &str| payload.get(c).cloned().unwrap_or(Value::Null);
        match &self.db {
            Db::Sqlite(pool) => {
                let mut q = sqlx::query(&sql);
                for payload in batch.payloads() {
                    for c in &self.config.columns {
                        q = match field(payload, c) {
                            Value::Null => q.bind(None::<String>),
                            Value::Bool(b) => q.bind(b),
                            Value::Number(n) => match n.as_i64() {
                                Some(i) => q.bind(i),
                                None => q.bind(n.as_f64()),
                            },
                            Value::String(s) => q.bind(s),
                            other => q.bind(other.to_string()),
                        };
                    }
                }
                let mut tx = pool.begin().await?;
                q.execute(&mut *tx).await?;
                tx.commit().await
            }
            Db::MySql(pool, datetime) => {
                let mut q = sqlx::query(&sql);
                for payload in batch.payloads() {
                    for (c, is_datetime) in self.config.columns.iter().zip(datetime) {
                        q = match field(payload, c) {
                            Value::Null => q.bind(None::<String>),
                            Value::Bool(b) => q.bind(b),
                            Value::Number(n) => match n.as_i64() {
                                Some(i) => q.bind(i),
                                None => q.bind(n.as_f64()),
                            },
                            Value::String(s) if *is_datetime => q.bind(mysql_datetime(s)),
                            Value::String(s) => q.bind(s),
                            other => q.bind(other.to_string()),
                        };
                    }
                }
                let mut tx = pool.begin().await?;
                q.execute(&mut *tx).await?;
                tx.commit().await
            }
            Db::Postgres(pool, _) => {
                let mut q = sqlx::query(&sql);
                for payload in batch.payloads() {
                    for c in &self.config.columns {
                        q = match field(payload, c) {
                            Value::Null => q.bind(None::<String>),
                            Value::String(s) => q.bind(Some(s)),
                            other => q.bind(Some(other.to_string())),
                        };
                    }
                }
                let mut tx = pool.begin().await?;
                q.execute(&mut *tx).await?;
                tx.commit().await
            }
        }
    }
}

/// A timestamp as MariaDB's `DATETIME` reads it: `T` -> space, a `Z` (UTC) dropped.
fn mysql_datetime(s: String) -> String {
    let s = s.strip_suffix('Z').map(str::to_owned).unwrap_or(s);
    if s.as_bytes().get(10) == Some(&b'T') {
        format!("{} {}", &s[..10], &s[11..])
    } else {
        s
    }
}

impl Handler<Value, Value> for SqlSink {
    fn call<'a>(&'a self, batch: &'a Batch<Value>) -> BoxFuture<'a, BatchOutcome<Value>> {
        Box::pin(async move {
            match self.write(batch).await {
                Ok(()) => BatchOutcome::ok(std::iter::repeat_n(Value::Null, batch.len())),
                Err(sqlx::Error::Database(e)) => {
                    BatchOutcome::split(format!("{}: {}", self.config.table, e.message()))
                }
                Err(e) => BatchOutcome::retry(None, format!("{}: {e}", self.config.table)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::{Engine, EngineConfig, Item, MemoryDeadLetters};
    use serde_json::json;

    async fn sqlite_sink(path: &std::path::Path, key: Option<&str>) -> SqlSink {
        let url = format!("sqlite:{}", path.display());
        let pool = SqlitePool::connect_with(
            SqliteConnectOptions::from_str(&url)
                .unwrap()
                .create_if_missing(true),
        )
        .await
        .unwrap();
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL)",
        )
        .execute(&pool)
        .await
        .unwrap();
        SqlSink::open(SqlSinkConfig {
            url,
            table: "t".into(),
            columns: vec!["id".into(), "name".into(), "score".into()],
            key: key.map(str::to_owned),
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn inserts_batches_and_isolates_a_bad_row() {
        let dir = std::env::temp_dir().join(format!("ferry-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.db");
        let _ = std::fs::remove_file(&path);
        let sink = sqlite_sink(&path, Some("id")).await;
        let dead = MemoryDeadLetters::new();
        // Row 37 has no name: NOT NULL fails its statement; the split isolates it.
        let items = (0..100u64).map(|i| {
            let name = if i == 37 {
                Value::Null
            } else {
                json!(format!("n{i}"))
            };
            Item::new(
                i,
                i,
                json!({"id": i, "name": name, "score": i as f64 / 2.0}),
            )
        });
        let report = Engine::new(EngineConfig::standard(), sink)
            .unwrap()
            .dead_letters(dead.clone())
            .run_iter(items)
            .await
            .unwrap();
        assert_eq!(report.progress.succeeded, 99);
        let letters = dead.snapshot();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].item.key().as_str(), "37");
        assert!(
            letters[0].error.contains("NOT NULL"),
            "{}",
            letters[0].error
        );
        // Upsert: writing again changes nothing in count.
        let sink = sqlite_sink(&path, Some("id")).await;
        let items =
            (0..10u64).map(|i| Item::new(i, i, json!({"id": i, "name": "again", "score": 0})));
        Engine::new(EngineConfig::standard(), sink)
            .unwrap()
            .run_iter(items)
            .await
            .unwrap();
        let pool = SqlitePool::connect(&format!("sqlite:{}", path.display()))
            .await
            .unwrap();
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM t")
            .fetch_one(&pool)
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 99);
        let again: i64 = sqlx::query("SELECT COUNT(*) FROM t WHERE name = 'again'")
            .fetch_one(&pool)
            .await
            .unwrap()
            .get(0);
        assert_eq!(again, 10);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn postgres_casts_text_to_column_types() {
        let url = "postgres://postgres@127.0.0.1:5432/test";
        let pool = PgPool::connect(url)
            .await
            .expect("PostgreSQL must be running on 127.0.0.1:5432");
        let table = format!("ferry_sink_{}", std::process::id());
        sqlx::query(&format!("CREATE TABLE {table} (id int4 PRIMARY KEY, day date, amount numeric, doc jsonb, ok bool)")).execute(&pool).await.unwrap();
        let sink = SqlSink::open(SqlSinkConfig {
            url: url.into(),
            table: table.clone(),
            columns: vec![
                "id".into(),
                "day".into(),
                "amount".into(),
                "doc".into(),
                "ok".into(),
            ],
            key: Some("id".into()),
        })
        .await
        .unwrap();
        let items = (0..50u64).map(|i| Item::new(i, i, json!({"id": i, "day": "2025-03-04", "amount": 12.5, "doc": {"a": i}, "ok": i % 2 == 0})));
        let report = Engine::new(EngineConfig::standard(), sink)
            .unwrap()
            .run_iter(items)
            .await
            .unwrap();
        let row = sqlx::query(&format!(
            "SELECT COUNT(*), SUM((doc->>'a')::int), MIN(day)::text FROM {table}"
        ))
        .fetch_one(&pool)
        .await
        .unwrap();
        sqlx::query(&format!("DROP TABLE {table}"))
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(report.progress.succeeded, 50);
        assert_eq!(row.get::<i64, _>(0), 50);
        assert_eq!(row.get::<i64, _>(1), (0..50).sum::<i64>());
        assert_eq!(row.get::<String, _>(2), "2025-03-04");
    }
}
