//! The batch API's Prometheus metrics (`async_batch_*`, the names KubeSentiment's monitoring
//! uses) are on `/metrics` from the start and move as a job goes through. Its own test
//! binary: the Prometheus recorder is global to the process.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::TestApp;
use ferry_core::{Batch, BatchOutcome, BoxFuture, EngineConfig, Handler, ItemOutcome};
use ferry_server::{batch_metrics, Handlers};
use ferry_store::JobId;
use serde_json::{json, Value};

/// Holds every batch until its gate opens, then answers each text with itself.
#[derive(Clone, Default)]
struct Gated(Arc<AtomicBool>);

impl Handler<Value, Value> for Gated {
    fn call<'a>(&'a self, batch: &'a Batch<Value>) -> BoxFuture<'a, BatchOutcome<Value>> {
        let out = batch
            .payloads()
            .map(|p| ItemOutcome::Ok(p.clone()))
            .collect();
        let open = Arc::clone(&self.0);
        Box::pin(async move {
            while !open.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            BatchOutcome::Done(out)
        })
    }
}

/// The value of the sample `series` (name and labels as rendered) in `/metrics`.
async fn sample(app: &TestApp, series: &str) -> Option<f64> {
    let answer = app.get("/metrics", None).await;
    assert_eq!(answer.status, 200);
    let text = String::from_utf8(answer.body.to_vec()).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Polls `series` until `want` holds (10 s at most); returns the value.
async fn until(app: &TestApp, series: &str, want: impl Fn(f64) -> bool) -> f64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = sample(app, series).await.filter(|v| want(*v)) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} never got there: {:?}",
            sample(app, series).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_async_batch_metric_is_present_and_moves() {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    batch_metrics::describe();
    let gate = Arc::new(AtomicBool::new(false));
    let handlers =
        Handlers::new().register("gated", Gated(Arc::clone(&gate)), EngineConfig::standard());
    let app = TestApp::start("metrics", "async-batch", Some(handlers), |s| {
        s.predict_handler = "gated".into();
        s.metrics = Some(handle);
    })
    .await;

    let total = "async_batch_jobs_total{priority=\"medium\"}";
    // Present before anything happened.
    for series in [
        total,
        "async_batch_jobs_active",
        "async_batch_throughput_tps",
        "async_batch_queue_size",
        "async_batch_priority_medium_limit",
    ] {
        assert_eq!(
            sample(&app, series).await,
            Some(if series.ends_with("limit") {
                500.0
            } else {
                0.0
            }),
            "{series}"
        );
    }

    let texts: Vec<String> = (0..200).map(|i| format!("text {i}")).collect();
    let job = app
        .post("/api/v1/batch/predict", None, &json!({ "texts": texts }))
        .await
        .ok();
    let id = JobId::from(job["job_id"].as_str().unwrap().to_owned());
    assert_eq!(sample(&app, total).await, Some(1.0));
    assert_eq!(sample(&app, "async_batch_queue_size").await, Some(1.0));
    // The worker holds the job's texts (the gate is closed).
    until(&app, "async_batch_jobs_active", |v| v == 1.0).await;

    gate.store(true, Ordering::SeqCst);
    common::wait_for_job(app.store.as_ref(), "", &id, common::ended).await;
    let tps = until(&app, "async_batch_throughput_tps", |v| v > 0.0).await;
    let timed = until(
        &app,
        "async_batch_processing_time_seconds_count{priority=\"medium\"}",
        |v| v == 1.0,
    )
    .await;
    until(&app, "async_batch_jobs_active", |v| v == 0.0).await;
    assert_eq!(sample(&app, "async_batch_queue_size").await, Some(0.0));
    let took = sample(
        &app,
        "async_batch_processing_time_seconds_sum{priority=\"medium\"}",
    )
    .await
    .unwrap();
    eprintln!("throughput_tps {tps:.1}, processing time observed {timed} job(s), {took:.3} s");
    assert!(took > 0.0);
}
