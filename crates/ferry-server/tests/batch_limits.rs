//! The KubeSentiment-compatible batch API's per-job limits, end to end through the API, a
//! real worker and the deadline check: `timeout_seconds` fails a job at its deadline and
//! cancels its unfinished texts; `max_batch_size` caps the texts of that job in one call.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestApp;
use ferry_core::{
    Batch, BatchOutcome, BatchSizing, BoxFuture, Concurrency, EngineConfig, FlushPolicy, Handler,
    ItemOutcome,
};
use ferry_server::{expire_jobs, Handlers};
use ferry_store::JobId;
use serde_json::{json, Value};

/// Answers every text with its length after `delay` per batch, noting each batch's size.
#[derive(Clone, Default)]
struct Slow {
    delay: Duration,
    sizes: Arc<Mutex<Vec<usize>>>,
}

impl Handler<Value, Value> for Slow {
    fn call<'a>(&'a self, batch: &'a Batch<Value>) -> BoxFuture<'a, BatchOutcome<Value>> {
        self.sizes.lock().unwrap().push(batch.len());
        let out = batch
            .payloads()
            .map(|p| ItemOutcome::Ok(json!(p.as_str().map_or(0, str::len))))
            .collect();
        let delay = self.delay;
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            BatchOutcome::Done(out)
        })
    }
}

/// Fixed batches of up to `size`, `calls` at a time.
fn fixed(size: usize, calls: usize) -> EngineConfig {
    let mut config = EngineConfig::standard();
    config.flush = FlushPolicy::new().max_items(NonZeroUsize::new(size).unwrap());
    config.sizing = BatchSizing::Fixed;
    config.dispatch.concurrency = Concurrency::Fixed(NonZeroUsize::new(calls).unwrap());
    config
}

fn texts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("text number {i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_seconds_fails_the_job_at_its_deadline_and_cancels_the_rest() {
    // 5 texts per call, one call at a time, 200 ms a call: 100 texts take about 4 s.
    let slow = Slow {
        delay: Duration::from_millis(200),
        ..Slow::default()
    };
    let handlers = Handlers::new().register("slow", slow, fixed(5, 1));
    let app = TestApp::start("limits", "timeout", Some(handlers), |s| {
        s.predict_handler = "slow".into();
    })
    .await;
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(expire_jobs(
        Arc::clone(&app.store),
        Duration::from_millis(250),
        stop.clone(),
    ));
    let submitted = Instant::now();
    let job = app
        .post(
            "/api/v1/batch/predict",
            None,
            &json!({"texts": texts(100), "timeout_seconds": 1}),
        )
        .await
        .ok();
    let id = job["job_id"].as_str().unwrap().to_owned();
    let status = loop {
        let s = app
            .get(&format!("/api/v1/batch/status/{id}"), None)
            .await
            .ok();
        if s["status"] != "pending" && s["status"] != "processing" {
            break s;
        }
        assert!(submitted.elapsed() < Duration::from_secs(10), "{s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let ended_after = submitted.elapsed().as_secs_f64();
    let took = status["completed_at"].as_f64().unwrap() - status["created_at"].as_f64().unwrap();
    eprintln!("timeout_seconds 1: failed after {ended_after:.2} s (completed_at - created_at {took:.2} s): {status}");
    assert_eq!(status["status"], "failed", "{status}");
    assert!((1.0..1.5).contains(&took), "failed {took} s after creation");
    let error = status["error"].as_str().unwrap();
    assert!(error.contains("timeout_seconds (1 s)"), "{error}");

    // The texts in flight at the deadline finish or end cancelled; nothing else is worked
    // on: the job settles with most texts cancelled, and stays failed.
    let job = common::wait_for_job(app.store.as_ref(), "", &JobId::from(id.clone()), |j| {
        j.succeeded + j.failed + j.cancelled == j.total
    })
    .await;
    eprintln!(
        "settled: {} succeeded, {} cancelled of {}",
        job.succeeded, job.cancelled, job.total
    );
    assert_eq!(job.status, ferry_store::JobStatus::Failed);
    assert_eq!(job.failed, 0, "no text was dead-lettered: {job:?}");
    assert!(job.succeeded <= 70 && job.cancelled >= 30, "{job:?}");
    let results = app
        .get(&format!("/api/v1/batch/results/{id}?page_size=1000"), None)
        .await
        .ok();
    let cancelled = results["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["error"].as_str().is_some())
        .count();
    assert_eq!(cancelled as u64, job.cancelled);
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_batch_size_caps_that_jobs_batches() {
    let slow = Slow {
        delay: Duration::from_millis(5),
        ..Slow::default()
    };
    let sizes = Arc::clone(&slow.sizes);
    // Without a cap, batches of up to 50.
    let handlers = Handlers::new().register("slow", slow, fixed(50, 2));
    let app = TestApp::start("limits", "max-batch", Some(handlers), |s| {
        s.predict_handler = "slow".into();
    })
    .await;
    let run = |body: Value| {
        let app = &app;
        async move {
            let job = app.post("/api/v1/batch/predict", None, &body).await.ok();
            let id = JobId::from(job["job_id"].as_str().unwrap().to_owned());
            common::wait_for_job(app.store.as_ref(), "", &id, common::ended).await
        }
    };
    let capped = run(json!({"texts": texts(300), "max_batch_size": 7})).await;
    assert_eq!(capped.succeeded, 300);
    let seen = std::mem::take(&mut *sizes.lock().unwrap());
    eprintln!(
        "max_batch_size 7: {} calls, largest {:?}",
        seen.len(),
        seen.iter().max()
    );
    assert!(seen.iter().all(|n| *n <= 7), "{seen:?}");
    assert!(
        seen.contains(&7),
        "the cap is reached, not undershot: {seen:?}"
    );
    assert_eq!(seen.iter().sum::<usize>(), 300);
    // The same job without the cap: larger batches, so the cap is what held them to 7.
    let free = run(json!({"texts": texts(300)})).await;
    assert_eq!(free.succeeded, 300);
    let seen = sizes.lock().unwrap().clone();
    assert!(seen.iter().any(|n| *n > 7), "{seen:?}");
}
