//! Workers over a real SQLite store: every item ends with exactly one result.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::sync::Arc;
use std::time::Duration;

use ferry_core::{handler_fn, Batch, BatchOutcome, EngineConfig, ItemOutcome};
use ferry_server::{Handlers, Worker, WorkerOptions};
use ferry_store::{JobStatus, NewItem, NewJob, Priority, Store};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

fn doubler(delay: Duration) -> impl ferry_core::Handler<Value, Value> {
    handler_fn(move |batch: &Batch<Value>| {
        let out: Vec<ItemOutcome<Value>> = batch
            .payloads()
            .map(|v| match v.as_i64() {
                Some(13) => ItemOutcome::Fatal("13 is unlucky".into()),
                Some(n) => ItemOutcome::Ok(json!(n * 2)),
                None => ItemOutcome::Fatal("not a number".into()),
            })
            .collect();
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            BatchOutcome::Done(out)
        })
    })
}

fn job(n: i64) -> NewJob {
    NewJob {
        tenant: String::new(),
        handler: "double".into(),
        params: Value::Null,
        priority: Priority::Medium,
        items: (0..n)
            .map(|i| NewItem {
                key: format!("k{i}"),
                payload: json!(i),
            })
            .collect(),
        idempotency_key: None,
        limits: ferry_store::JobLimits::default(),
    }
}

async fn wait_done(store: &Arc<dyn Store>, id: &ferry_store::JobId) -> ferry_store::JobRecord {
    common::wait_for_job(store.as_ref(), "", id, common::ended).await
}

async fn all_results(
    store: &Arc<dyn Store>,
    id: &ferry_store::JobId,
) -> Vec<ferry_store::ResultRow> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.results("", id, cursor, 500).await.unwrap().unwrap();
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_records_every_result_once_and_dead_letters_the_poison() {
    let store = common::sqlite_store("worker", "once").await;
    let created = store.create_job(job(2000)).await.unwrap();
    let handlers = Handlers::new().register(
        "double",
        doubler(Duration::from_millis(1)),
        EngineConfig::standard(),
    );
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(
        Worker::new(Arc::clone(&store), handlers, WorkerOptions::default()).run(shutdown.clone()),
    );
    let done = wait_done(&store, &created.id).await;
    shutdown.cancel();
    let report = worker.await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!((done.succeeded, done.failed), (1999, 1));
    assert_eq!(report.claimed, 2000);
    assert_eq!(report.completed, 1999);
    assert_eq!(report.dead_lettered, 1);
    let rows = all_results(&store, &created.id).await;
    assert_eq!(rows.len(), 2000);
    for r in &rows {
        let n: i64 = r.key[1..].parse().unwrap();
        if n == 13 {
            assert_eq!(r.error.as_deref(), Some("13 is unlucky"));
        } else {
            assert_eq!(r.result, Some(json!(n * 2)), "{r:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_midway_releases_leases_and_another_worker_finishes() {
    let store = common::sqlite_store("worker", "shutdown").await;
    let created = store.create_job(job(3000)).await.unwrap();
    let slow = || {
        Handlers::new().register(
            "double",
            doubler(Duration::from_millis(20)),
            EngineConfig::standard(),
        )
    };
    let first = CancellationToken::new();
    let opts = |id: &str| WorkerOptions {
        id: id.into(),
        shutdown_grace: Duration::from_millis(200),
        ..Default::default()
    };
    let w1 = tokio::spawn(Worker::new(Arc::clone(&store), slow(), opts("w1")).run(first.clone()));
    // Stop the first worker once some items are done.
    common::wait_for_job(store.as_ref(), "", &created.id, |j| j.succeeded >= 300).await;
    first.cancel();
    let r1 = w1.await.unwrap().unwrap();
    let depths = store.queue_depths().await.unwrap();
    assert_eq!(
        depths.iter().map(|d| d.in_flight_items).sum::<u64>(),
        0,
        "every lease was released"
    );
    let second = CancellationToken::new();
    let w2 = tokio::spawn(Worker::new(Arc::clone(&store), slow(), opts("w2")).run(second.clone()));
    let done = wait_done(&store, &created.id).await;
    second.cancel();
    let r2 = w2.await.unwrap().unwrap();
    assert!(r1.completed > 0 && r2.completed > 0, "{r1:?} {r2:?}");
    assert!(
        r1.released > 0,
        "items held at shutdown were released: {r1:?}"
    );
    assert_eq!(r1.completed + r2.completed, 2999);
    assert_eq!((done.succeeded, done.failed), (2999, 1));
    let rows = all_results(&store, &created.id).await;
    assert_eq!(
        rows.iter().filter(|r| r.result.is_some()).count(),
        2999,
        "one result per item"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_registered_with_params_sees_each_jobs_params() {
    let store = common::sqlite_store("worker", "params").await;
    // Multiplies each payload by its job's `factor`.
    let scale = handler_fn(|batch: &Batch<Value>| {
        let out: Vec<ItemOutcome<Value>> = batch
            .payloads()
            .map(
                |v| match (v["params"]["factor"].as_i64(), v["payload"].as_i64()) {
                    (Some(f), Some(n)) => ItemOutcome::Ok(json!(f * n)),
                    _ => ItemOutcome::Fatal(format!("unexpected item {v}")),
                },
            )
            .collect();
        Box::pin(async move { BatchOutcome::Done(out) })
    });
    let handlers = Handlers::new().register_with_params("scale", scale, EngineConfig::standard());
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(
        Worker::new(Arc::clone(&store), handlers, WorkerOptions::default()).run(shutdown.clone()),
    );
    let mut jobs = Vec::new();
    for factor in [2, 10] {
        let mut j = job(50);
        j.handler = "scale".into();
        j.params = json!({ "factor": factor });
        jobs.push((factor, store.create_job(j).await.unwrap().id));
    }
    for (factor, id) in &jobs {
        let done = wait_done(&store, id).await;
        assert_eq!(done.succeeded, 50, "{done:?}");
        for r in all_results(&store, id).await {
            let i: i64 = r.key.trim_start_matches('k').parse().unwrap();
            assert_eq!(r.result, Some(json!(factor * i)));
        }
    }
    shutdown.cancel();
    worker.await.unwrap().unwrap();
}

/// A job's priority is its items' priority in the engine: each item's result is the name of
/// the priority the handler saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_keep_their_jobs_priority_in_the_engine() {
    let store = common::sqlite_store("worker", "priority").await;
    let mut jobs = Vec::new();
    for p in Priority::DESCENDING {
        let created = store
            .create_job(NewJob {
                priority: p,
                ..job(5)
            })
            .await
            .unwrap();
        jobs.push((p, created.id));
    }
    let seen = handler_fn(|batch: &Batch<Value>| {
        let out = batch
            .items()
            .iter()
            .map(|i| ItemOutcome::Ok(json!(i.priority().as_str())))
            .collect();
        Box::pin(async move { BatchOutcome::Done(out) })
    });
    let handlers = Handlers::new().register("double", seen, EngineConfig::standard());
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(
        Worker::new(Arc::clone(&store), handlers, WorkerOptions::default()).run(shutdown.clone()),
    );
    for (p, id) in &jobs {
        assert_eq!(wait_done(&store, id).await.status, JobStatus::Completed);
        let results = all_results(&store, id).await;
        assert_eq!(results.len(), 5);
        for r in results {
            assert_eq!(r.result, Some(json!(p.as_str())), "{p} job");
        }
    }
    shutdown.cancel();
    worker.await.unwrap().unwrap();
}
