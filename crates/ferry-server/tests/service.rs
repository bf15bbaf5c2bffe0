//! The service as `ferry serve` runs it, end to end on `127.0.0.1:0`: the API, the sweeper,
//! the built-in handlers and the in-process worker run a job, and the service stops when its
//! shutdown future resolves. (Its own test binary: the service installs the process-global
//! Prometheus recorder.)
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::sync::Arc;
use std::time::Duration;

use ferry_server::{ServeOptions, Service};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_runs_a_job_and_shuts_down_when_told() {
    let store = common::sqlite_store("service", "run").await;
    let service = Service::with_store(Arc::clone(&store), ServeOptions::new("test store"))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    let running = tokio::spawn(service.run(listener, async move {
        shutdown.cancelled().await;
    }));
    let client = reqwest::Client::new();
    let job: Value = client
        .post(format!("{base}/v1/jobs"))
        .json(&json!({"handler": "echo", "items": [1, 2, 3]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    common::wait_for_job(store.as_ref(), "", &id.as_str().into(), common::ended).await;
    let done: Value = client
        .get(format!("{base}/v1/jobs/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["status"], "completed");
    assert_eq!(done["counts"]["succeeded"], 3);
    let handlers: Value = client
        .get(format!("{base}/v1/handlers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(handlers["handlers"], json!(["echo", "sentiment", "sleep"]));
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the service stops when told")
        .unwrap()
        .unwrap();
}
