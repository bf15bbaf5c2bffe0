//! The PostgreSQL `COPY` sink: each batch is streamed with `COPY ... FROM STDIN` (text
//! format) into its table, and each list field of the items into its child table, all in
//! one transaction.
//!
//! Idempotent by key: when the table was empty as the sink opened, batches are copied
//! straight into it (the fastest path); otherwise (a resumed run, or a retried batch that
//! turns out to have landed: a unique violation switches the sink over for good) each batch
//! is copied into temporary tables first and inserted with `ON CONFLICT DO NOTHING`, and
//! child rows are inserted only for the parents that statement inserted, so a row is never
//! written twice.
//!
//! Values are written as text and PostgreSQL parses them by column type: strings as they
//! are, numbers and booleans as JSON writes them, arrays and objects as JSON (for `jsonb`
//! columns), `null` and absent fields as NULL. A batch with a value its column refuses fails
//! as a whole; it is split until the bad item stands alone and is dead-lettered with
//! PostgreSQL's message.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use ferry_core::{Batch, BatchOutcome, BoxFuture, Handler};
use serde_json::Value;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};

type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

use crate::error::Error;

/// A child table: the rows of one list field of each item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildTable {
    /// The item's list field (an array of objects).
    pub field: String,
    /// The child table.
    pub table: String,
    /// The objects' fields to write, one column each (same names).
    pub columns: Vec<String>,
    /// The child table's column that receives the parent's key.
    pub parent_key: String,
    /// A column that receives the 1-based position of the object in its list (document
    /// order), if any.
    pub position: Option<String>,
}

/// Settings of a [`CopySink`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySinkConfig {
    /// `postgres://...`.
    pub url: String,
    /// The parent table (it must exist).
    pub table: String,
    /// Payload fields to write, one column each (same names).
    pub columns: Vec<String>,
    /// The parent's unique key column (required with children).
    pub key: Option<String>,
    /// Child tables.
    pub children: Vec<ChildTable>,
}

/// Writes batches with `COPY`.
pub struct CopySink {
    pool: PgPool,
    config: CopySinkConfig,
    /// Whether batches go through temporary tables and `ON CONFLICT DO NOTHING`.
    merge: AtomicBool,
}

impl std::fmt::Debug for CopySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopySink")
            .field("table", &self.config.table)
            .field("merge", &self.merge)
            .finish_non_exhaustive()
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Appends `value` in COPY's text format.
fn push_value(out: &mut String, value: Option<&Value>) {
    let text = match value {
        None | Some(Value::Null) => {
            out.push_str("\\N");
            return;
        }
        Some(Value::String(s)) => std::borrow::Cow::Borrowed(s.as_str()),
        Some(other) => std::borrow::Cow::Owned(other.to_string()),
    };
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
}

fn push_row<'v>(out: &mut String, values: impl Iterator<Item = Option<&'v Value>>) {
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push('\t');
        }
        push_value(out, v);
    }
    out.push('\n');
}

/// A connection error, retried; a database error (bad value, constraint), split.
fn outcome(table: &str, e: sqlx::Error) -> BatchOutcome<Value> {
    match e {
        sqlx::Error::Database(e) => BatchOutcome::split(format!("{table}: {}", e.message())),
        e => BatchOutcome::retry(None, format!("{table}: {e}")),
    }
}

impl CopySink {
    /// Connects and checks that every table and column exists; notes whether the table is
    /// empty (plain `COPY`) or not (merge through temporary tables).
    pub async fn open(config: CopySinkConfig) -> Result<Self, Error> {
        let ctx = |what: &str| {
            let what = format!("{what} (COPY sink table `{}`)", config.table);
            move |source| Error::Sql {
                context: what.clone(),
                source,
            }
        };
        if !config.children.is_empty() && config.key.is_none() {
            return Err(Error::Http {
                url: config.table.clone(),
                message: "a COPY sink with child tables needs `key` (the parent's key column)"
                    .into(),
            });
        }
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect(&config.url)
            .await
            .map_err(ctx("connecting"))?;
        let mut tables = vec![(config.table.clone(), config.columns.clone())];
        for c in &config.children {
            let mut cols = c.columns.clone();
            cols.push(c.parent_key.clone());
            cols.extend(c.position.clone());
            tables.push((c.table.clone(), cols));
        }
        for (table, columns) in &tables {
            // Fails naming the table or column if either is missing.
            let probe = format!("SELECT {} FROM {} LIMIT 0", list(columns), quote(table));
            sqlx::query(&probe)
                .execute(&pool)
                .await
                .map_err(ctx("checking the columns"))?;
        }
        let has_rows: bool = sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM {})",
            quote(&config.table)
        ))
        .fetch_one(&pool)
        .await
        .map_err(ctx("looking for rows"))?;
        tracing::info!(table = %config.table, merge = has_rows, "COPY sink open");
        Ok(CopySink {
            pool,
            config,
            merge: AtomicBool::new(has_rows),
        })
    }

    /// Whether batches are merged (the table had rows, or a batch met a unique violation).
    pub fn merging(&self) -> bool {
        self.merge.load(Ordering::Relaxed)
    }

    /// The COPY text of the parent rows and of each child table's rows.
    fn encode(&self, batch: &Batch<Value>) -> (String, Vec<String>) {
        let mut parent = String::with_capacity(batch.len() * 128);
        let mut children = vec![String::new(); self.config.children.len()];
        for payload in batch.payloads() {
            push_row(
                &mut parent,
                self.config.columns.iter().map(|c| payload.get(c)),
            );
            for (child, out) in self.config.children.iter().zip(&mut children) {
                let Some(Value::Array(rows)) = payload.get(&child.field) else {
                    continue;
                };
                let key = self.config.key.as_ref().and_then(|k| payload.get(k));
                for (i, row) in rows.iter().enumerate() {
                    let position = Value::from(i + 1);
                    let values = child
                        .columns
                        .iter()
                        .map(|c| row.get(c))
                        .chain(std::iter::once(key))
                        .chain(child.position.iter().map(|_| Some(&position)));
                    push_row(out, values);
                }
            }
        }
        (parent, children)
    }

    fn child_columns(child: &ChildTable) -> Vec<String> {
        let mut cols = child.columns.clone();
        cols.push(child.parent_key.clone());
        cols.extend(child.position.clone());
        cols
    }

    async fn copy(
        tx: &mut Tx,
        table: &str,
        columns: &[String],
        data: &str,
    ) -> Result<(), sqlx::Error> {
        if data.is_empty() {
            return Ok(());
        }
        let statement = format!("COPY {} ({}) FROM STDIN", quote(table), list(columns));
        let conn: &mut PgConnection = tx;
        let mut copy = conn.copy_in_raw(&statement).await?;
        copy.send(data.as_bytes()).await?;
        copy.finish().await?;
        Ok(())
    }

    /// Straight into the tables.
    async fn write_plain(&self, parent: &str, children: &[String]) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        Self::copy(&mut tx, &self.config.table, &self.config.columns, parent).await?;
        for (child, data) in self.config.children.iter().zip(children) {
            Self::copy(&mut tx, &child.table, &Self::child_columns(child), data).await?;
        }
        tx.commit().await
    }

    /// Through temporary tables: parents that are new are inserted, and the children of
    /// exactly those.
    async fn write_merge(&self, parent: &str, children: &[String]) -> Result<(), sqlx::Error> {
        let stage = |t: &str| {
            format!(
                "ferry_stage_{}",
                t.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
            )
        };
        let mut tx = self.pool.begin().await?;
        // The temporary tables outlive the transaction (their rows do not): created once
        // per connection, quietly after that.
        let mut ddl = String::from("SET LOCAL client_min_messages = warning;");
        let p = &self.config.table;
        let _ = write!(
            ddl,
            "CREATE TEMP TABLE IF NOT EXISTS {} ON COMMIT DELETE ROWS AS SELECT {} FROM {} WITH NO DATA;",
            quote(&stage(p)),
            list(&self.config.columns),
            quote(p)
        );
        if let Some(key) = &self.config.key {
            let _ = write!(
                ddl,
                "CREATE TEMP TABLE IF NOT EXISTS {} ON COMMIT DELETE ROWS AS SELECT {} FROM {} WITH NO DATA;",
                quote(&stage(&format!("{p}_keys"))),
                quote(key),
                quote(p)
            );
        }
        for child in &self.config.children {
            let _ = write!(
                ddl,
                "CREATE TEMP TABLE IF NOT EXISTS {} ON COMMIT DELETE ROWS AS SELECT {} FROM {} WITH NO DATA;",
                quote(&stage(&child.table)),
                list(&Self::child_columns(child)),
                quote(&child.table)
            );
        }
        for statement in ddl.split(';').filter(|s| !s.is_empty()) {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        Self::copy(&mut tx, &stage(p), &self.config.columns, parent).await?;
        let cols = list(&self.config.columns);
        let insert = format!(
            "INSERT INTO {} ({cols}) SELECT {cols} FROM {} ON CONFLICT DO NOTHING",
            quote(p),
            quote(&stage(p))
        );
        match (&self.config.key, self.config.children.is_empty()) {
            (Some(key), false) => {
                let keys = quote(&stage(&format!("{p}_keys")));
                sqlx::query(&format!(
                    "WITH ins AS ({insert} RETURNING {k}) INSERT INTO {keys} SELECT {k} FROM ins",
                    k = quote(key)
                ))
                .execute(&mut *tx)
                .await?;
                for (child, data) in self.config.children.iter().zip(children) {
                    let ccols = Self::child_columns(child);
                    Self::copy(&mut tx, &stage(&child.table), &ccols, data).await?;
                    let select: Vec<String> =
                        ccols.iter().map(|c| format!("c.{}", quote(c))).collect();
                    sqlx::query(&format!(
                        "INSERT INTO {} ({}) SELECT {} FROM {} c JOIN {keys} k ON c.{} = k.{}",
                        quote(&child.table),
                        list(&ccols),
                        select.join(", "),
                        quote(&stage(&child.table)),
                        quote(&child.parent_key),
                        quote(key)
                    ))
                    .execute(&mut *tx)
                    .await?;
                }
            }
            _ => {
                sqlx::query(&insert).execute(&mut *tx).await?;
            }
        }
        tx.commit().await
    }

    async fn write(&self, batch: &Batch<Value>) -> Result<(), sqlx::Error> {
        let (parent, children) = self.encode(batch);
        if !self.merging() {
            match self.write_plain(&parent, &children).await {
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {
                    tracing::info!(table = %self.config.table, "a key already exists: merging from now on");
                    self.merge.store(true, Ordering::Relaxed);
                }
                other => return other,
            }
        }
        self.write_merge(&parent, &children).await
    }
}

impl Handler<Value, Value> for CopySink {
    fn call<'a>(&'a self, batch: &'a Batch<Value>) -> BoxFuture<'a, BatchOutcome<Value>> {
        Box::pin(async move {
            match self.write(batch).await {
                Ok(()) => BatchOutcome::ok(std::iter::repeat_n(Value::Null, batch.len())),
                Err(e) => outcome(&self.config.table, e),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_format_escapes_and_nulls() {
        let mut out = String::new();
        let (a, b, c) = (json!("a\tb\\c\nd"), json!(12.5), json!([{"x": 1}]));
        push_row(
            &mut out,
            [
                Some(&a),
                None,
                Some(&Value::Null),
                Some(&b),
                Some(&c),
                Some(&json!(true)),
            ]
            .into_iter(),
        );
        assert_eq!(out, "a\\tb\\\\c\\nd\t\\N\t\\N\t12.5\t[{\"x\":1}]\ttrue\n");
    }
}
