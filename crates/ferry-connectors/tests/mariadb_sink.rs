//! The SQL handler on the real MariaDB (127.0.0.1:3306, root, database `test`): multi-row
//! inserts, idempotent by key (a second run of the same items changes no count), a bad row
//! isolated and dead-lettered with MariaDB's message while its batch's other rows land, and
//! timestamps written to a DATETIME column.

#![allow(clippy::unwrap_used)]

use ferry_connectors::sink::{SqlSink, SqlSinkConfig};
use ferry_core::{Engine, EngineConfig, Item, MemoryDeadLetters};
use serde_json::{json, Value};
use sqlx::mysql::MySqlPool;
use sqlx::Row;

const URL: &str = "mysql://root@127.0.0.1:3306/test";

async fn sink(table: &str, columns: &[&str], key: Option<&str>) -> SqlSink {
    SqlSink::open(SqlSinkConfig {
        url: URL.replace("mysql://", "mariadb://"),
        table: table.into(),
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        key: key.map(str::to_owned),
    })
    .await
    .unwrap()
}

fn orders(n: u64, bad: Option<u64>) -> Vec<Item<Value>> {
    (1..=n)
        .map(|i| {
            let name = if Some(i) == bad { Value::Null } else { json!(format!("n{i} & \"q\"")) };
            Item::new(
                i,
                i,
                json!({"id": i, "name": name, "total": format!("{i}.25"), "placed": "2024-02-29T23:59:59Z", "paid": i % 2 == 0}),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_upserts_in_multi_row_inserts_and_isolates_a_bad_row() {
    let pool = MySqlPool::connect(URL)
        .await
        .expect("MariaDB must be running on 127.0.0.1:3306 (root, database `test`)");
    let table = format!("ferry_mariadb_sink_{}", std::process::id());
    sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(&format!(
        "CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT NOT NULL, total DECIMAL(12,2), placed DATETIME, paid BOOLEAN)"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let columns = ["id", "name", "total", "placed", "paid"];
    let dead = MemoryDeadLetters::new();
    let report = Engine::new(
        EngineConfig::standard(),
        sink(&table, &columns, Some("id")).await,
    )
    .unwrap()
    .dead_letters(dead.clone())
    .run_iter(orders(1000, Some(437)))
    .await
    .unwrap();
    assert_eq!(report.progress.succeeded, 999);
    let letters = dead.snapshot();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].item.key().as_str(), "437");
    assert!(letters[0].error.contains("name"), "{}", letters[0].error);

    // The same items again, the bad one fixed: one more row, none twice.
    Engine::new(
        EngineConfig::standard(),
        sink(&table, &columns, Some("id")).await,
    )
    .unwrap()
    .run_iter(orders(1000, None))
    .await
    .unwrap();
    let row = sqlx::query(&format!(
        "SELECT COUNT(*), COUNT(DISTINCT id), CAST(SUM(total) AS CHAR), CAST(MIN(placed) AS CHAR), CAST(SUM(paid) AS SIGNED), MAX(name) FROM {table}"
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    // A key-only table takes INSERT IGNORE.
    let keys = format!("{table}_keys");
    sqlx::query(&format!("DROP TABLE IF EXISTS {keys}"))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE TABLE {keys} (id BIGINT PRIMARY KEY)"))
        .execute(&pool)
        .await
        .unwrap();
    for _ in 0..2 {
        Engine::new(
            EngineConfig::standard(),
            sink(&keys, &["id"], Some("id")).await,
        )
        .unwrap()
        .run_iter(orders(50, None))
        .await
        .unwrap();
    }
    let n_keys: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM {keys}"))
        .fetch_one(&pool)
        .await
        .unwrap()
        .get(0);
    sqlx::query(&format!("DROP TABLE {table}, {keys}"))
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(row.get::<i64, _>(0), 1000);
    assert_eq!(row.get::<i64, _>(1), 1000);
    let sum: f64 = (1..=1000).map(|i| i as f64 + 0.25).sum();
    assert_eq!(row.get::<String, _>(2), format!("{sum:.2}"));
    assert_eq!(row.get::<String, _>(3), "2024-02-29 23:59:59");
    assert_eq!(row.get::<i64, _>(4), 500);
    assert_eq!(row.get::<String, _>(5), "n999 & \"q\"");
    assert_eq!(n_keys, 50);
}
