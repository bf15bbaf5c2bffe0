//! PostgreSQL going away during a run: every connection of the service's stores is
//! terminated (`pg_terminate_backend`, what a `pg_ctlcluster ... restart` does to them) three
//! times while two workers process a job and the API is polled. The workers ride it out
//! (claims, results and dead letters retried with backoff), the API answers again, and every
//! item ends with exactly one result.
//!
//! Only this test's own connections are terminated (they carry its `application_name`): the
//! machine's PostgreSQL serves other tests, so it is not restarted.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_core::{
    Batch, BatchOutcome, BatchSizing, BoxFuture, Concurrency, EngineConfig, FlushPolicy, Handler,
    ItemOutcome,
};
use ferry_server::{Handlers, Worker, WorkerOptions};
use ferry_store::{JobLimits, NewItem, NewJob, PgStore, Priority, Store, StoreOptions};
use serde_json::{json, Value};
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

/// Echoes each item after 10 ms per batch.
struct Paced;

impl Handler<Value, Value> for Paced {
    fn call<'a>(&'a self, batch: &'a Batch<Value>) -> BoxFuture<'a, BatchOutcome<Value>> {
        let out = batch
            .payloads()
            .map(|p| ItemOutcome::Ok(p.clone()))
            .collect();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            BatchOutcome::Done(out)
        })
    }
}

fn pg_url() -> String {
    std::env::var("FERRY_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// `url` with `application_name=name` added.
fn tagged(url: &str, name: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}application_name={name}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_backends_lose_and_duplicate_nothing() {
    let tag = format!("ferry_outage_{}", std::process::id());
    let schema = tag.clone();
    let url = tagged(&pg_url(), &tag);
    let open = || async {
        let store: Arc<dyn Store> = Arc::new(
            PgStore::connect_with(&url, Some(&schema), StoreOptions::new())
                .await
                .expect("PostgreSQL is required (FERRY_TEST_PG_URL)"),
        );
        store
    };
    let api = open().await;
    let mut admin = sqlx::PgConnection::connect(&tagged(&pg_url(), "ferry_outage_admin"))
        .await
        .unwrap();
    let n = 6000;
    let job = api
        .create_job(NewJob {
            tenant: String::new(),
            handler: "paced".into(),
            params: Value::Null,
            priority: Priority::Medium,
            items: (0..n)
                .map(|i| NewItem {
                    key: format!("k{i}"),
                    payload: json!(i),
                })
                .collect(),
            idempotency_key: None,
            limits: JobLimits::default(),
        })
        .await
        .unwrap();

    let mut config = EngineConfig::standard();
    config.flush = FlushPolicy::new().max_items(NonZeroUsize::new(20).unwrap());
    config.sizing = BatchSizing::Fixed;
    config.dispatch.concurrency = Concurrency::Fixed(NonZeroUsize::new(2).unwrap());
    let stop = CancellationToken::new();
    let mut workers = Vec::new();
    for name in ["w1", "w2"] {
        let options = WorkerOptions {
            id: format!("{tag}-{name}"),
            lease: Duration::from_secs(3),
            claim_batch: 200,
            ..WorkerOptions::default()
        };
        let handlers = Handlers::new().register("paced", Paced, config.clone());
        workers.push(tokio::spawn(
            Worker::new(open().await, handlers, options).run(stop.clone()),
        ));
    }

    // Three outages, 400 ms apart, while items flow; the API is read throughout.
    let started = Instant::now();
    let mut terminated = 0;
    let mut api_errors = 0;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let done = api.job("", &job.id).await;
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&tag)
        .fetch_all(&mut admin)
        .await
        .unwrap();
        terminated += killed.iter().filter(|k| **k).count();
        eprintln!(
            "{:>5} ms: {} succeeded; terminated {} backends",
            started.elapsed().as_millis(),
            done.map(|j| j.unwrap().succeeded).unwrap_or_default(),
            killed.len()
        );
        if api.queue_depths().await.is_err() {
            api_errors += 1; // the API's own pool lost its connections too
        }
    }
    assert!(terminated >= 6, "connections were terminated: {terminated}");

    // The API answers again and the job completes.
    let deadline = Instant::now() + Duration::from_secs(60);
    let finished = loop {
        match api.job("", &job.id).await {
            Ok(Some(j)) if j.status.is_finished() => break j,
            Ok(_) | Err(_) => {}
        }
        assert!(Instant::now() < deadline, "the job never finished");
        for w in &workers {
            assert!(!w.is_finished(), "a worker stopped during the outage");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.cancel();
    for w in workers {
        let report = w.await.unwrap().expect("the workers ride out the outage");
        eprintln!("worker: {report:?}");
    }
    eprintln!(
        "{n} items in {:.1} s through {terminated} terminated backends ({api_errors} API reads failed)",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(finished.succeeded, n as u64, "{finished:?}");
    assert_eq!((finished.failed, finished.cancelled), (0, 0));
    // Exactly one result per item, each its own payload.
    let (rows, items, right): (i64, i64, i64) = sqlx::query_as(&format!(
        "SELECT COUNT(*), COUNT(DISTINCT r.item_id), \
         COUNT(*) FILTER (WHERE r.result::text = ('\"' || i.payload::text || '\"') \
                          OR r.result::text = i.payload::text) \
         FROM \"{schema}\".results r JOIN \"{schema}\".items i ON i.id = r.item_id"
    ))
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!((rows, items, right), (n, n, n));
    sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(&mut admin)
        .await
        .unwrap();
}
