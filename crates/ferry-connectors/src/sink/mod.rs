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
//! Child tables (`handler.children.FIELD`, as for the COPY sink): each item's list field's
//! objects become rows of the child table, joined by the parent's key and, if asked, their
//! 1-based position, in the batch's transaction. With a position the rows are upserted on
//! (parent key, position), the child table's unique key; without one the child rows of the
//! batch's parents are deleted and inserted again. Either way a resent or resumed batch
//! leaves each list exactly once.
//!
//! Errors: a constraint or type error fails the whole statement without saying which row, so
//! the batch is split until the bad row stands alone and is dead-lettered with the database's
//! message; connection errors are retried.

mod admin;
mod copy;
mod sql;

pub use admin::execute;
pub use copy::{ChildTable, CopySink, CopySinkConfig};
pub use sql::{SqlSink, SqlSinkConfig};

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use ferry_core::{Engine, EngineConfig, Item, MemoryDeadLetters};
    use serde_json::json;
    use serde_json::Value;
    use sqlx::postgres::PgPool;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
    use sqlx::Row;

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
            children: Vec::new(),
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

    /// Without a position column, a child table's rows of a batch's parents are deleted and
    /// inserted again: a batch sent twice leaves each list once.
    #[tokio::test]
    async fn child_rows_without_a_position_are_replaced_not_doubled() {
        let dir = std::env::temp_dir().join(format!("ferry-sink-children-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite:{}", dir.join("c.db").display());
        execute(&url, "DROP TABLE IF EXISTS p; DROP TABLE IF EXISTS c; CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE c (pid INTEGER NOT NULL, sku TEXT)").await.unwrap();
        let config = SqlSinkConfig {
            url: url.clone(),
            table: "p".into(),
            columns: vec!["id".into()],
            key: Some("id".into()),
            children: vec![ChildTable {
                field: "lines".into(),
                table: "c".into(),
                columns: vec!["sku".into()],
                parent_key: "pid".into(),
                position: None,
            }],
        };
        for _ in 0..2 {
            let items = (1..=40u64).map(|i| {
                Item::new(
                    i,
                    i,
                    json!({"id": i, "lines": [{"sku": format!("a{i}")}, {"sku": format!("b{i}")}]}),
                )
            });
            let report = Engine::new(
                EngineConfig::standard(),
                SqlSink::open(config.clone()).await.unwrap(),
            )
            .unwrap()
            .run_iter(items)
            .await
            .unwrap();
            assert_eq!(report.progress.succeeded, 40);
        }
        let pool = SqlitePool::connect(&url).await.unwrap();
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM c")
            .fetch_one(&pool)
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 80);
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
            children: Vec::new(),
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
