//! The crash test on PostgreSQL: two `ferry worker` processes share a job of 20,000 items;
//! one is SIGKILLed midway (about half the items done, hundreds leased to it). Every item
//! must end with exactly one result (counted, grouped, and the unique constraint present and
//! enforced), none lost, and the killed worker's items finished by the other worker within
//! one lease time of their leases running out.
//!
//! Leases are 3 s (`ferry worker --lease 3s`): renewed and expired ones rescued every second,
//! so a killed worker's leases run out at most 3 s after the kill and are queued again at
//! most 1 s later.
//!
//! It lives here, not in ferry-cli, because it reads the store's tables directly (lease
//! owners, attempts, the unique constraint), as only this crate may. The `ferry` binary is
//! `$FERRY_BIN`, else the one in this target directory, built first if missing.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;

use common::{ferry_binary, Process};
use ferry_store::{NewItem, NewJob, PgStore, Priority, Store};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

const URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const ITEMS: usize = 20_000;
const LEASE: Duration = Duration::from_secs(3);

/// Starts `ferry worker` with identity `id`; its connections carry `id` as
/// `application_name`, so the test can see when PostgreSQL has dropped them.
fn worker(schema: &str, id: &str) -> Process {
    let url = format!("{URL}?application_name={id}");
    Process(
        Command::new(ferry_binary())
            .args(["worker", "--store", &url, "--schema", schema, "--id", id])
            .args(["--lease", "3s"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    )
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

async fn pool(schema: Option<&str>) -> PgPool {
    let mut options = PgConnectOptions::from_str(URL).unwrap();
    if let Some(schema) = schema {
        options = options.options([("search_path", schema)]);
    }
    PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_one_of_two_workers_midway_loses_and_duplicates_nothing() {
    let schema = format!("ferry_crash_{}", std::process::id());
    let admin = pool(None).await;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
    let store = PgStore::connect_with_schema(URL, &schema).await.unwrap();
    let db = pool(Some(&schema)).await;

    let job = store
        .create_job(NewJob {
            tenant: String::new(),
            handler: "echo".into(),
            params: json!({}),
            priority: Priority::Medium,
            items: (0..ITEMS)
                .map(|i| NewItem {
                    key: i.to_string(),
                    payload: json!({ "n": i }),
                })
                .collect(),
            idempotency_key: None,
            limits: ferry_store::JobLimits::default(),
        })
        .await
        .unwrap();
    let mut victim = worker(&schema, "crash-victim");
    let _survivor = worker(&schema, "crash-survivor");

    // Kill the victim once about half the items are done, while it holds leases. Between a
    // look at its leases and the kill a running victim may settle them all (a CI run saw
    // it hold none when killed), so it is frozen first (SIGSTOP), PostgreSQL is given a
    // moment to finish what the victim had already sent, and only then are its leases
    // counted: if it holds some, it is killed frozen; if not, it runs on.
    let deadline = Instant::now() + Duration::from_secs(120);
    let victim_pid = victim.0.id().to_string();
    let signal = |sig: &str| {
        let status = Command::new("kill")
            .args([sig, &victim_pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill {sig} {victim_pid}");
    };
    let counts = || async {
        let (done, held): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE state = 'done'), \
             count(*) FILTER (WHERE state = 'leased' AND lease_owner = 'crash-victim') \
             FROM items",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        (done, held)
    };
    let (done_at_kill, killed_at) = loop {
        assert!(
            Instant::now() < deadline,
            "half the items were not done in 120 s"
        );
        let (done, held) = counts().await;
        assert!(
            done < ITEMS as i64,
            "the job finished before the kill could land midway"
        );
        if done >= ITEMS as i64 / 2 && held > 0 {
            signal("-STOP");
            tokio::time::sleep(Duration::from_millis(50)).await;
            let (done, held) = counts().await;
            if held > 0 {
                victim.0.kill().unwrap();
                break (done, unix_now());
            }
            signal("-CONT");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let status = victim.0.wait().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "the victim died of SIGKILL");
    }
    // A transaction the victim had open is rolled back once PostgreSQL sees its connection
    // gone; only then is "what the victim held" settled.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'crash-victim'",
        )
        .fetch_one(&admin)
        .await
        .unwrap();
        if open == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the victim's connections linger");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let orphans: Vec<(i64, f64)> = sqlx::query_as(
        "SELECT id, lease_until FROM items \
         WHERE state = 'leased' AND lease_owner = 'crash-victim' ORDER BY id",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert!(!orphans.is_empty(), "the victim held leases when killed");
    eprintln!(
        "killed the victim at {done_at_kill} of {ITEMS} items done, holding {} leases",
        orphans.len()
    );

    // The survivor finishes everything, the victim's items included. While it does, the
    // test measures how far this machine lags: the longest a 20 ms poll round took beyond
    // 20 ms. A loaded machine delays the survivor as much as this loop, so the rescue bound
    // below allows that lag on top of one lease instead of failing on a busy CI host.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut lag = Duration::ZERO;
    let finished = loop {
        let round = Instant::now();
        let j = store.job("", &job.id).await.unwrap().unwrap();
        if j.status.is_finished() {
            break j;
        }
        assert!(
            Instant::now() < deadline,
            "the job did not finish within 120 s: {j:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        lag = lag.max(round.elapsed().saturating_sub(Duration::from_millis(20)));
    };
    assert_eq!(finished.succeeded, ITEMS as u64, "{finished:?}");
    assert_eq!((finished.failed, finished.cancelled), (0, 0));

    // Exactly one result per item: the count, no duplicates, none lost.
    let results: i64 = sqlx::query_scalar("SELECT count(*) FROM results")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(results, ITEMS as i64);
    let duplicated: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT item_id, count(*) FROM results GROUP BY item_id HAVING count(*) > 1",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert!(
        duplicated.is_empty(),
        "items with two results: {duplicated:?}"
    );
    let not_done: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM items i WHERE i.state <> 'done' \
         OR NOT EXISTS (SELECT 1 FROM results r WHERE r.item_id = i.id)",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(not_done, 0, "items lost");
    // Each result is its own item's payload (echo), not another's.
    let mismatched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM results r JOIN items i ON i.id = r.item_id \
         WHERE r.result::text <> i.payload::text",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(mismatched, 0);

    // The unique constraint is there, and enforced.
    let unique: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.table_constraints tc \
         JOIN information_schema.key_column_usage k \
           ON k.constraint_name = tc.constraint_name AND k.table_schema = tc.table_schema \
         WHERE tc.table_schema = $1 AND tc.table_name = 'results' \
           AND tc.constraint_type IN ('PRIMARY KEY', 'UNIQUE') AND k.column_name = 'item_id'",
    )
    .bind(&schema)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(unique, 1, "results.item_id is unique");
    let second = sqlx::query(
        "INSERT INTO results (item_id, result, recorded_at) \
         SELECT item_id, result, recorded_at FROM results LIMIT 1",
    )
    .execute(&db)
    .await
    .unwrap_err();
    assert_eq!(
        second.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("23505"),
        "a second result for an item violates the constraint: {second}"
    );

    // The victim's items: claimed a second time (by the survivor: the victim is dead) and
    // finished within one lease time of their leases running out.
    let ids: Vec<i64> = orphans.iter().map(|(id, _)| *id).collect();
    let rows: Vec<(i64, i64, f64)> = sqlx::query_as(
        "SELECT i.id, i.attempts, r.recorded_at FROM items i JOIN results r ON r.item_id = i.id \
         WHERE i.id = ANY($1) ORDER BY i.id",
    )
    .bind(&ids)
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(rows.len(), orphans.len());
    let mut latest = 0.0f64;
    let mut after_expiry = 0.0f64;
    for ((id, attempts, recorded_at), (_, lease_until)) in rows.iter().zip(&orphans) {
        assert_eq!(
            *attempts, 2,
            "item {id}: claimed by the victim, then the survivor"
        );
        assert!(
            *recorded_at > killed_at,
            "item {id} was recorded after the kill"
        );
        assert!(
            *recorded_at > *lease_until,
            "item {id}: finished at {recorded_at}, before the victim's lease ran out at \
             {lease_until}"
        );
        assert!(
            *recorded_at <= lease_until + (LEASE + lag).as_secs_f64(),
            "item {id}: lease ran out at {lease_until}, finished at {recorded_at}, more than \
             one lease ({LEASE:?}) plus the machine's lag ({lag:?}) later"
        );
        latest = latest.max(*recorded_at);
        after_expiry = after_expiry.max(recorded_at - lease_until);
    }
    eprintln!(
        "the victim's {} items were finished {:.2} s after the kill, at most {:.2} s after \
         their leases ran out (lease {LEASE:?}, lag {lag:?})",
        orphans.len(),
        latest - killed_at,
        after_expiry
    );

    drop(store);
    drop(db);
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
}
