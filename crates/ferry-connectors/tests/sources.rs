//! Sources end to end: files written to a fresh temporary directory, SQLite databases created
//! there, and PostgreSQL at `postgres://postgres@127.0.0.1:5432/test` (a table per test, dropped
//! after; these tests fail, not skip, when PostgreSQL is unreachable).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ferry_connectors::source::{self, ItemStream, KeyBy};
use ferry_connectors::Error;
use ferry_core::Item;
use futures_util::StreamExt;
use serde_json::{json, Value};
use sqlx::Connection;

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh directory under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ferry-sources-{}-{}", unique(), name));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Unique per process and call: names for directories and tables.
fn unique() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

async fn collect(stream: ItemStream) -> Vec<Result<Item<Value>, Error>> {
    stream.collect().await
}

async fn collect_ok(stream: ItemStream) -> Vec<Item<Value>> {
    collect(stream)
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn write_big_csv(dir: &TempDir, rows: u64) -> PathBuf {
    let mut text = String::from("id,name,score,note\n");
    for i in 0..rows {
        let note = if i % 2 == 0 { "" } else { "odd, \"quoted\"" };
        text.push_str(&format!(
            "id-{i},name {i},{},\"{}\"\n",
            i * 2,
            note.replace('"', "\"\"")
        ));
    }
    dir.write("big.csv", &text)
}

#[tokio::test]
async fn csv_keyed_by_column_streams_every_row() {
    let dir = TempDir::new("csv-column");
    let path = write_big_csv(&dir, 100_000);
    let items = collect_ok(source::csv(&path, KeyBy::Column("id".into())).unwrap()).await;
    assert_eq!(items.len(), 100_000);
    assert_eq!(items[0].key().as_str(), "id-0");
    assert_eq!(items[0].index(), 0);
    assert_eq!(
        items[0].payload(),
        &json!({"id": "id-0", "name": "name 0", "score": "0", "note": null})
    );
    assert_eq!(
        items[99_999].payload(),
        &json!({"id": "id-99999", "name": "name 99999", "score": "199998", "note": "odd, \"quoted\""})
    );
    assert_eq!(items[99_999].key().as_str(), "id-99999");
    assert_eq!(items[99_999].index(), 99_999);
    assert!(items[1].bytes() > 20);
}

#[tokio::test]
async fn csv_keyed_by_row_number() {
    let dir = TempDir::new("csv-rownum");
    let path = write_big_csv(&dir, 100_000);
    let items = collect_ok(source::csv(&path, KeyBy::RowNumber).unwrap()).await;
    assert_eq!(items.len(), 100_000);
    for (i, item) in items.iter().enumerate().step_by(9_973) {
        assert_eq!(item.index(), i as u64);
        assert_eq!(item.key().as_str(), (i + 1).to_string());
        assert_eq!(item.payload()["id"], json!(format!("id-{i}")));
    }
}

#[tokio::test]
async fn csv_malformed_record_names_its_line_and_the_stream_goes_on() {
    let dir = TempDir::new("csv-bad");
    // Line 3's quoted field spans two lines, so the bad record (record 4) is on line 5.
    let path = dir.write(
        "bad.csv",
        "id,text\n1,plain\n2,\"two\nlines\"\n3,too,many\n4,last\n",
    );
    let results = collect(source::csv(&path, KeyBy::Column("id".into())).unwrap()).await;
    assert_eq!(results.len(), 4);
    assert_eq!(
        results[1].as_ref().unwrap().payload()["text"],
        json!("two\nlines")
    );
    match &results[2] {
        Err(Error::Record {
            path: p,
            line,
            message,
        }) => {
            assert_eq!(p, &path);
            assert_eq!(*line, 5);
            assert!(message.contains("expected 2 fields"), "{message}");
        }
        other => panic!("expected a record error, got {other:?}"),
    }
    let last = results[3].as_ref().unwrap();
    assert_eq!(last.key().as_str(), "4");
    assert_eq!(last.index(), 3);
}

#[tokio::test]
async fn csv_missing_file_is_an_io_error_naming_it() {
    let dir = TempDir::new("csv-missing");
    let path = dir.path("nope.csv");
    let err = source::csv(&path, KeyBy::RowNumber).err().unwrap();
    assert!(
        matches!(&err, Error::Io { path: p, .. } if p == &path),
        "{err:?}"
    );
    assert!(err.to_string().contains("nope.csv"));
}

#[tokio::test]
async fn csv_missing_key_names_the_row() {
    let dir = TempDir::new("csv-key");
    let path = dir.write("keys.csv", "id,v\na,1\n,2\nc,3\n");
    let results = collect(source::csv(&path, KeyBy::Column("id".into())).unwrap()).await;
    assert_eq!(results.len(), 3);
    match &results[1] {
        Err(Error::MissingKey {
            origin,
            row,
            column,
        }) => {
            assert!(origin.contains("keys.csv"), "{origin}");
            assert_eq!(*row, 2);
            assert_eq!(column, "id");
        }
        other => panic!("expected a missing key, got {other:?}"),
    }
    assert_eq!(results[2].as_ref().unwrap().key().as_str(), "c");

    // A column the header lacks is missing in every row.
    let results = collect(source::csv(&path, KeyBy::Column("nope".into())).unwrap()).await;
    assert!(matches!(results[0], Err(Error::MissingKey { row: 1, .. })));
}

#[tokio::test]
async fn jsonl_reads_objects_and_skips_blank_lines() {
    let dir = TempDir::new("jsonl-good");
    let path = dir.write(
        "good.jsonl",
        "{\"id\": \"a\", \"n\": 1, \"tags\": [\"x\"]}\n\n   \n{\"id\": 7, \"n\": null}\r\n{\"id\": \"c\", \"nested\": {\"k\": true}}",
    );
    let items = collect_ok(source::jsonl(&path, KeyBy::Column("id".into())).unwrap()).await;
    assert_eq!(items.len(), 3);
    assert_eq!(items[0].key().as_str(), "a");
    assert_eq!(
        items[0].payload(),
        &json!({"id": "a", "n": 1, "tags": ["x"]})
    );
    assert_eq!(items[1].key().as_str(), "7");
    assert_eq!(items[1].index(), 1);
    assert_eq!(items[2].payload()["nested"], json!({"k": true}));

    let items = collect_ok(source::jsonl(&path, KeyBy::RowNumber).unwrap()).await;
    let keys: Vec<&str> = items.iter().map(|i| i.key().as_str()).collect();
    assert_eq!(keys, ["1", "2", "3"]);
}

#[tokio::test]
async fn jsonl_bad_lines_name_the_line_and_serdes_message() {
    let dir = TempDir::new("jsonl-bad");
    let path = dir.write(
        "bad.jsonl",
        "{\"id\": 1}\n\n{\"id\": 2,}\n[1, 2]\n{\"v\": 3}\n{\"id\": 4}\n",
    );
    let results = collect(source::jsonl(&path, KeyBy::Column("id".into())).unwrap()).await;
    assert_eq!(results.len(), 5);
    match &results[1] {
        Err(
            err @ Error::Record {
                path: p,
                line,
                message,
            },
        ) => {
            assert_eq!(p, &path);
            assert_eq!(*line, 3);
            assert!(message.contains("trailing comma"), "{message}");
            assert!(err.to_string().contains("bad.jsonl:3:"), "{err}");
        }
        other => panic!("expected a record error, got {other:?}"),
    }
    assert!(
        matches!(&results[2], Err(Error::Record { line: 4, message, .. }) if message.contains("expected a JSON object")),
        "{:?}",
        results[2]
    );
    assert!(
        matches!(&results[3], Err(Error::MissingKey { row: 4, column, .. }) if column == "id"),
        "{:?}",
        results[3]
    );
    let last = results[4].as_ref().unwrap();
    assert_eq!((last.key().as_str(), last.index()), ("4", 4));
}

/// A SQLite file with `rows` rows of typed columns; every 10th `note` is NULL.
async fn sqlite_fixture(dir: &TempDir, rows: u64) -> PathBuf {
    let path = dir.path("data.db");
    let url = format!("sqlite:{}?mode=rwc", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, price REAL, name TEXT, note TEXT, \
         active BOOLEAN, day DATE)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) \
         INSERT INTO t SELECT i, i * 1.5, 'name ' || i, \
         CASE WHEN i % 10 = 0 THEN NULL ELSE 'note ' || i END, i % 2, '2024-05-01' FROM n",
    )
    .bind(rows as i64)
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    path
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test]
async fn sqlite_streams_typed_rows_keyed_by_column() {
    let dir = TempDir::new("sqlite-rows");
    let path = sqlite_fixture(&dir, 50_000).await;
    let url = format!("sqlite:{}", path.display());
    let stream = source::sql(
        &url,
        "SELECT id, price, name, note, active, day FROM t ORDER BY id",
        KeyBy::Column("id".into()),
    )
    .await
    .unwrap();
    let items = collect_ok(stream).await;
    assert_eq!(items.len(), 50_000);
    assert_eq!(items[0].key().as_str(), "1");
    assert_eq!(items[0].index(), 0);
    assert_eq!(
        items[0].payload(),
        &json!({"id": 1, "price": 1.5, "name": "name 1", "note": "note 1", "active": true, "day": "2024-05-01"})
    );
    assert_eq!(
        items[9].payload(),
        &json!({"id": 10, "price": 15.0, "name": "name 10", "note": null, "active": false, "day": "2024-05-01"})
    );
    assert_eq!(items[49_999].key().as_str(), "50000");
    assert_eq!(items[49_999].payload()["price"], json!(75_000.0));

    // A bare `.db` path works too, keyed by row number.
    let items = collect_ok(
        source::sql(
            path_str(&path),
            "SELECT name FROM t WHERE id <= 3",
            KeyBy::RowNumber,
        )
        .await
        .unwrap(),
    )
    .await;
    let keys: Vec<&str> = items.iter().map(|i| i.key().as_str()).collect();
    assert_eq!(keys, ["1", "2", "3"]);
}

#[tokio::test]
async fn sqlite_syntax_error_is_returned_by_sql() {
    let dir = TempDir::new("sqlite-syntax");
    let path = sqlite_fixture(&dir, 3).await;
    let url = format!("sqlite://{}", path.display());
    let err = source::sql(&url, "SELEC id FROM t", KeyBy::RowNumber)
        .await
        .err()
        .unwrap();
    match &err {
        Error::Sql { context, source } => {
            assert_eq!(context, "running the source query");
            assert!(source.to_string().contains("syntax"), "{source}");
        }
        other => panic!("expected a SQL error, got {other:?}"),
    }
}

#[tokio::test]
async fn sqlite_missing_file_is_an_error_naming_it() {
    let dir = TempDir::new("sqlite-missing");
    let path = dir.path("missing.db");
    let err = source::sql(path_str(&path), "SELECT 1", KeyBy::RowNumber)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::Sql { .. }), "{err:?}");
    assert!(err.to_string().contains(path_str(&path)), "{err}");
    assert!(
        !path.exists(),
        "a read-only source must not create the file"
    );
}

#[tokio::test]
async fn sqlite_null_key_names_the_row() {
    let dir = TempDir::new("sqlite-key");
    let path = sqlite_fixture(&dir, 20).await;
    let url = format!("sqlite:{}", path.display());
    let results = collect(
        source::sql(
            &url,
            "SELECT id, note FROM t ORDER BY id",
            KeyBy::Column("note".into()),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(results.len(), 20);
    match &results[9] {
        Err(Error::MissingKey {
            origin,
            row,
            column,
        }) => {
            assert_eq!(*row, 10);
            assert_eq!(column, "note");
            assert!(origin.contains("data.db"), "{origin}");
        }
        other => panic!("expected a missing key, got {other:?}"),
    }
    assert_eq!(results[10].as_ref().unwrap().key().as_str(), "note 11");
}

/// Runs `body` against a fresh table created by `create` (with `{table}` replaced), then
/// drops the table whatever happened.
async fn with_pg_table<F, Fut>(create: &str, body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let table = format!("ferry_src_{}", unique());
    let mut conn = sqlx::PgConnection::connect(POSTGRES)
        .await
        .expect("PostgreSQL must be running at postgres://postgres@127.0.0.1:5432/test");
    sqlx::raw_sql(&create.replace("{table}", &table))
        .execute(&mut conn)
        .await
        .unwrap();
    let outcome = tokio::spawn(body(table.clone())).await;
    // DROP waits for every query still reading the table: a source that kept running after
    // its stream was dropped fails here instead of hanging.
    let drop_table = format!("DROP TABLE IF EXISTS {table}");
    tokio::time::timeout(
        Duration::from_secs(20),
        sqlx::query(&drop_table).execute(&mut conn),
    )
    .await
    .expect("the table is still in use 20 s after the test")
    .unwrap();
    conn.close().await.unwrap();
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

#[tokio::test]
async fn postgres_streams_typed_rows() {
    with_pg_table(
        "CREATE TABLE {table} (id int4 PRIMARY KEY, big int8, small int2, ratio float8, \
         f4 real, label text, code varchar(8), active bool, note text, day date, \
         at timestamptz, amount numeric(10, 2), doc jsonb); \
         INSERT INTO {table} VALUES \
         (1, 9000000000, 7, 0.25, 1.5, 'one', 'c1', true, NULL, '2024-05-01', \
          '2024-05-01 13:45:00.5+02', 12345.60, '{\"k\": [1, 2]}'), \
         (2, -1, -2, -3.5, 0, 'two', NULL, false, 'n', '1999-12-31', \
          '2000-01-01 00:00:00+00', -0.05, 'null'); \
         INSERT INTO {table} (id) SELECT g FROM generate_series(3, 1000) g",
        |table| async move {
            let query = format!(
                "SELECT id, big, small, ratio, f4, label, code, active, note, day::text AS day_text, \
                 day, at, amount, doc FROM {table} ORDER BY id"
            );
            let stream = source::sql(POSTGRES, &query, KeyBy::Column("label".into()))
                .await
                .unwrap();
            let results = collect(stream).await;
            assert_eq!(results.len(), 1000);
            let first = results[0].as_ref().unwrap();
            assert_eq!(first.key().as_str(), "one");
            assert_eq!(
                first.payload(),
                &json!({
                    "id": 1, "big": 9_000_000_000_i64, "small": 7, "ratio": 0.25, "f4": 1.5,
                    "label": "one", "code": "c1", "active": true, "note": null,
                    "day_text": "2024-05-01", "day": "2024-05-01",
                    "at": "2024-05-01T11:45:00.5Z", "amount": "12345.60", "doc": {"k": [1, 2]},
                })
            );
            let second = results[1].as_ref().unwrap();
            assert_eq!(second.index(), 1);
            assert_eq!(
                second.payload(),
                &json!({
                    "id": 2, "big": -1, "small": -2, "ratio": -3.5, "f4": 0.0,
                    "label": "two", "code": null, "active": false, "note": "n",
                    "day_text": "1999-12-31", "day": "1999-12-31",
                    "at": "2000-01-01T00:00:00Z", "amount": "-0.05", "doc": null,
                })
            );
            // Rows 3.. have no label: the key is missing, and the stream goes on.
            assert!(
                matches!(&results[2], Err(Error::MissingKey { row: 3, column, .. }) if column == "label"),
                "{:?}",
                results[2]
            );
            assert!(matches!(&results[999], Err(Error::MissingKey { row: 1000, .. })));
        },
    )
    .await;
}

#[tokio::test]
async fn postgres_syntax_error_is_returned_by_sql() {
    let err = source::sql(POSTGRES, "SELEC 1", KeyBy::RowNumber)
        .await
        .err()
        .unwrap();
    match &err {
        Error::Sql { context, source } => {
            assert_eq!(context, "running the source query");
            assert!(source.to_string().contains("syntax"), "{source}");
        }
        other => panic!("expected a SQL error, got {other:?}"),
    }
}

#[tokio::test]
async fn postgres_connection_errors_hide_the_password() {
    let err = source::sql(
        "postgres://postgres:hunter2@127.0.0.1:1/test",
        "SELECT 1",
        KeyBy::RowNumber,
    )
    .await
    .err()
    .unwrap();
    let message = err.to_string();
    assert!(matches!(err, Error::Sql { .. }), "{err:?}");
    assert!(
        message.contains("connecting to postgres://postgres@127.0.0.1:1/test"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn dropping_the_stream_stops_the_query() {
    with_pg_table(
        "CREATE TABLE {table} AS SELECT g AS id FROM generate_series(1, 100000) g",
        |table| async move {
            // About 1 GB of rows: the server is still sending when the stream is dropped.
            let query = format!("SELECT id, repeat('x', 10000) AS pad FROM {table}");
            let mut stream = source::sql(POSTGRES, &query, KeyBy::RowNumber)
                .await
                .unwrap();
            let first = stream.next().await.unwrap().unwrap();
            assert_eq!(first.payload()["id"], json!(1));
            // The query task stops and closes its connection, releasing the table for the
            // DROP that follows (which would otherwise wait forever: the task would be
            // blocked on a full channel, mid-query).
            drop(stream);
        },
    )
    .await;
}

#[tokio::test]
async fn counts_for_progress() {
    let dir = std::env::temp_dir().join(format!("ferry-count-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("c.csv");
    std::fs::write(&csv, "id,name\n1,a\n\n2,b\n3,c\n").unwrap();
    assert_eq!(
        ferry_connectors::source::count_lines(&csv, true).unwrap(),
        3
    );
    let db = dir.join("c.db");
    let url = format!("sqlite:{}?mode=rwc", db.display());
    {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE t (id INTEGER)")
            .execute(&mut c)
            .await
            .unwrap();
        sqlx::query("INSERT INTO t VALUES (1), (2), (3), (4)")
            .execute(&mut c)
            .await
            .unwrap();
    }
    let n =
        ferry_connectors::source::sql_count(db.to_str().unwrap(), "SELECT id FROM t WHERE id > 1;")
            .await
            .unwrap();
    assert_eq!(n, 3);
    std::fs::remove_dir_all(&dir).unwrap();
}
