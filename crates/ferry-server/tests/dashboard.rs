//! The dashboard page rendered by headless Chromium against a live service: queues, jobs
//! with progress, and dead letters come from the `/v1` API into the page.
//!
//! Needs Chromium: `FERRY_CHROMIUM`, else `chromium` on the PATH (Debian: `apt-get install
//! chromium`; `scripts/test.sh` and `.ci/run` install it). Without it the test fails and
//! says so, rather than skip.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use ferry_core::{Batch, BatchOutcome, BoxFuture, EngineConfig, Handler, ItemOutcome};
use ferry_server::{AppState, Echo, Handlers, Worker, WorkerOptions};
use ferry_store::{NewItem, NewJob, Priority, SqliteStore, Store};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// Fails items whose payload is "poison" for good; the rest succeed.
struct Picky;

impl Handler<Value, Value> for Picky {
    fn call<'a>(&'a self, batch: &'a Batch<Value>) -> BoxFuture<'a, BatchOutcome<Value>> {
        let out = batch
            .payloads()
            .map(|p| {
                if p == "poison" {
                    ItemOutcome::Fatal("poison rejected".into())
                } else {
                    ItemOutcome::Ok(p.clone())
                }
            })
            .collect();
        Box::pin(async move { BatchOutcome::Done(out) })
    }
}

fn chromium() -> String {
    let candidate = std::env::var("FERRY_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let found = Command::new(&candidate)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "the dashboard test needs Chromium: install it (`apt-get install chromium`, as \
         scripts/test.sh does) or set FERRY_CHROMIUM to its path"
    );
    candidate
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_renders_queues_jobs_and_dead_letters() {
    let browser = chromium();
    let dir = std::env::temp_dir().join(format!("ferry-dashboard-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.join("s.db")).await.unwrap());
    let handlers = Handlers::new()
        .register("echo", Echo, EngineConfig::standard())
        .register("picky", Picky, EngineConfig::standard());
    let shutdown = CancellationToken::new();
    tokio::spawn(
        Worker::new(Arc::clone(&store), handlers, WorkerOptions::default()).run(shutdown.clone()),
    );
    let mut jobs = Vec::new();
    for (handler, payloads) in [
        ("echo", vec![json!("a"), json!("b"), json!("c")]),
        ("picky", vec![json!("fine"), json!("poison")]),
    ] {
        let job = store
            .create_job(NewJob {
                tenant: String::new(),
                handler: handler.into(),
                params: Value::Null,
                priority: Priority::High,
                items: payloads
                    .into_iter()
                    .enumerate()
                    .map(|(i, payload)| NewItem {
                        key: format!("k{i}"),
                        payload,
                    })
                    .collect(),
                idempotency_key: None,
            })
            .await
            .unwrap();
        jobs.push(job.id);
    }
    // Wait until both jobs finished (one with a dead letter).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut done = true;
        for id in &jobs {
            done &= store
                .job("", id)
                .await
                .unwrap()
                .unwrap()
                .status
                .is_finished();
        }
        if done {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "jobs did not finish"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut state = AppState::new(Arc::clone(&store));
    state.handlers = Arc::new(["echo".into(), "picky".into()].into_iter().collect());
    let url = format!("{}/dashboard", common::serve(state, &shutdown).await);

    let profile = dir.join("chromium-profile");
    let dom = tokio::task::spawn_blocking(move || {
        Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--virtual-time-budget=5000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(&url)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    shutdown.cancel();
    let html = String::from_utf8_lossy(&dom.stdout);
    assert!(
        html.contains("data-loaded=\"yes\""),
        "the page did not load its data: {}\n{html}",
        String::from_utf8_lossy(&dom.stderr)
    );
    assert!(!html.contains("<p id=\"error\" role=\"alert\">/"), "{html}");
    for id in &jobs {
        assert!(
            html.contains(&format!("data-job=\"{}\"", id.as_str())),
            "job {id} missing"
        );
    }
    assert!(html.contains("status-completed"), "{html}");
    for priority in ["high", "medium", "low"] {
        assert!(html.contains(&format!("<td>{priority}</td>")), "{priority}");
    }
    // The poison item is listed as a dead letter with its error and a re-drive button.
    assert!(html.contains("poison rejected"), "{html}");
    assert!(html.contains(">re-drive</button>"), "{html}");
    assert!(html.contains("items/s"), "throughput chart missing");
    let _ = std::fs::remove_dir_all(&dir);
}
