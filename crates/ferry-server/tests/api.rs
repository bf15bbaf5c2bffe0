//! The batch API's quick start (KubeSentiment's) against the API over real HTTP on loopback, with a worker running
//! the sentiment model, and bad input answered as problem+json.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::sync::Arc;

use ferry_core::EngineConfig;
use ferry_models::sentiment::SentimentJsonHandler;
use ferry_server::{AppState, Handlers, Worker, WorkerOptions};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// One Prometheus recorder per test binary (it is process-global).
fn recorder() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .unwrap()
        })
        .clone()
}

struct Service {
    base: String,
    store: Arc<dyn ferry_store::Store>,
    shutdown: CancellationToken,
    client: reqwest::Client,
}

async fn start(name: &str) -> Service {
    let store = common::sqlite_store("api", name).await;
    let shutdown = CancellationToken::new();
    // Installed before any engine starts, so their metric handles register with it.
    let metrics = recorder();
    let handlers = Handlers::new().register(
        "sentiment",
        SentimentJsonHandler::default(),
        EngineConfig::standard(),
    );
    tokio::spawn(
        Worker::new(Arc::clone(&store), handlers, WorkerOptions::default()).run(shutdown.clone()),
    );
    let mut state = AppState::new(Arc::clone(&store));
    state.metrics = Some(metrics);
    let base = common::serve(state, &shutdown).await;
    Service {
        base,
        store,
        shutdown,
        client: reqwest::Client::new(),
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_quick_start_submit_status_results() {
    let s = start("quick").await;
    // 1. Submit (KubeSentiment's curl body, verbatim).
    let submitted: Value = s
        .client
        .post(format!("{}/api/v1/batch/predict", s.base))
        .json(&json!({
            "texts": ["I love this product! It is amazing.", "This is terrible and disappointing.", "It is okay, nothing special."],
            "priority": "medium",
            "timeout_seconds": 300
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(submitted["status"], "pending");
    assert_eq!(submitted["total_texts"], 3);
    assert_eq!(submitted["priority"], "medium");
    assert_eq!(submitted["progress_percentage"], 0.0);
    assert!(submitted["created_at"].is_f64() && submitted["estimated_completion_seconds"].is_u64());
    let id = submitted["job_id"].as_str().unwrap().to_owned();
    // 2. Wait for the worker, then read the status.
    common::wait_for_job(s.store.as_ref(), "", &id.as_str().into(), common::ended).await;
    let status: Value = s
        .client
        .get(format!("{}/api/v1/batch/status/{id}", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["status"], "completed", "{status}");
    for (field, check) in [
        ("processed_texts", status["processed_texts"] == 3),
        ("failed_texts", status["failed_texts"] == 0),
        (
            "progress_percentage",
            status["progress_percentage"] == 100.0,
        ),
        ("started_at", status["started_at"].is_f64()),
        ("completed_at", status["completed_at"].is_f64()),
        ("error", status["error"].is_null()),
    ] {
        assert!(check, "{field}: {status}");
    }
    // 3. Results, in the batch API's shape.
    let results: Value = s
        .client
        .get(format!("{}/api/v1/batch/results/{id}", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = results["results"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["label"], "POSITIVE");
    assert_eq!(rows[1]["label"], "NEGATIVE");
    for r in rows {
        for field in [
            "label",
            "score",
            "inference_time_ms",
            "model_name",
            "text_length",
            "cached",
        ] {
            assert!(r.get(field).is_some(), "{field} missing in {r}");
        }
    }
    assert_eq!(results["total_results"], 3);
    assert_eq!(results["page"], 1);
    assert_eq!(results["page_size"], 100);
    assert_eq!(results["has_more"], false);
    assert_eq!(results["summary"]["successful_predictions"], 3);
    assert_eq!(results["summary"]["success_rate"], 1.0);
    assert_eq!(results["summary"]["sentiment_distribution"]["POSITIVE"], 1);
    // The engine's metrics, through the `metrics` facade, at /metrics.
    let text = s
        .client
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("ferry_items_total")
                && l.contains("engine=\"sentiment\"")
                && l.contains("outcome=\"succeeded\"")
        })
        .unwrap_or_else(|| panic!("no succeeded counter in:\n{text}"));
    let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 3.0, "{line}");
    assert!(text.contains("ferry_batch_latency_seconds"), "{text}");
}

async fn problem(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], status);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_problem_json() {
    let s = start("bad").await;
    let url = format!("{}/api/v1/batch/predict", s.base);
    let malformed = s
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"texts\": [")
        .send()
        .await
        .unwrap();
    problem(malformed, 400).await;
    let empty = problem(
        s.client
            .post(&url)
            .json(&json!({"texts": []}))
            .send()
            .await
            .unwrap(),
        422,
    )
    .await;
    assert!(empty["detail"].as_str().unwrap().contains("empty"));
    let many: Vec<String> = (0..1001).map(|i| format!("text {i}")).collect();
    let too_many = problem(
        s.client
            .post(&url)
            .json(&json!({ "texts": many }))
            .send()
            .await
            .unwrap(),
        422,
    )
    .await;
    assert!(
        too_many["detail"].as_str().unwrap().contains("1001"),
        "{too_many}"
    );
    problem(
        s.client
            .post(&url)
            .json(&json!({"texts": "not a list"}))
            .send()
            .await
            .unwrap(),
        422,
    )
    .await;
    problem(
        s.client
            .post(&url)
            .json(&json!({"texts": ["a"], "priority": "urgent"}))
            .send()
            .await
            .unwrap(),
        422,
    )
    .await;
    let unknown = s
        .client
        .get(format!("{}/api/v1/batch/status/no-such-job", s.base))
        .send()
        .await
        .unwrap();
    problem(unknown, 404).await;
    let health: Value = s
        .client
        .get(format!("{}/healthz", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
}
