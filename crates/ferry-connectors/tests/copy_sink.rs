//! The PostgreSQL COPY sink against PostgreSQL on 127.0.0.1:5432 (database `test`; tables
//! named per process, dropped after): parent and child rows in one transaction, a batch that
//! meets existing keys switches to merging and writes no row twice, a value its column refuses
//! is dead-lettered alone.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use ferry_connectors::sink::{ChildTable, CopySink, CopySinkConfig};
use ferry_core::{BatchSizing, Engine, EngineConfig, Handler, Item, MemoryDeadLetters};
use serde_json::{json, Value};
use sqlx::{PgPool, Row};

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

fn order(i: u64, total: &str) -> Item<Value> {
    let lines: Vec<Value> = (0..i % 3 + 1)
        .map(|n| json!({"sku": format!("s{i}-{n}"), "qty": n + 1}))
        .collect();
    Item::new(
        i,
        i,
        json!({"id": i, "total": total, "note": if i % 2 == 0 { Value::Null } else { json!("a\tb\\c\nd") }, "lines": lines}),
    )
}

async fn run(sink: Arc<CopySink>, items: Vec<Item<Value>>) -> (u64, Vec<String>) {
    struct Shared(Arc<CopySink>);
    impl Handler<Value, Value> for Shared {
        fn call<'a>(
            &'a self,
            batch: &'a ferry_core::Batch<Value>,
        ) -> ferry_core::BoxFuture<'a, ferry_core::BatchOutcome<Value>> {
            self.0.call(batch)
        }
    }
    let mut config = EngineConfig::standard();
    config.sizing = BatchSizing::Fixed;
    config.flush = config
        .flush
        .max_items(std::num::NonZeroUsize::new(10).unwrap());
    let dead = MemoryDeadLetters::new();
    let report = Engine::new(config, Shared(sink))
        .unwrap()
        .dead_letters(dead.clone())
        .run_iter(items)
        .await
        .unwrap();
    let errors = dead.snapshot().into_iter().map(|d| d.error).collect();
    (report.progress.succeeded, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parents_and_children_exactly_once_even_when_batches_repeat() {
    let pool = PgPool::connect(POSTGRES)
        .await
        .expect("PostgreSQL must be running on 127.0.0.1:5432");
    let (p, c) = (
        format!("ferry_copy_o_{}", std::process::id()),
        format!("ferry_copy_l_{}", std::process::id()),
    );
    sqlx::raw_sql(&format!(
        "DROP TABLE IF EXISTS {c}; DROP TABLE IF EXISTS {p};
         CREATE TABLE {p} (id bigint PRIMARY KEY, total numeric(8,2) NOT NULL, note text);
         CREATE TABLE {c} (order_id bigint REFERENCES {p}(id), n int, sku text, qty int, PRIMARY KEY (order_id, n));"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let config = CopySinkConfig {
        url: POSTGRES.into(),
        table: p.clone(),
        columns: vec!["id".into(), "total".into(), "note".into()],
        key: Some("id".into()),
        children: vec![ChildTable {
            field: "lines".into(),
            table: c.clone(),
            columns: vec!["sku".into(), "qty".into()],
            parent_key: "order_id".into(),
            position: Some("n".into()),
        }],
    };
    let sink = Arc::new(CopySink::open(config).await.unwrap());
    assert!(!sink.merging(), "an empty table is copied into straight");
    let (ok, dead) = run(
        Arc::clone(&sink),
        (1..=20).map(|i| order(i, "1.50")).collect(),
    )
    .await;
    assert_eq!((ok, dead.len()), (20, 0));
    // 11..=30 again: 11..=20 exist; the sink switches to merging and writes only 21..=30.
    // Item 25's total does not fit numeric(8,2): it alone is dead-lettered.
    let items = (11..=30)
        .map(|i| order(i, if i == 25 { "123456789.00" } else { "2.50" }))
        .collect();
    let (ok, dead) = run(Arc::clone(&sink), items).await;
    assert!(sink.merging());
    assert_eq!(ok, 19);
    assert_eq!(dead.len(), 1);
    assert!(dead[0].contains("numeric field overflow"), "{dead:?}");
    let row = sqlx::query(&format!(
        "SELECT (SELECT count(*) FROM {p}), (SELECT count(*) FROM {p} WHERE total = 2.50),
                (SELECT count(*) FROM {c}), (SELECT string_agg(sku, ',' ORDER BY n) FROM {c} WHERE order_id = 29),
                (SELECT note FROM {p} WHERE id = 3), (SELECT count(*) FROM {p} WHERE note IS NULL)"
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    let expected_lines: i64 = (1..=30).filter(|i| *i != 25).map(|i| i % 3 + 1).sum();
    sqlx::raw_sql(&format!("DROP TABLE {c}; DROP TABLE {p};"))
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(row.get::<i64, _>(0), 29);
    assert_eq!(
        row.get::<i64, _>(1),
        9,
        "rows that existed were not overwritten"
    );
    assert_eq!(row.get::<i64, _>(2), expected_lines, "no child row twice");
    assert_eq!(row.get::<String, _>(3), "s29-0,s29-1,s29-2");
    assert_eq!(row.get::<String, _>(4), "a\tb\\c\nd");
    assert_eq!(row.get::<i64, _>(5), 15, "even ids have no note");
}
