//! The store test suite, written once against `Arc<dyn Store>` and run on every backend by
//! `store_tests!` in `tests/store.rs`.

mod fairness;
mod fixture;
mod limits;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_store::{
    ClaimedItem, Error, FailOutcome, ItemStatus, JobId, JobRecord, JobStatus, NewItem, NewJob,
    Priority, ResultRow, Store,
};
use serde_json::{json, Value};

pub(crate) use fairness::*;
pub(crate) use fixture::Fixture;
use fixture::{HIGH_LIMIT, T0};
pub(crate) use limits::{
    overdue_jobs_fail_and_cancel_what_is_queued, throughput_is_measured_over_finished_jobs,
};

pub(super) const LEASE: Duration = Duration::from_secs(30);

pub(super) fn new_job(tenant: &str, priority: Priority, n: usize) -> NewJob {
    NewJob {
        tenant: tenant.to_owned(),
        handler: "sentiment".to_owned(),
        params: json!({"model": "distilbert", "threshold": 0.5}),
        priority,
        items: (0..n)
            .map(|i| NewItem {
                key: format!("k{i:05}"),
                payload: json!({"n": i, "text": format!("text\t{i}\n\\")}),
            })
            .collect(),
        idempotency_key: None,
        limits: ferry_store::JobLimits::default(),
    }
}

fn ids(items: &[ClaimedItem]) -> Vec<i64> {
    items.iter().map(|c| c.item_id).collect()
}

fn count(items: &[ClaimedItem], p: Priority) -> usize {
    items.iter().filter(|c| c.priority == p).count()
}

async fn all_results(store: &dyn Store, tenant: &str, job: &JobId, page: usize) -> Vec<ResultRow> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let p = store
            .results(tenant, job, cursor, page)
            .await
            .unwrap()
            .unwrap();
        assert!(p.items.len() <= page);
        out.extend(p.items);
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

pub(crate) async fn create_and_get(fx: &Fixture) {
    let s = &fx.store;
    let job = s
        .create_job(new_job("t1", Priority::Medium, 3))
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(
        (job.total, job.succeeded, job.failed, job.cancelled),
        (3, 0, 0, 0)
    );
    assert_eq!(job.created_at, T0);
    assert_eq!(
        (job.started_at, job.completed_at, &job.error),
        (None, None, &None)
    );
    assert_eq!(job.params, json!({"model": "distilbert", "threshold": 0.5}));
    assert_eq!(s.job("t1", &job.id).await.unwrap(), Some(job.clone()));
    // JSON comes back as written, key order included.
    let mut ordered = new_job("t1", Priority::Low, 1);
    ordered.params = serde_json::from_str(r#"{"z": 1, "a": {"y": 2, "b": 3}}"#).unwrap();
    let ordered = s.create_job(ordered).await.unwrap();
    let back = s.job("t1", &ordered.id).await.unwrap().unwrap();
    assert_eq!(back.params.to_string(), r#"{"z":1,"a":{"y":2,"b":3}}"#);
    assert_eq!(
        s.cancel_job("t1", &ordered.id)
            .await
            .unwrap()
            .unwrap()
            .cancelled,
        1
    );
    assert_eq!(s.job("t1", &JobId::new()).await.unwrap(), None);

    // Payloads with tabs, newlines and backslashes survive the bulk insert.
    let rows = all_results(s.as_ref(), "t1", &job.id, 10).await;
    assert_eq!(rows.len(), 3);
    assert!(rows
        .iter()
        .all(|r| r.status == ItemStatus::Queued && r.result.is_none()));
    let claimed = s.claim("w", 3, LEASE).await.unwrap();
    assert_eq!(claimed[1].payload, json!({"n": 1, "text": "text\t1\n\\"}));
    assert_eq!(claimed[1].key, "k00001");
    assert_eq!(
        (claimed[0].handler.as_str(), claimed[0].tenant.as_str()),
        ("sentiment", "t1")
    );
    assert_eq!(claimed[0].params, job.params);

    let mut created = vec![job.id.clone(), ordered.id.clone()];
    for _ in 0..4 {
        created.push(
            s.create_job(new_job("t1", Priority::Low, 1))
                .await
                .unwrap()
                .id,
        );
    }
    let mut listed = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = s.list_jobs("t1", 2, cursor).await.unwrap();
        pages += 1;
        listed.extend(page.items.into_iter().map(|j| j.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    created.reverse();
    assert_eq!(listed, created, "newest first, each once");

    let empty = s.create_job(new_job("t1", Priority::Low, 0)).await.unwrap();
    assert_eq!(empty.status, JobStatus::Completed);
    assert_eq!(empty.completed_at, Some(T0));

    let mut dup = new_job("t1", Priority::Low, 2);
    dup.items[1].key = dup.items[0].key.clone();
    assert!(matches!(
        s.create_job(dup).await,
        Err(Error::InvalidJob { .. })
    ));
}

pub(crate) async fn tenant_isolation(fx: &Fixture) {
    let s = &fx.store;
    let a = s
        .create_job(new_job("a", Priority::Medium, 2))
        .await
        .unwrap();
    let none = s
        .create_job(new_job("", Priority::Medium, 1))
        .await
        .unwrap();
    assert!(s.job("b", &a.id).await.unwrap().is_none());
    assert!(s.job("", &a.id).await.unwrap().is_none());
    assert!(s.job("a", &none.id).await.unwrap().is_none());
    assert!(s.job("", &none.id).await.unwrap().is_some());
    assert!(s.list_jobs("b", 10, None).await.unwrap().items.is_empty());
    assert_eq!(s.list_jobs("a", 10, None).await.unwrap().items.len(), 1);
    assert!(s.results("b", &a.id, None, 10).await.unwrap().is_none());
    assert!(s.cancel_job("b", &a.id).await.unwrap().is_none());
    assert_eq!(
        s.job("a", &a.id).await.unwrap().unwrap().status,
        JobStatus::Pending
    );

    let claimed = s.claim("w", 10, LEASE).await.unwrap();
    let item = claimed.iter().find(|c| c.tenant == "a").unwrap().item_id;
    assert_eq!(
        s.fail("w", item, "boom", None, true).await.unwrap(),
        FailOutcome::DeadLettered
    );
    assert!(s
        .dead_letters("b", 10, None)
        .await
        .unwrap()
        .items
        .is_empty());
    assert_eq!(s.redrive("b", vec![item]).await.unwrap(), 0);
    assert_eq!(s.dead_letters("a", 10, None).await.unwrap().items.len(), 1);
}

pub(crate) async fn idempotency_key(fx: &Fixture) {
    let s = &fx.store;
    let mut job = new_job("t", Priority::Medium, 2);
    job.idempotency_key = Some("req-1".into());
    let submitted = s.submit_job(job.clone()).await.unwrap();
    assert!(submitted.created);
    let first = submitted.job;
    let again = s.submit_job(job.clone()).await.unwrap();
    assert!(!again.created, "a replay says so");
    assert_eq!(first.id, again.job.id);
    assert_eq!(s.list_jobs("t", 10, None).await.unwrap().items.len(), 1);
    assert_eq!(fx.raw.scalar("SELECT COUNT(*) FROM items").await, 2);

    // Concurrent retries of one request create one job.
    let mut racing = new_job("t", Priority::Low, 50);
    racing.idempotency_key = Some("req-2".into());
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let s = Arc::clone(s);
            let job = racing.clone();
            tokio::spawn(async move { s.submit_job(job).await.unwrap() })
        })
        .collect();
    let mut ids = Vec::new();
    let mut created = 0;
    for t in tasks {
        let submitted = t.await.unwrap();
        created += usize::from(submitted.created);
        ids.push(submitted.job.id);
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(
        created, 1,
        "exactly one of the racing calls created the job"
    );
    assert_eq!(fx.raw.scalar("SELECT COUNT(*) FROM items").await, 52);

    // Keys are per tenant; no key means no deduplication.
    job.tenant = "other".into();
    assert_ne!(s.create_job(job).await.unwrap().id, first.id);
    let plain = new_job("t", Priority::Medium, 1);
    let x = s.create_job(plain.clone()).await.unwrap();
    let y = s.create_job(plain).await.unwrap();
    assert_ne!(x.id, y.id);
}

pub(crate) async fn queue_full(fx: &Fixture) {
    let s = &fx.store;
    let mut keyed = new_job("t", Priority::High, 1);
    keyed.idempotency_key = Some("k".into());
    let first = s.create_job(keyed.clone()).await.unwrap();
    for _ in 1..HIGH_LIMIT {
        s.create_job(new_job("t", Priority::High, 1)).await.unwrap();
    }
    match s.create_job(new_job("t", Priority::High, 1)).await {
        Err(Error::QueueFull {
            priority,
            limit,
            retry_after_secs,
        }) => {
            assert_eq!((priority, limit), (Priority::High, HIGH_LIMIT as u64));
            assert!((1..=60).contains(&retry_after_secs));
        }
        other => panic!("expected QueueFull, got {other:?}"),
    }
    // A retried request is answered even when the queue is full; other queues are open.
    assert_eq!(s.create_job(keyed).await.unwrap().id, first.id);
    s.create_job(new_job("t", Priority::Medium, 1))
        .await
        .unwrap();
    let depths = s.queue_depths().await.unwrap();
    assert_eq!(depths[0].unfinished_jobs, HIGH_LIMIT as u64);
    assert_eq!(depths[0].limit, HIGH_LIMIT as u64);
    assert_eq!((depths[1].limit, depths[2].limit), (500, 1000));

    // A finished (here: cancelled) job frees its place.
    s.cancel_job("t", &first.id).await.unwrap().unwrap();
    s.create_job(new_job("t", Priority::High, 1)).await.unwrap();
}

/// Submits `n` copies of `job` at once; their outcomes.
pub(crate) async fn submit_racing(
    s: &Arc<dyn Store>,
    n: usize,
    job: NewJob,
) -> Vec<Result<JobRecord, Error>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (s, job) = (Arc::clone(s), job.clone());
            tokio::spawn(async move { s.create_job(job).await })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Racing submissions: the queue limit admits exactly as many jobs as it has room for, and
/// the refused ones leave nothing behind (their items were written before the exact count,
/// and rolled back with the job).
pub(crate) async fn queue_limit_holds_under_racing_submissions(fx: &Fixture) {
    let s = &fx.store;
    let (mut admitted, mut refused) = (0, 0);
    for submitted in submit_racing(s, 12, new_job("t", Priority::High, 40)).await {
        match submitted {
            Ok(_) => admitted += 1,
            Err(Error::QueueFull { limit, .. }) => {
                assert_eq!(limit, HIGH_LIMIT as u64);
                refused += 1;
            }
            Err(other) => panic!("expected a job or QueueFull, got {other:?}"),
        }
    }
    assert_eq!((admitted, refused), (HIGH_LIMIT, 12 - HIGH_LIMIT));
    assert_eq!(
        fx.raw.scalar("SELECT COUNT(*) FROM jobs").await,
        HIGH_LIMIT as i64
    );
    assert_eq!(
        fx.raw.scalar("SELECT COUNT(*) FROM items").await,
        40 * HIGH_LIMIT as i64
    );
    assert_eq!(
        s.queue_depths().await.unwrap()[0].unfinished_jobs,
        HIGH_LIMIT as u64
    );
}

/// The stored encoding predates the one priority type: high 0, medium 1, low 2, in jobs and
/// items alike. A database written before the change must read the same.
pub(crate) async fn priority_encoding_is_stable(fx: &Fixture) {
    let s = &fx.store;
    for (p, stored) in [
        (Priority::High, 0),
        (Priority::Medium, 1),
        (Priority::Low, 2),
    ] {
        let job = s.create_job(new_job("t", p, 2)).await.unwrap();
        let id = job.id.as_str();
        let sql = format!("SELECT MIN(priority) FROM jobs WHERE id = '{id}'");
        assert_eq!(fx.raw.scalar(&sql).await, stored, "{p} job");
        let sql = format!("SELECT MAX(priority) FROM items WHERE job_id = '{id}'");
        assert_eq!(fx.raw.scalar(&sql).await, stored, "{p} items");
        assert_eq!(s.job("t", &job.id).await.unwrap().unwrap().priority, p);
    }
}

pub(crate) async fn claim_follows_priority_rule(fx: &Fixture) {
    let s = &fx.store;
    let low = s.create_job(new_job("t", Priority::Low, 20)).await.unwrap();
    let medium = s
        .create_job(new_job("t", Priority::Medium, 20))
        .await
        .unwrap();
    let high = s
        .create_job(new_job("t", Priority::High, 20))
        .await
        .unwrap();

    let c = s.claim("w", 7, LEASE).await.unwrap();
    let counts = Priority::DESCENDING.map(|p| count(&c, p));
    assert_eq!(counts, [4, 2, 1], "4:2:1 shares");
    let mut sorted = c.clone();
    sorted.sort_by_key(|c| (std::cmp::Reverse(c.priority), c.item_id));
    assert_eq!(c, sorted, "claims come back by priority, then item id");
    assert!(c.iter().all(|c| c.attempts == 1));
    // Oldest first within a priority: the first items of each job.
    let high_keys: Vec<&str> = c
        .iter()
        .filter(|c| c.job_id == high.id)
        .map(|c| c.key.as_str())
        .collect();
    assert_eq!(high_keys, ["k00000", "k00001", "k00002", "k00003"]);

    let c = s.claim("w", 14, LEASE).await.unwrap();
    assert_eq!(Priority::DESCENDING.map(|p| count(&c, p)), [8, 4, 2]);

    // Left: high 8, medium 14, low 17. Shares of 28 are 16/8/4; high runs dry at 8, its
    // unused share goes to medium (the rest of it, 6) and then low.
    let c = s.claim("w", 28, LEASE).await.unwrap();
    assert_eq!(Priority::DESCENDING.map(|p| count(&c, p)), [8, 14, 6]);

    // Only low is left: a claim takes it all, whatever the shares.
    let c = s.claim("w", 50, LEASE).await.unwrap();
    assert_eq!(Priority::DESCENDING.map(|p| count(&c, p)), [0, 0, 11]);
    assert!(s.claim("w", 5, LEASE).await.unwrap().is_empty());

    for id in [&low.id, &medium.id, &high.id] {
        let j = s.job("t", id).await.unwrap().unwrap();
        assert_eq!(j.status, JobStatus::Processing);
        assert_eq!(j.started_at, Some(T0));
    }
}

pub(crate) async fn concurrent_claims_hand_out_each_item_once(fx: &Fixture) {
    let s = &fx.store;
    let mut jobs = Vec::new();
    for p in [
        Priority::High,
        Priority::Medium,
        Priority::Medium,
        Priority::Low,
    ] {
        jobs.push(s.create_job(new_job("t", p, 500)).await.unwrap().id);
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let s: Arc<dyn Store> = Arc::clone(s);
        tasks.push(tokio::spawn(async move {
            let worker = format!("worker-{w}");
            let mut mine = Vec::new();
            loop {
                let claimed = s.claim(&worker, 37, LEASE).await.unwrap();
                if claimed.is_empty() {
                    return mine;
                }
                let results: Vec<(i64, Value)> = claimed
                    .iter()
                    .map(|c| (c.item_id, json!({"by": worker})))
                    .collect();
                assert_eq!(
                    s.complete(&worker, results).await.unwrap(),
                    claimed.len() as u64
                );
                mine.extend(ids(&claimed));
            }
        }));
    }
    let mut seen = BTreeMap::new();
    for t in tasks {
        for id in t.await.unwrap() {
            *seen.entry(id).or_insert(0) += 1;
        }
    }
    assert_eq!(seen.len(), 2000, "every item claimed");
    assert!(seen.values().all(|n| *n == 1), "no item claimed twice");
    assert_eq!(fx.raw.scalar("SELECT COUNT(*) FROM results").await, 2000);
    for id in &jobs {
        let j = s.job("t", id).await.unwrap().unwrap();
        assert_eq!((j.status, j.succeeded), (JobStatus::Completed, 500));
        assert_eq!(j.completed_at, Some(T0));
    }
}

pub(crate) async fn complete_is_exactly_once(fx: &Fixture) {
    let s = &fx.store;
    let job = s
        .create_job(new_job("t", Priority::Medium, 3))
        .await
        .unwrap();
    let c = ids(&s.claim("w", 3, LEASE).await.unwrap());

    // Another worker cannot complete what it does not hold.
    assert_eq!(
        s.complete("intruder", vec![(c[0], json!("x"))])
            .await
            .unwrap(),
        0
    );
    // The same item twice in one call: one result, the first.
    let n = s
        .complete(
            "w",
            vec![
                (c[0], json!("first")),
                (c[0], json!("second")),
                (c[1], json!(1)),
            ],
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
    // Again: skipped, counted as nothing, and the other item still goes through.
    let n = s
        .complete("w", vec![(c[0], json!("again")), (c[2], json!(2))])
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(s.complete("w", vec![(c[2], json!(3))]).await.unwrap(), 0);

    let rows = all_results(s.as_ref(), "t", &job.id, 10).await;
    let results: Vec<Option<Value>> = rows.iter().map(|r| r.result.clone()).collect();
    assert_eq!(
        results,
        [Some(json!("first")), Some(json!(1)), Some(json!(2))]
    );
    assert!(rows.iter().all(|r| r.status == ItemStatus::Succeeded));
    let j = s.job("t", &job.id).await.unwrap().unwrap();
    assert_eq!((j.status, j.succeeded), (JobStatus::Completed, 3));
    assert_eq!(fx.raw.scalar("SELECT COUNT(*) FROM results").await, 3);

    // The database itself refuses a second result for an item.
    let dup = format!(
        "INSERT INTO results (item_id, result, recorded_at) VALUES ({}, '{{}}', 0)",
        c[0]
    );
    let err = fx.raw.execute(&dup).await.unwrap_err();
    assert!(
        err.as_database_error()
            .is_some_and(|e| e.is_unique_violation()),
        "{err}"
    );
}

pub(crate) async fn lease_expiry_and_rescue(fx: &Fixture) {
    let s = &fx.store;
    let job = s
        .create_job(new_job("t", Priority::Medium, 1))
        .await
        .unwrap();
    let first = s.claim("a", 1, LEASE).await.unwrap();
    assert_eq!(first[0].attempts, 1);
    assert_eq!(s.rescue_expired().await.unwrap(), 0);
    assert!(s.claim("b", 1, LEASE).await.unwrap().is_empty());

    fx.clock.advance(LEASE + Duration::from_secs(1));
    assert_eq!(s.rescue_expired().await.unwrap(), 1);
    let second = s.claim("b", 1, LEASE).await.unwrap();
    assert_eq!(second[0].item_id, first[0].item_id);
    assert_eq!(
        second[0].attempts, 2,
        "a rescued claim counts as an attempt"
    );

    // The first worker wakes up late: its result is not recorded.
    assert_eq!(
        s.complete("a", vec![(first[0].item_id, json!("late"))])
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.fail("a", first[0].item_id, "late", None, true)
            .await
            .unwrap(),
        FailOutcome::NotLeased
    );
    assert_eq!(
        s.complete("b", vec![(first[0].item_id, json!("b"))])
            .await
            .unwrap(),
        1
    );
    let rows = all_results(s.as_ref(), "t", &job.id, 10).await;
    assert_eq!(rows[0].result, Some(json!("b")));
    assert_eq!(
        fx.miscounted_jobs().await,
        0,
        "per-job queued counters drifted"
    );
}

pub(crate) async fn heartbeat_extends_leases(fx: &Fixture) {
    let s = &fx.store;
    s.create_job(new_job("t", Priority::Medium, 3))
        .await
        .unwrap();
    s.claim("a", 2, LEASE).await.unwrap();
    s.claim("b", 1, LEASE).await.unwrap();
    fx.clock.advance(Duration::from_secs(20));
    assert_eq!(s.heartbeat("a", LEASE).await.unwrap(), 2);
    assert_eq!(s.heartbeat("nobody", LEASE).await.unwrap(), 0);
    fx.clock.advance(Duration::from_secs(20));
    // b's lease (from t=0) ran out; a's was renewed at t=20.
    assert_eq!(s.rescue_expired().await.unwrap(), 1);
    fx.clock.advance(Duration::from_secs(11));
    assert_eq!(s.rescue_expired().await.unwrap(), 2);
}

pub(crate) async fn release_gives_leases_back(fx: &Fixture) {
    let s = &fx.store;
    s.create_job(new_job("t", Priority::Low, 5)).await.unwrap();
    let a = s.claim("a", 5, LEASE).await.unwrap();
    let depths = s.queue_depths().await.unwrap();
    assert_eq!((depths[2].queued_items, depths[2].in_flight_items), (0, 5));
    assert_eq!(s.release("a").await.unwrap(), 5);
    assert_eq!(s.release("a").await.unwrap(), 0);
    let depths = s.queue_depths().await.unwrap();
    assert_eq!((depths[2].queued_items, depths[2].in_flight_items), (5, 0));
    let b = s.claim("b", 10, LEASE).await.unwrap();
    assert_eq!(ids(&a), ids(&b));
    assert!(
        b.iter().all(|c| c.attempts == 1),
        "a release is not an attempt"
    );
    assert_eq!(
        fx.miscounted_jobs().await,
        0,
        "per-job queued counters drifted"
    );
}

pub(crate) async fn fail_retries_then_dead_letters(fx: &Fixture) {
    let s = &fx.store;
    let job = s
        .create_job(new_job("t", Priority::Medium, 1))
        .await
        .unwrap();
    let item = s.claim("w", 1, LEASE).await.unwrap()[0].item_id;
    let retry = Some(Duration::from_secs(10));
    assert_eq!(
        s.fail("w", item, "timeout", retry, false).await.unwrap(),
        FailOutcome::Retrying
    );
    let rows = all_results(s.as_ref(), "t", &job.id, 10).await;
    assert_eq!(rows[0].status, ItemStatus::Queued);
    assert_eq!(rows[0].error.as_deref(), Some("timeout"));
    assert!(
        s.claim("w", 1, LEASE).await.unwrap().is_empty(),
        "not before retry_after"
    );
    fx.clock.advance(Duration::from_secs(10));
    let again = s.claim("w", 1, LEASE).await.unwrap();
    assert_eq!((again[0].item_id, again[0].attempts), (item, 2));

    assert_eq!(
        s.fail("other", item, "x", None, true).await.unwrap(),
        FailOutcome::NotLeased
    );
    assert_eq!(
        s.fail("w", item, "bad input", None, true).await.unwrap(),
        FailOutcome::DeadLettered
    );
    assert_eq!(
        s.fail("w", item, "x", None, true).await.unwrap(),
        FailOutcome::NotLeased
    );
    let j = s.job("t", &job.id).await.unwrap().unwrap();
    assert_eq!((j.status, j.failed, j.succeeded), (JobStatus::Failed, 1, 0));
    assert!(j.error.is_some());
    assert_eq!(j.completed_at, Some(T0 + 10.0));
    let rows = all_results(s.as_ref(), "t", &job.id, 10).await;
    assert_eq!(rows[0].status, ItemStatus::Failed);
    assert_eq!(rows[0].error.as_deref(), Some("bad input"));
    let dead = s.dead_letters("t", 10, None).await.unwrap();
    assert_eq!(dead.items.len(), 1);
    let d = &dead.items[0];
    assert_eq!(
        (d.item_id, d.attempts, d.error.as_str()),
        (item, 2, "bad input")
    );
    assert_eq!((&d.job_id, d.key.as_str()), (&job.id, "k00000"));
    assert_eq!(d.payload["n"], json!(0));

    // One success and one dead letter: the job is completed, with a failure counted.
    let mixed = s
        .create_job(new_job("t", Priority::Medium, 2))
        .await
        .unwrap();
    let c = ids(&s.claim("w", 2, LEASE).await.unwrap());
    s.complete("w", vec![(c[0], json!("ok"))]).await.unwrap();
    s.fail("w", c[1], "nope", None, true).await.unwrap();
    let j = s.job("t", &mixed.id).await.unwrap().unwrap();
    assert_eq!(
        (j.status, j.succeeded, j.failed),
        (JobStatus::Completed, 1, 1)
    );
    assert_eq!(j.error, None);
    assert_eq!(
        fx.miscounted_jobs().await,
        0,
        "per-job queued counters drifted"
    );
}

pub(crate) async fn cancel_job_stops_queued_items(fx: &Fixture) {
    let s = &fx.store;
    let job = s
        .create_job(new_job("t", Priority::Medium, 10))
        .await
        .unwrap();
    let c = ids(&s.claim("w", 3, LEASE).await.unwrap());
    fx.clock.advance(Duration::from_secs(5));
    let cancelled = s.cancel_job("t", &job.id).await.unwrap().unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert_eq!(cancelled.cancelled, 7);
    assert_eq!(cancelled.completed_at, Some(T0 + 5.0));
    assert!(s.claim("w2", 10, LEASE).await.unwrap().is_empty());

    // In flight: a completed item keeps its result; a failed or released one is cancelled.
    assert_eq!(
        s.complete("w", vec![(c[0], json!("done"))]).await.unwrap(),
        1
    );
    assert_eq!(
        s.fail("w", c[1], "x", Some(Duration::ZERO), false)
            .await
            .unwrap(),
        FailOutcome::Cancelled
    );
    assert_eq!(s.release("w").await.unwrap(), 1);
    assert!(s.claim("w2", 10, LEASE).await.unwrap().is_empty());
    let j = s.job("t", &job.id).await.unwrap().unwrap();
    assert_eq!(j.status, JobStatus::Cancelled);
    assert_eq!((j.succeeded, j.failed, j.cancelled), (1, 0, 9));
    let rows = all_results(s.as_ref(), "t", &job.id, 100).await;
    let succeeded = rows
        .iter()
        .filter(|r| r.status == ItemStatus::Succeeded)
        .count();
    let cancelled = rows
        .iter()
        .filter(|r| r.status == ItemStatus::Cancelled)
        .count();
    assert_eq!((succeeded, cancelled), (1, 9));

    // Cancelling again, or cancelling a finished job, changes nothing.
    assert_eq!(s.cancel_job("t", &job.id).await.unwrap().unwrap(), j);
    let done = s
        .create_job(new_job("t", Priority::Medium, 1))
        .await
        .unwrap();
    let c = ids(&s.claim("w", 1, LEASE).await.unwrap());
    s.complete("w", vec![(c[0], json!(1))]).await.unwrap();
    let after = s.cancel_job("t", &done.id).await.unwrap().unwrap();
    assert_eq!(after.status, JobStatus::Completed);
    assert_eq!(
        fx.miscounted_jobs().await,
        0,
        "per-job queued counters drifted"
    );
}

pub(crate) async fn results_page_through_1000_items(fx: &Fixture) {
    let s = &fx.store;
    let job = s
        .create_job(new_job("t", Priority::Low, 1000))
        .await
        .unwrap();
    let claimed = s.claim("w", 1000, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 1000);
    let results = claimed
        .iter()
        .map(|c| (c.item_id, json!({"label": "POSITIVE", "i": c.key})))
        .collect();
    assert_eq!(s.complete("w", results).await.unwrap(), 1000);
    let mut pages = 0;
    let mut cursor = None;
    let mut rows = Vec::new();
    loop {
        let page = s.results("t", &job.id, cursor, 37).await.unwrap().unwrap();
        pages += 1;
        rows.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 28);
    assert_eq!(rows.len(), 1000);
    for (i, r) in rows.iter().enumerate() {
        let key = format!("k{i:05}");
        assert_eq!(r.key, key);
        assert_eq!(r.result, Some(json!({"label": "POSITIVE", "i": key})));
        assert_eq!(r.status, ItemStatus::Succeeded);
    }
    assert!(rows.windows(2).all(|w| w[0].item_id < w[1].item_id));
}

pub(crate) async fn redrive_requeues_dead_letters(fx: &Fixture) {
    let s = &fx.store;
    let job = s
        .create_job(new_job("t", Priority::Medium, 3))
        .await
        .unwrap();
    let c = ids(&s.claim("w", 3, LEASE).await.unwrap());
    s.complete("w", vec![(c[0], json!("ok"))]).await.unwrap();
    s.fail("w", c[1], "e1", None, true).await.unwrap();
    s.fail("w", c[2], "e2", None, true).await.unwrap();
    assert_eq!(
        s.job("t", &job.id).await.unwrap().unwrap().status,
        JobStatus::Completed
    );

    let dead = s.dead_letters("t", 1, None).await.unwrap();
    assert_eq!(dead.items[0].item_id, c[2], "newest first");
    let rest = s.dead_letters("t", 1, dead.next_cursor).await.unwrap();
    assert_eq!(rest.items[0].item_id, c[1]);
    assert_eq!(rest.next_cursor, None);

    // Not dead (c[0]), unknown (-1): skipped.
    assert_eq!(s.redrive("t", vec![c[0], c[1], c[2], -1]).await.unwrap(), 2);
    assert!(s
        .dead_letters("t", 10, None)
        .await
        .unwrap()
        .items
        .is_empty());
    let j = s.job("t", &job.id).await.unwrap().unwrap();
    assert_eq!(
        (j.status, j.failed, j.completed_at),
        (JobStatus::Processing, 0, None)
    );
    let again = s.claim("w", 10, LEASE).await.unwrap();
    assert_eq!(ids(&again), [c[1], c[2]]);
    assert!(again.iter().all(|c| c.attempts == 1), "attempts reset");
    s.complete(
        "w",
        again.iter().map(|c| (c.item_id, json!("ok"))).collect(),
    )
    .await
    .unwrap();
    let j = s.job("t", &job.id).await.unwrap().unwrap();
    assert_eq!((j.status, j.succeeded), (JobStatus::Completed, 3));
    assert_eq!(
        fx.miscounted_jobs().await,
        0,
        "per-job queued counters drifted"
    );
}

pub(crate) async fn sweep_deletes_finished_jobs_after_ttl(fx: &Fixture) {
    let s = &fx.store;
    let done = s
        .create_job(new_job("t", Priority::Medium, 2))
        .await
        .unwrap();
    let c = ids(&s.claim("w", 2, LEASE).await.unwrap());
    s.complete("w", vec![(c[0], json!(1))]).await.unwrap();
    s.fail("w", c[1], "bad", None, true).await.unwrap();
    let open = s
        .create_job(new_job("t", Priority::Medium, 1))
        .await
        .unwrap();
    let ttl = Duration::from_secs(3600);

    fx.clock.advance(Duration::from_secs(1800));
    assert_eq!(s.sweep_results(ttl).await.unwrap(), 0);
    fx.clock.advance(Duration::from_secs(1801));
    assert_eq!(s.sweep_results(ttl).await.unwrap(), 1);
    assert!(s.job("t", &done.id).await.unwrap().is_none());
    assert!(s.results("t", &done.id, None, 10).await.unwrap().is_none());
    assert!(s
        .dead_letters("t", 10, None)
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(
        s.job("t", &open.id).await.unwrap().is_some(),
        "unfinished jobs stay"
    );
    assert_eq!(fx.raw.scalar("SELECT COUNT(*) FROM results").await, 0);
    assert_eq!(fx.raw.scalar("SELECT COUNT(*) FROM items").await, 1);
}

pub(crate) async fn wait_for_work_wakes_on_create(fx: &Fixture) {
    let s = &fx.store;
    assert!(!s.wait_for_work(Duration::from_millis(100)).await.unwrap());
    let waiter = {
        let s = Arc::clone(s);
        tokio::spawn(async move {
            let start = Instant::now();
            (
                s.wait_for_work(Duration::from_secs(20)).await.unwrap(),
                start.elapsed(),
            )
        })
    };
    tokio::task::yield_now().await;
    s.create_job(new_job("t", Priority::Low, 1)).await.unwrap();
    let (woken, after) = waiter.await.unwrap();
    assert!(woken);
    assert!(after < Duration::from_secs(10), "woken after {after:?}");
}

pub(crate) async fn wait_for_work_wakes_across_connections(fx: &Fixture) {
    let Some(other) = fx.second_store().await else {
        return;
    };
    assert!(!other
        .wait_for_work(Duration::from_millis(100))
        .await
        .unwrap());
    let waiter = tokio::spawn(async move {
        let start = Instant::now();
        (
            other.wait_for_work(Duration::from_secs(20)).await.unwrap(),
            start.elapsed(),
        )
    });
    tokio::task::yield_now().await;
    fx.store
        .create_job(new_job("t", Priority::Low, 1))
        .await
        .unwrap();
    let (woken, after) = waiter.await.unwrap();
    assert!(woken);
    assert!(after < Duration::from_secs(10), "woken after {after:?}");
}

pub(crate) async fn api_keys_are_stored_hashed(fx: &Fixture) {
    use sha2::{Digest, Sha256};
    let s = &fx.store;
    let issued = s.create_key("acme", "ci").await.unwrap();
    let other = s.create_key("globex", "ops").await.unwrap();
    assert_ne!(issued.plaintext, other.plaintext);
    assert_eq!(
        s.tenant_for_key(&issued.plaintext)
            .await
            .unwrap()
            .as_deref(),
        Some("acme")
    );
    assert_eq!(s.tenant_for_key("fry_nope").await.unwrap(), None);

    let rows = fx
        .raw
        .texts("SELECT id, tenant, name, key_hash FROM api_keys", 4)
        .await;
    assert_eq!(rows.len(), 2);
    for row in &rows {
        for col in row {
            assert!(!col.contains(&issued.plaintext) && !col.contains(&other.plaintext));
        }
    }
    let digest: String = Sha256::digest(issued.plaintext.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(
        rows.iter().any(|r| r[3] == digest),
        "the SHA-256 is what is stored"
    );

    assert_eq!(
        s.list_keys(Some("acme")).await.unwrap(),
        vec![issued.key.clone()]
    );
    assert_eq!(s.list_keys(None).await.unwrap().len(), 2);
    assert!(s.revoke_key(&issued.key.id).await.unwrap());
    assert!(!s.revoke_key(&issued.key.id).await.unwrap());
    assert_eq!(s.tenant_for_key(&issued.plaintext).await.unwrap(), None);
    let listed = s.list_keys(Some("acme")).await.unwrap();
    assert_eq!(listed[0].revoked_at, Some(T0));
    assert_eq!(
        s.tenant_for_key(&other.plaintext).await.unwrap().as_deref(),
        Some("globex")
    );
}

pub(crate) async fn queue_depths_count_jobs_and_items(fx: &Fixture) {
    let s = &fx.store;
    s.create_job(new_job("t", Priority::High, 4)).await.unwrap();
    s.create_job(new_job("t", Priority::Medium, 2))
        .await
        .unwrap();
    s.create_job(new_job("u", Priority::Medium, 3))
        .await
        .unwrap();
    s.claim("w", 2, LEASE).await.unwrap();
    let d = s.queue_depths().await.unwrap();
    assert_eq!(
        d.iter().map(|d| d.priority).collect::<Vec<_>>(),
        Priority::DESCENDING
    );
    assert_eq!(
        d.iter().map(|d| d.unfinished_jobs).collect::<Vec<_>>(),
        [1, 2, 0]
    );
    let items: u64 = d.iter().map(|d| d.queued_items + d.in_flight_items).sum();
    assert_eq!(items, 9);
    assert_eq!(d.iter().map(|d| d.in_flight_items).sum::<u64>(), 2);
}

/// Workers completing, retrying and dead-lettering while a job is cancelled, the clock runs
/// past leases and expired leases are rescued: every item ends exactly once and the counts
/// add up.
///
/// Each worker stalls on its first claim and every fourth after it: it moves the clock past
/// the lease, rescues the expired leases (its own and, often, those of workers in the middle
/// of completing theirs), lets the others reclaim them, and only then reports its batch. A
/// late report must change nothing: `complete` records none of it and `fail` finds no lease.
pub(crate) async fn mixed_workload_settles_every_item(fx: &Fixture) {
    let s = &fx.store;
    let mut jobs = Vec::new();
    for p in [
        Priority::High,
        Priority::Medium,
        Priority::Low,
        Priority::Medium,
    ] {
        jobs.push(s.create_job(new_job("t", p, 250)).await.unwrap().id);
    }
    let work = |w: usize| {
        let s = Arc::clone(s);
        let clock = Arc::clone(&fx.clock);
        async move {
            let worker = format!("worker-{w}");
            // (late results offered, late results recorded, late failures that found a lease)
            let mut late = (0usize, 0u64, 0usize);
            let mut rounds = 0usize;
            loop {
                let claimed = s.claim(&worker, 20, LEASE).await.unwrap();
                if claimed.is_empty() {
                    return late;
                }
                rounds += 1;
                let stall = w < 4 && rounds % 4 == 1;
                if stall {
                    clock.advance(LEASE + Duration::from_secs(1));
                    // Rescues every expired lease, this worker's and, often, those of workers
                    // in the middle of completing theirs. A rescue skips rows another
                    // transaction has locked, and on PostgreSQL a concurrent claim may hold a
                    // lock on a leased row it looked at and passed over until it commits: such
                    // a lease is not taken back by the rescue. So the worker then also gives up
                    // what it still holds (`release` waits for those locks), as a worker that
                    // found itself stalled past its leases would.
                    s.rescue_expired().await.unwrap();
                    for _ in 0..3 {
                        tokio::task::yield_now().await;
                    }
                    s.release(&worker).await.unwrap();
                }
                let mut done = Vec::new();
                for c in &claimed {
                    let outcome = if c.item_id % 5 == 0 && c.attempts == 1 {
                        Some(s.fail(&worker, c.item_id, "flaky", None, false).await)
                    } else if c.item_id % 7 == 0 {
                        Some(s.fail(&worker, c.item_id, "poison", None, true).await)
                    } else {
                        done.push((c.item_id, json!(c.key)));
                        None
                    };
                    if stall && outcome.is_some_and(|o| o.unwrap() != FailOutcome::NotLeased) {
                        late.2 += 1;
                    }
                }
                let offered = done.len();
                let recorded = s.complete(&worker, done).await.unwrap();
                if stall {
                    late.0 += offered;
                    late.1 += recorded;
                }
                s.heartbeat(&worker, LEASE).await.unwrap();
            }
        }
    };
    let mut tasks: Vec<_> = (0..4).map(|w| tokio::spawn(work(w))).collect();
    let canceller = {
        let s = Arc::clone(s);
        let clock = Arc::clone(&fx.clock);
        let victim = jobs[3].clone();
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            s.cancel_job("t", &victim).await.unwrap();
            for round in 0..20 {
                if round % 5 == 4 {
                    clock.advance(LEASE / 2);
                }
                s.rescue_expired().await.unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    canceller.await.unwrap();
    let mut late = (0, 0, 0);
    for t in tasks.drain(..) {
        let (offered, recorded, failed) = t.await.unwrap();
        late = (late.0 + offered, late.1 + recorded, late.2 + failed);
    }
    work(99).await;
    assert!(
        late.0 > 0,
        "no worker reported a batch after its leases were rescued"
    );
    assert_eq!(late.1, 0, "results reported after a rescue were recorded");
    assert_eq!(late.2, 0, "failures reported after a rescue found a lease");

    let mut succeeded = 0;
    for id in &jobs {
        let j = s.job("t", id).await.unwrap().unwrap();
        assert_eq!(j.succeeded + j.failed + j.cancelled, j.total, "{j:?}");
        assert!(j.status.is_finished(), "{j:?}");
        let rows = all_results(s.as_ref(), "t", id, 1000).await;
        assert_eq!(rows.len() as u64, j.total);
        let with_result = rows.iter().filter(|r| r.result.is_some()).count() as u64;
        assert_eq!(with_result, j.succeeded);
        for r in &rows {
            assert!(!matches!(
                r.status,
                ItemStatus::Queued | ItemStatus::Processing
            ));
            assert_eq!(
                r.result.is_some(),
                r.status == ItemStatus::Succeeded,
                "{r:?}"
            );
        }
        succeeded += j.succeeded;
    }
    assert_eq!(
        fx.raw.scalar("SELECT COUNT(*) FROM results").await as u64,
        succeeded
    );
    assert_eq!(
        fx.raw
            .scalar("SELECT COUNT(*) FROM (SELECT item_id FROM results GROUP BY item_id) r")
            .await as u64,
        succeeded
    );
    assert_eq!(
        s.job("t", &jobs[3]).await.unwrap().unwrap().status,
        JobStatus::Cancelled
    );
    let depths = s.queue_depths().await.unwrap();
    assert!(depths
        .iter()
        .all(|d| d.queued_items == 0 && d.in_flight_items == 0 && d.unfinished_jobs == 0));
    assert_eq!(
        fx.miscounted_jobs().await,
        0,
        "per-job queued counters drifted"
    );
}
