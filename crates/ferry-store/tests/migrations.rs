//! Stores written by older versions open and are migrated in order: a version-1 store
//! (before fair claims) and a version-2 store (fair claims, before a job's own limits) reach
//! the newest version (4 on PostgreSQL; 5 on SQLite, whose CHECK constraints are plain
//! comparisons since), keep their queued work claimable and counted, and accept jobs with
//! limits. On SQLite and on
//! PostgreSQL (`postgres://postgres@127.0.0.1:5432/test` or `FERRY_TEST_PG_URL`, a fresh
//! schema per test, dropped afterwards).

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferry_store::StoreOptions;
use ferry_store::{JobId, JobLimits, JobStatus, ManualClock, NewItem, NewJob, Priority, Store};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

const SQLITE: [&str; 2] = [
    include_str!("../src/sqlite/0001_init.sql"),
    include_str!("../src/sqlite/0002_fair_claims.sql"),
];
const POSTGRES: [&str; 4] = [
    include_str!("../src/postgres/0001_init.sql"),
    include_str!("../src/postgres/0002_fair_claims.sql"),
    include_str!("../src/postgres/0003_job_limits.sql"),
    include_str!("../src/postgres/0004_lean_counts.sql"),
];

const T0: f64 = 1_700_000_000.0;
const OLD_JOB: &str = "00000000-0000-4000-8000-000000000001";

fn unique() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The statements that write schema `version` (its migrations, its version row) and one
/// pending job of three queued items, as that version's code wrote them.
fn old_store(scripts: &[&str], version: usize, version_type: &str) -> Vec<String> {
    let mut sql: Vec<String> = scripts[..version].iter().map(|s| s.to_string()).collect();
    sql.push(format!(
        "CREATE TABLE schema_version (version {version_type} NOT NULL); \
         INSERT INTO schema_version (version) VALUES ({version});"
    ));
    let queued = if version >= 2 { ", queued" } else { "" };
    let three = if version >= 2 { ", 3" } else { "" };
    sql.push(format!(
        "INSERT INTO jobs (id, tenant, handler, params, priority, status, total, \
         created_at{queued}) VALUES ('{OLD_JOB}', 't', 'echo', '{{}}', 1, 'pending', 3, \
         {T0}{three});"
    ));
    for k in 0..3 {
        sql.push(format!(
            "INSERT INTO items (job_id, key, payload, priority, state, available_at) \
             VALUES ('{OLD_JOB}', 'k{k}', '{k}', 1, 'queued', {T0});"
        ));
    }
    if version >= 4 {
        // One of the three is leased: version 5 finds leases through `leases`.
        sql.push(format!(
            "UPDATE items SET state = 'leased', lease_owner = 'old-w', \
             lease_until = {T0} + 10, attempts = 1 WHERE key = 'k0'; \
             UPDATE jobs SET queued = 2 WHERE id = '{OLD_JOB}';"
        ));
    }
    sql
}

/// A version-4 store's lease survives the migration: renewed, then taken back when its
/// worker stops, and its item claimable again; the job's other items claim as before.
async fn check_leases_migrated(store: Arc<dyn Store>, clock: &ManualClock) {
    assert_eq!(
        store
            .heartbeat("old-w", Duration::from_secs(30))
            .await
            .unwrap(),
        1
    );
    clock.advance(Duration::from_secs(20));
    assert_eq!(
        store.rescue_expired().await.unwrap(),
        0,
        "renewed, not expired"
    );
    assert_eq!(store.release("old-w").await.unwrap(), 1);
    let claimed = store.claim("w", 10, Duration::from_secs(30)).await.unwrap();
    let mut keys: Vec<&str> = claimed.iter().map(|c| c.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["k0", "k1", "k2"]);
    let k0 = claimed.iter().find(|c| c.key == "k0").unwrap();
    assert_eq!(
        k0.attempts, 1,
        "the released claim was refunded, this one counts"
    );
}

/// What every migrated store must show, whatever its backend and old version.
async fn check_migrated(store: Arc<dyn Store>, clock: &ManualClock) {
    let old = store
        .job("t", &JobId::from(OLD_JOB.to_owned()))
        .await
        .unwrap()
        .expect("the old job survives the migration");
    assert_eq!((old.status, old.total), (JobStatus::Pending, 3));
    assert_eq!(old.limits, JobLimits::default());

    let job = NewJob {
        tenant: "u".into(),
        handler: "echo".into(),
        params: json!({}),
        priority: Priority::Medium,
        items: (0..4)
            .map(|i| NewItem {
                key: format!("n{i}"),
                payload: json!(i),
            })
            .collect(),
        idempotency_key: None,
        limits: JobLimits {
            timeout_seconds: Some(60.0),
            max_batch_size: Some(2),
        },
    };
    let new = store.create_job(job).await.unwrap();
    assert_eq!(new.limits.max_batch_size, Some(2));

    // Both jobs' items are claimable; claims rotate between the two tenants and carry the
    // new job's cap.
    let claimed = store.claim("w", 4, Duration::from_secs(30)).await.unwrap();
    let of = |id: &str| claimed.iter().filter(|c| c.job_id.as_str() == id).count();
    assert_eq!((of(OLD_JOB), of(new.id.as_str())), (2, 2));
    for c in &claimed {
        let cap = if c.job_id == new.id { Some(2) } else { None };
        assert_eq!(c.max_batch_size, cap, "item {}", c.item_id);
    }

    // The new job's deadline passes: it fails, its queued items are cancelled.
    clock.advance(Duration::from_secs(61));
    let expired = store.expire_overdue().await.unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(
        (
            expired[0].id.clone(),
            expired[0].status,
            expired[0].cancelled
        ),
        (new.id.clone(), JobStatus::Failed, 2)
    );
    // Queue depths come from the jobs' counters: the old job's item still queued, and the
    // in-flight items of both jobs, the failed job's included until they are reported.
    let medium = |d: Vec<ferry_store::QueueDepth>| {
        let d = d
            .into_iter()
            .find(|d| d.priority == Priority::Medium)
            .unwrap();
        (d.unfinished_jobs, d.queued_items, d.in_flight_items)
    };
    assert_eq!(medium(store.queue_depths().await.unwrap()), (1, 1, 4));
    let rest = store.claim("w", 10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(rest.len(), 1, "only the old job's last item is left");
    assert_eq!(rest[0].job_id.as_str(), OLD_JOB);
}

async fn sqlite_from(version: usize) {
    let dir = std::env::temp_dir().join(format!("ferry-migrate-test-{}", unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("store.db");
    let raw = SqlitePool::connect_with(
        SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    for sql in old_store(&SQLITE, version, "INTEGER") {
        sqlx::raw_sql(&sql).execute(&raw).await.unwrap();
    }
    // A connection that read the old schema before the migration.
    let mut early = raw.acquire().await.unwrap();
    sqlx::query("SELECT COUNT(*) FROM items")
        .execute(&mut *early)
        .await
        .unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let options = StoreOptions::new().clock(clock.clone());
    let store = ferry_store::open(path.to_str().unwrap(), None, options)
        .await
        .unwrap();
    let v: i64 = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert_eq!(v, 5);
    check_plain_checks(&mut early).await;
    drop(early);
    check_migrated(store, &clock).await;
    raw.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Version 5 (SQLite): inserting an item compiles to no temporary b-tree (the state CHECK
/// is no `IN` list), and a state, a status or a priority outside the rule is still refused,
/// on a connection that read the schema before the migration.
async fn check_plain_checks(conn: &mut sqlx::SqliteConnection) {
    use sqlx::Row;
    // A statement run (not an `EXPLAIN`) checks the cookie and reads the schema again.
    sqlx::query("SELECT COUNT(*) FROM items")
        .execute(&mut *conn)
        .await
        .unwrap();
    let plan = sqlx::query(
        "EXPLAIN INSERT INTO items (job_id, key, payload, priority, state, available_at) \
         VALUES ('j', 'k', '0', 1, 'queued', 0)",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let ops: Vec<String> = plan.iter().map(|r| r.get::<String, _>(1)).collect();
    assert!(ops.iter().any(|op| op == "Insert"), "{ops:?}");
    assert!(!ops.iter().any(|op| op == "OpenEphemeral"), "{ops:?}");
    let refused = [
        format!(
            "INSERT INTO items (job_id, key, payload, priority, state, available_at) \
             VALUES ('{OLD_JOB}', 'bad', '0', 1, 'lost', {T0})"
        ),
        format!("UPDATE jobs SET status = 'lost' WHERE id = '{OLD_JOB}'"),
        format!("UPDATE jobs SET priority = 3 WHERE id = '{OLD_JOB}'"),
    ];
    for sql in refused {
        let e = sqlx::raw_sql(&sql).execute(&mut *conn).await.unwrap_err();
        assert!(
            e.to_string().contains("CHECK constraint failed"),
            "{sql}: {e}"
        );
    }
    let fine = format!("UPDATE jobs SET status = 'pending', priority = 1 WHERE id = '{OLD_JOB}'");
    let done = sqlx::raw_sql(&fine).execute(&mut *conn).await.unwrap();
    assert_eq!(done.rows_affected(), 1);
}

async fn postgres_from(version: usize) {
    let url = std::env::var("FERRY_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("ferry_migrate_{}", unique());
    let options = url
        .parse::<PgConnectOptions>()
        .unwrap()
        .options([("search_path", schema.as_str())]);
    let raw = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is required for these tests ({url}): {e}"));
    sqlx::raw_sql(&format!("CREATE SCHEMA \"{schema}\""))
        .execute(&raw)
        .await
        .unwrap();
    let outcome = std::panic::AssertUnwindSafe(async {
        for sql in old_store(&POSTGRES, version, "BIGINT") {
            sqlx::raw_sql(&sql).execute(&raw).await.unwrap();
        }
        let clock = Arc::new(ManualClock::new(T0));
        let options = StoreOptions::new().clock(clock.clone());
        let store = ferry_store::open(&url, Some(&schema), options)
            .await
            .unwrap();
        let v: i64 = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
            .fetch_one(&raw)
            .await
            .unwrap();
        assert_eq!(v, 5);
        if version >= 4 {
            check_leases_migrated(store, &clock).await;
        } else {
            check_migrated(store, &clock).await;
        }
    });
    let outcome = futures_util::FutureExt::catch_unwind(outcome).await;
    sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn sqlite_version_1_store_migrates_to_5() {
    sqlite_from(1).await;
}

#[tokio::test]
async fn sqlite_version_2_store_migrates_to_5() {
    sqlite_from(2).await;
}

#[tokio::test]
async fn postgres_version_1_store_migrates_to_5() {
    postgres_from(1).await;
}

#[tokio::test]
async fn postgres_version_2_store_migrates_to_5() {
    postgres_from(2).await;
}

#[tokio::test]
async fn postgres_version_4_store_with_a_lease_migrates_to_5() {
    postgres_from(4).await;
}
