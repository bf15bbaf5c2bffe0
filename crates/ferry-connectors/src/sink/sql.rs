//! The SQL sink: each batch becomes one multi-row `INSERT` (or upsert) in one transaction,
//! on SQLite, PostgreSQL or MariaDB/MySQL, with the rows of its child tables (see the
//! [module docs](super)).

use std::borrow::Cow;
use std::str::FromStr;

use ferry_core::{Batch, BatchOutcome, BoxFuture, Handler};
use serde_json::Value;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::Row;

use super::ChildTable;
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
    /// A unique column: upsert on it instead of a plain insert (required with children).
    pub key: Option<String>,
    /// Child tables: each item's list field's objects, as rows joined to the item's key.
    pub children: Vec<ChildTable>,
}

enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// Writes batches into a table and its child tables.
pub struct SqlSink {
    pool: Pool,
    config: SqlSinkConfig,
    /// The parent's column types, in `columns` order (PostgreSQL: `udt_name`; MariaDB:
    /// `data_type`; SQLite: empty).
    types: Vec<String>,
    /// Per child: its columns (parent key, position if any, fields) and their types.
    children: Vec<(Vec<String>, Vec<String>)>,
}

impl std::fmt::Debug for SqlSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSink")
            .field("table", &self.config.table)
            .finish_non_exhaustive()
    }
}

/// The most values bound in one child statement (under SQLite's 32,766).
const MAX_BINDS: usize = 30_000;

/// One statement of a batch: SQL, the values to bind (row by row), each column's type.
type Statement<'a> = (String, Vec<Cow<'a, Value>>, &'a [String]);

impl SqlSink {
    /// Connects and reads the tables' column types; errors name the table or column.
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
        let pool = if lower.starts_with("mysql://") || lower.starts_with("mariadb://") {
            let url = match config.url.split_once("://") {
                Some((_, rest)) => format!("mysql://{rest}"),
                None => config.url.clone(),
            };
            let pool = MySqlPoolOptions::new()
                .max_connections(8)
                .connect(&url)
                .await
                .map_err(ctx("connecting"))?;
            Pool::MySql(pool)
        } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .connect(&config.url)
                .await
                .map_err(ctx("connecting"))?;
            Pool::Postgres(pool)
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
            Pool::Sqlite(pool)
        };
        let types = column_types(&pool, &config.table, &config.columns).await?;
        let mut children = Vec::with_capacity(config.children.len());
        for child in &config.children {
            let mut columns = vec![child.parent_key.clone()];
            columns.extend(child.position.clone());
            columns.extend(child.columns.iter().cloned());
            let types = column_types(&pool, &child.table, &columns).await?;
            children.push((columns, types));
        }
        Ok(SqlSink {
            pool,
            config,
            types,
            children,
        })
    }

    fn quote(&self, ident: &str) -> String {
        match self.pool {
            Pool::MySql(_) => format!("`{}`", ident.replace('`', "``")),
            _ => format!("\"{}\"", ident.replace('"', "\"\"")),
        }
    }

    /// `INSERT INTO table (columns) VALUES ...` for `rows` rows, an upsert on the unique
    /// `key` columns if any.
    fn insert(
        &self,
        table: &str,
        columns: &[String],
        types: &[String],
        rows: usize,
        key: &[&str],
    ) -> String {
        let names: Vec<String> = columns.iter().map(|c| self.quote(c)).collect();
        let updates: Vec<&String> = match key {
            [] => Vec::new(),
            k => columns
                .iter()
                .filter(|c| !k.contains(&c.as_str()))
                .collect(),
        };
        let mysql = matches!(self.pool, Pool::MySql(_));
        let ignore = mysql && !key.is_empty() && updates.is_empty();
        let mut sql = format!(
            "INSERT {}INTO {} ({}) VALUES ",
            if ignore { "IGNORE " } else { "" },
            self.quote(table),
            names.join(", ")
        );
        let mut n = 0;
        for r in 0..rows {
            sql.push_str(if r > 0 { ", (" } else { "(" });
            for (c, ty) in types.iter().enumerate() {
                if c > 0 {
                    sql.push_str(", ");
                }
                n += 1;
                match self.pool {
                    Pool::Postgres(_) => sql.push_str(&format!("${n}::{}", self.quote(ty))),
                    _ => sql.push('?'),
                }
            }
            sql.push(')');
        }
        if key.is_empty() {
            return sql;
        }
        let target = key
            .iter()
            .map(|k| self.quote(k))
            .collect::<Vec<_>>()
            .join(", ");
        let set = |f: &dyn Fn(&str) -> String| {
            updates
                .iter()
                .map(|c| f(&self.quote(c)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if mysql {
            if !updates.is_empty() {
                sql.push_str(" ON DUPLICATE KEY UPDATE ");
                sql.push_str(&set(&|c| format!("{c} = VALUES({c})")));
            }
        } else if updates.is_empty() {
            sql.push_str(&format!(" ON CONFLICT ({target}) DO NOTHING"));
        } else {
            sql.push_str(&format!(" ON CONFLICT ({target}) DO UPDATE SET "));
            sql.push_str(&set(&|c| format!("{c} = excluded.{c}")));
        }
        sql
    }

    /// The batch's statements: the parents' upsert, then per child table its rows: upserted
    /// on (parent key, position) when there is a position column (the child table's unique
    /// key), else the batch's parents' rows deleted and inserted again; either way a resent
    /// batch leaves each list once. (Deleting takes range locks that make concurrent
    /// batches deadlock on MariaDB: a position avoids them.)
    fn statements<'a>(&'a self, batch: &'a Batch<Value>) -> Vec<Statement<'a>> {
        let field = |payload: &'a Value, c: &str| {
            payload
                .get(c)
                .map_or(Cow::Owned(Value::Null), Cow::Borrowed)
        };
        let cols = &self.config.columns;
        let values: Vec<Cow<'a, Value>> = batch
            .payloads()
            .flat_map(|p| cols.iter().map(move |c| field(p, c)))
            .collect();
        let key = self.config.key.as_deref();
        let sql = self.insert(
            &self.config.table,
            cols,
            &self.types,
            batch.len(),
            key.as_slice(),
        );
        let mut out: Vec<Statement<'a>> = vec![(sql, values, &self.types)];
        let Some(key) = key else { return out };
        let keys: Vec<Cow<'a, Value>> = batch.payloads().map(|p| field(p, key)).collect();
        for (child, (columns, types)) in self.config.children.iter().zip(&self.children) {
            let marks = match self.pool {
                Pool::Postgres(_) => (1..=keys.len())
                    .map(|n| format!("${n}::{}", self.quote(&types[0])))
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => vec!["?"; keys.len()].join(", "),
            };
            let unique: Vec<&str> = match &child.position {
                Some(position) => vec![child.parent_key.as_str(), position.as_str()],
                None => {
                    let delete = format!(
                        "DELETE FROM {} WHERE {} IN ({marks})",
                        self.quote(&child.table),
                        self.quote(&child.parent_key)
                    );
                    out.push((delete, keys.clone(), &types[..1]));
                    Vec::new()
                }
            };
            let mut rows: Vec<Cow<'a, Value>> = Vec::new();
            for (payload, parent) in batch.payloads().zip(&keys) {
                let Some(Value::Array(list)) = payload.get(&child.field) else {
                    continue;
                };
                for (i, obj) in list.iter().enumerate() {
                    rows.push(parent.clone());
                    if child.position.is_some() {
                        rows.push(Cow::Owned(Value::from(i as u64 + 1)));
                    }
                    rows.extend(child.columns.iter().map(|c| field(obj, c)));
                }
            }
            let per_row = columns.len();
            let chunk = (MAX_BINDS / per_row).max(1) * per_row;
            for part in rows.chunks(chunk) {
                let sql = self.insert(&child.table, columns, types, part.len() / per_row, &unique);
                out.push((sql, part.to_vec(), types));
            }
        }
        out
    }

    async fn write(&self, batch: &Batch<Value>) -> Result<(), sqlx::Error> {
        let statements = self.statements(batch);
        match &self.pool {
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                for (sql, values, _) in &statements {
                    let mut q = sqlx::query(sql);
                    for v in values {
                        q = match v.as_ref() {
                            Value::Null => q.bind(None::<String>),
                            Value::Bool(b) => q.bind(*b),
                            Value::Number(n) => match n.as_i64() {
                                Some(i) => q.bind(i),
                                None => q.bind(n.as_f64()),
                            },
                            Value::String(s) => q.bind(s.as_str()),
                            other => q.bind(other.to_string()),
                        };
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await
            }
            Pool::MySql(pool) => {
                let mut tx = pool.begin().await?;
                for (sql, values, types) in &statements {
                    let mut q = sqlx::query(sql);
                    for (v, ty) in values.iter().zip(types.iter().cycle()) {
                        let datetime = matches!(ty.as_str(), "datetime" | "timestamp");
                        q = match v.as_ref() {
                            Value::Null => q.bind(None::<String>),
                            Value::Bool(b) => q.bind(*b),
                            Value::Number(n) => match n.as_i64() {
                                Some(i) => q.bind(i),
                                None => q.bind(n.as_f64()),
                            },
                            Value::String(s) if datetime => q.bind(mysql_datetime(s)),
                            Value::String(s) => q.bind(s.as_str()),
                            other => q.bind(other.to_string()),
                        };
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                for (sql, values, _) in &statements {
                    let mut q = sqlx::query(sql);
                    for v in values {
                        q = match v.as_ref() {
                            Value::Null => q.bind(None::<String>),
                            Value::String(s) => q.bind(Some(s.as_str())),
                            other => q.bind(Some(other.to_string())),
                        };
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await
            }
        }
    }
}

/// Each of `columns`' type in `table` (PostgreSQL: `udt_name`; MariaDB: `data_type`,
/// lower case; SQLite: empty); a column the table lacks is an error naming it.
async fn column_types(pool: &Pool, table: &str, columns: &[String]) -> Result<Vec<String>, Error> {
    let ctx = |source| Error::Sql {
        context: format!("reading the columns (sink table `{table}`)"),
        source,
    };
    let rows: Vec<(String, String)> = match pool {
        Pool::Sqlite(_) => return Ok(vec![String::new(); columns.len()]),
        Pool::Postgres(p) => sqlx::query("SELECT column_name::text, udt_name::text FROM information_schema.columns WHERE table_name = $1 AND table_schema = current_schema()")
            .bind(table)
            .fetch_all(p)
            .await
            .map_err(ctx)?
            .iter()
            .filter_map(|r| Some((r.try_get(0).ok()?, r.try_get(1).ok()?)))
            .collect(),
        Pool::MySql(p) => sqlx::query("SELECT CAST(column_name AS CHAR), CAST(data_type AS CHAR) FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ?")
            .bind(table)
            .fetch_all(p)
            .await
            .map_err(ctx)?
            .iter()
            .filter_map(|r| Some((r.try_get(0).ok()?, r.try_get::<String, _>(1).ok()?.to_ascii_lowercase())))
            .collect(),
    };
    columns
        .iter()
        .map(|c| {
            rows.iter()
                .find(|(name, _)| name == c)
                .map(|(_, ty)| ty.clone())
                .ok_or_else(|| Error::Sql {
                    context: format!("sink table `{table}`"),
                    source: sqlx::Error::ColumnNotFound(c.clone()),
                })
        })
        .collect()
}

/// A timestamp as MariaDB's `DATETIME` reads it: `T` -> space, a `Z` (UTC) dropped.
fn mysql_datetime(s: &str) -> String {
    let s = s.strip_suffix('Z').unwrap_or(s);
    if s.as_bytes().get(10) == Some(&b'T') {
        format!("{} {}", &s[..10], &s[11..])
    } else {
        s.to_owned()
    }
}

impl Handler<Value, Value> for SqlSink {
    fn call<'a>(&'a self, batch: &'a Batch<Value>) -> BoxFuture<'a, BatchOutcome<Value>> {
        Box::pin(async move {
            match self.write(batch).await {
                Ok(()) => BatchOutcome::ok(std::iter::repeat_n(Value::Null, batch.len())),
                // A deadlock or serialization failure (SQLSTATE class 40: concurrent batches
                // deleting and inserting child rows) says nothing about the rows: retried.
                Err(sqlx::Error::Database(e)) if e.code().is_some_and(|c| c.starts_with("40")) => {
                    BatchOutcome::retry(None, format!("{}: {}", self.config.table, e.message()))
                }
                Err(sqlx::Error::Database(e)) => {
                    BatchOutcome::split(format!("{}: {}", self.config.table, e.message()))
                }
                Err(e) => BatchOutcome::retry(None, format!("{}: {e}", self.config.table)),
            }
        })
    }
}
