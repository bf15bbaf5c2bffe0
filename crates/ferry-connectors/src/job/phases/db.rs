//! The phases' SQL sink: typed rows upserted by key into an existing table, SQLite or
//! PostgreSQL, several tables in one transaction (a stage's rows and its stored state commit
//! together or not at all).
//!
//! Each statement is a multi-row `INSERT ... ON CONFLICT (key) DO UPDATE`, so a retried or
//! resumed batch is harmless. On PostgreSQL each value is cast to its column's type (read
//! from `information_schema` when the sink opens), so text dates land in `date` columns.

use std::str::FromStr;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;

use super::group::Cell;
use crate::error::Error;

/// One table's upsert: its columns, the key columns among them.
#[derive(Debug, Clone)]
pub(crate) struct Upsert {
    /// The table.
    pub(crate) table: String,
    /// Columns written, in the rows' order.
    pub(crate) columns: Vec<String>,
    /// The unique key (a subset of `columns`).
    pub(crate) key: Vec<String>,
    /// PostgreSQL: each column's type, for the casts.
    pg_types: Vec<String>,
}

/// A pool on the sink's database.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    /// One connection: SQLite takes one writer at a time.
    Sqlite(SqlitePool),
    /// A pool.
    Postgres(PgPool),
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

impl Db {
    /// Connects (`sqlite:PATH` or a `.db` path must exist; `postgres://...`).
    pub(crate) async fn open(url: &str, phase: &str) -> Result<Self, Error> {
        let ctx = |source| Error::Sql {
            context: format!("phase `{phase}`: connecting to the sink database"),
            source,
        };
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(4)
                .connect(url)
                .await
                .map_err(ctx)?;
            return Ok(Db::Postgres(pool));
        }
        let options = if lower.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url).map_err(ctx)?
        } else {
            SqliteConnectOptions::new().filename(url)
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                // WAL: the phase's source reads the same file while this writes.
                options
                    .create_if_missing(false)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(std::time::Duration::from_secs(30)),
            )
            .await
            .map_err(ctx)?;
        Ok(Db::Sqlite(pool))
    }

    /// Runs one statement (no rows), e.g. a `CREATE TABLE IF NOT EXISTS`.
    pub(crate) async fn execute(&self, sql: &str) -> Result<(), sqlx::Error> {
        match self {
            Db::Sqlite(p) => sqlx::query(sql).execute(p).await.map(drop),
            Db::Postgres(p) => sqlx::query(sql).execute(p).await.map(drop),
        }
    }

    /// Every row of `u`'s table by its first column (read as text; the other columns as
    /// stored), for comparing a folded phase's rows with what the table holds.
    pub(crate) async fn rows_by_key(
        &self,
        u: &Upsert,
    ) -> Result<std::collections::HashMap<String, Vec<Cell>>, sqlx::Error> {
        let columns: Vec<String> = u
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| match i {
                0 => format!("CAST({} AS TEXT)", quote(c)),
                _ => quote(c),
            })
            .collect();
        let sql = format!("SELECT {} FROM {}", columns.join(", "), quote(&u.table));
        let rows: Vec<Vec<Cell>> = match self {
            Db::Sqlite(p) => sqlx::query(&sql)
                .fetch_all(p)
                .await?
                .iter()
                .map(super::group::sqlite_row)
                .collect(),
            Db::Postgres(p) => sqlx::query(&sql)
                .fetch_all(p)
                .await?
                .iter()
                .map(super::group::pg_row)
                .collect(),
        };
        Ok(rows
            .into_iter()
            .filter_map(|r| Some((r.first()?.text(), r)))
            .collect())
    }

    /// Checks that `table` has `columns` and a unique key on `key`, by preparing a one-row
    /// upsert; on PostgreSQL also reads the column types. Errors name the table.
    pub(crate) async fn upsert(
        &self,
        table: &str,
        columns: &[&str],
        key: &[&str],
        phase: &str,
    ) -> Result<Upsert, Error> {
        let mut u = Upsert {
            table: table.to_owned(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            key: key.iter().map(|c| (*c).to_owned()).collect(),
            pg_types: Vec::new(),
        };
        let ctx = |source| Error::Sql {
            context: format!("phase `{phase}`: sink table `{table}`"),
            source,
        };
        match self {
            Db::Sqlite(p) => {
                let mut c = p.acquire().await.map_err(ctx)?;
                sqlx::Executor::prepare(&mut *c, u.statement(1, false).as_str())
                    .await
                    .map_err(ctx)?;
            }
            Db::Postgres(p) => {
                let rows = sqlx::query("SELECT column_name, udt_name FROM information_schema.columns WHERE table_name = $1 AND table_schema = current_schema()")
                    .bind(table)
                    .fetch_all(p)
                    .await
                    .map_err(ctx)?;
                for column in columns {
                    let t = rows
                        .iter()
                        .find(|r| r.try_get::<String, _>(0).is_ok_and(|n| n == *column))
                        .and_then(|r| r.try_get::<String, _>(1).ok());
                    match t {
                        Some(t) => u.pg_types.push(t),
                        None if rows.is_empty() => {
                            return Err(ctx(sqlx::Error::Protocol(format!(
                                "relation \"{table}\" does not exist"
                            ))))
                        }
                        None => return Err(ctx(sqlx::Error::ColumnNotFound((*column).into()))),
                    }
                }
                let mut c = p.acquire().await.map_err(ctx)?;
                sqlx::Executor::prepare(&mut *c, u.statement(1, true).as_str())
                    .await
                    .map_err(ctx)?;
            }
        }
        Ok(u)
    }

    /// Writes every `(upsert, rows)` in one transaction.
    pub(crate) async fn write(&self, parts: &[(&Upsert, &[Vec<Cell>])]) -> Result<(), sqlx::Error> {
        match self {
            Db::Sqlite(p) => {
                let mut tx = p.begin().await?;
                for (u, rows) in parts {
                    for chunk in rows.chunks(u.rows_per_statement()) {
                        let sql = u.statement(chunk.len(), false);
                        let mut q = sqlx::query(&sql);
                        for cell in chunk.iter().flatten() {
                            q = match cell {
                                Cell::Null => q.bind(None::<f64>),
                                Cell::Int(i) => q.bind(*i),
                                Cell::Real(x) => q.bind(*x),
                                Cell::Text(s) => q.bind(s.as_str()),
                            };
                        }
                        q.execute(&mut *tx).await?;
                    }
                }
                tx.commit().await
            }
            Db::Postgres(p) => {
                let mut tx = p.begin().await?;
                for (u, rows) in parts {
                    for chunk in rows.chunks(u.rows_per_statement()) {
                        let sql = u.statement(chunk.len(), true);
                        let mut q = sqlx::query(&sql);
                        for cell in chunk.iter().flatten() {
                            q = match cell {
                                Cell::Null => q.bind(None::<String>),
                                Cell::Int(i) => q.bind(*i),
                                Cell::Real(x) => q.bind(*x),
                                Cell::Text(s) => q.bind(s.as_str()),
                            };
                        }
                        q.execute(&mut *tx).await?;
                    }
                }
                tx.commit().await
            }
        }
    }
}

impl Upsert {
    fn rows_per_statement(&self) -> usize {
        // SQLite allows 32,766 parameters a statement, PostgreSQL 65,535.
        (30_000 / self.columns.len().max(1)).clamp(1, 1000)
    }

    /// `INSERT INTO t (..) VALUES (..), .. ON CONFLICT (key) DO UPDATE SET ..` for `rows`.
    fn statement(&self, rows: usize, pg: bool) -> String {
        let cols: Vec<String> = self.columns.iter().map(|c| quote(c)).collect();
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES ",
            quote(&self.table),
            cols.join(", ")
        );
        let n = self.columns.len();
        for r in 0..rows {
            if r > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for c in 0..n {
                if c > 0 {
                    sql.push_str(", ");
                }
                if pg {
                    let t = self.pg_types.get(c).map_or("text", String::as_str);
                    sql.push_str(&format!("${}::{}", r * n + c + 1, quote(t)));
                } else {
                    sql.push('?');
                }
            }
            sql.push(')');
        }
        let keys: Vec<String> = self.key.iter().map(|c| quote(c)).collect();
        let sets: Vec<String> = self
            .columns
            .iter()
            .filter(|c| !self.key.contains(c))
            .map(|c| format!("{} = excluded.{}", quote(c), quote(c)))
            .collect();
        if sets.is_empty() {
            sql.push_str(&format!(" ON CONFLICT ({}) DO NOTHING", keys.join(", ")));
        } else {
            sql.push_str(&format!(
                " ON CONFLICT ({}) DO UPDATE SET {}",
                keys.join(", "),
                sets.join(", ")
            ));
        }
        sql
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_statements() {
        let u = Upsert {
            table: "breadth".into(),
            columns: vec!["date".into(), "tickers".into()],
            key: vec!["date".into()],
            pg_types: vec!["date".into(), "int4".into()],
        };
        assert_eq!(
            u.statement(2, false),
            "INSERT INTO \"breadth\" (\"date\", \"tickers\") VALUES (?, ?), (?, ?) ON CONFLICT (\"date\") DO UPDATE SET \"tickers\" = excluded.\"tickers\""
        );
        assert!(u
            .statement(1, true)
            .contains("VALUES ($1::\"date\", $2::\"int4\")"));
    }
}
