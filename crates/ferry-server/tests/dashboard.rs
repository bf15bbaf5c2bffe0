//! The dashboard in headless Chromium against a live service: queues, jobs with progress,
//! and dead letters come from the `/v1` API into the page, and its re-drive button queues a
//! dead letter again (driven over the DevTools protocol).
//!
//! Needs Chromium: `FERRY_CHROMIUM`, else `chromium` on the PATH (Debian: `apt-get install
//! chromium`; `scripts/test.sh` and `.ci/run` install it). Without it the test fails and
//! says so, rather than skip.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferry_core::{Batch, BatchOutcome, BoxFuture, EngineConfig, Handler, ItemOutcome};
use ferry_server::{AppState, Echo, Handlers, Worker, WorkerOptions};
use ferry_store::{NewItem, NewJob, Priority, SqliteStore, Store};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// Fails items whose payload is "poison" for good while its flag is set; the rest succeed.
#[derive(Clone, Default)]
struct Picky(Arc<AtomicBool>);

impl Handler<Value, Value> for Picky {
    fn call<'a>(&'a self, batch: &'a Batch<Value>) -> BoxFuture<'a, BatchOutcome<Value>> {
        let poisoning = self.0.load(Ordering::SeqCst);
        let out = batch
            .payloads()
            .map(|p| {
                if poisoning && p == "poison" {
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
        .register(
            "picky",
            Picky(Arc::new(AtomicBool::new(true))),
            EngineConfig::standard(),
        );
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
    for id in &jobs {
        common::wait_for_job(store.as_ref(), "", id, |j| j.status.is_finished()).await;
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

/// Headless Chromium showing `url`, killed on drop, and the DevTools WebSocket of its page.
struct Browser {
    child: std::process::Child,
    page: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn open_browser(url: &str, profile: &std::path::Path) -> Browser {
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/..."
    let stderr = child.stderr.take().unwrap();
    let port = tokio::task::spawn_blocking(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if let Some(rest) = line.split("ws://127.0.0.1:").nth(1) {
                return rest.split('/').next().unwrap().parse::<u16>().unwrap();
            }
        }
        panic!("Chromium did not print its DevTools address");
    });
    let port = tokio::time::timeout(Duration::from_secs(30), port)
        .await
        .unwrap()
        .unwrap();
    let targets: Vec<Value> = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let page = targets
        .iter()
        .find(|t| t["type"] == "page")
        .and_then(|t| t["webSocketDebuggerUrl"].as_str())
        .unwrap()
        .to_owned();
    Browser { child, page }
}

/// Evaluates `expression` in the page until it returns `want` (30 s at most).
async fn eval_until(page: &str, expression: &str, want: &str) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (mut socket, _) = tokio_tungstenite::connect_async(page).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for id in 1.. {
        let call = json!({
            "id": id,
            "method": "Runtime.evaluate",
            "params": { "expression": expression, "returnByValue": true },
        });
        socket
            .send(Message::Text(call.to_string().into()))
            .await
            .unwrap();
        let value = loop {
            let Message::Text(text) = socket.next().await.unwrap().unwrap() else {
                continue;
            };
            let reply: Value = serde_json::from_str(&text).unwrap();
            if reply["id"] == id {
                break reply["result"]["result"]["value"].clone();
            }
        };
        if value == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the page never answered {want:?} to {expression}: last {value}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redrive_button_queues_a_dead_letter_again() {
    let dir = std::env::temp_dir().join(format!("ferry-dashboard-click-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.join("s.db")).await.unwrap());
    let poisoning = Arc::new(AtomicBool::new(true));
    let handlers = Handlers::new().register(
        "picky",
        Picky(Arc::clone(&poisoning)),
        EngineConfig::standard(),
    );
    let shutdown = CancellationToken::new();
    tokio::spawn(
        Worker::new(Arc::clone(&store), handlers, WorkerOptions::default()).run(shutdown.clone()),
    );
    let job = store
        .create_job(NewJob {
            tenant: String::new(),
            handler: "picky".into(),
            params: Value::Null,
            priority: Priority::Medium,
            items: ["fine", "poison"]
                .iter()
                .enumerate()
                .map(|(i, p)| NewItem {
                    key: format!("k{i}"),
                    payload: json!(p),
                })
                .collect(),
            idempotency_key: None,
        })
        .await
        .unwrap();
    let finished = |want_succeeded: u64| {
        let store = Arc::clone(&store);
        let id = job.id.clone();
        async move {
            common::wait_for_job(store.as_ref(), "", &id, |j| {
                j.status.is_finished() && j.succeeded == want_succeeded
            })
            .await
        }
    };
    assert_eq!(
        finished(1).await.failed,
        1,
        "the poison item is dead-lettered"
    );
    poisoning.store(false, Ordering::SeqCst); // the target is fixed

    let mut state = AppState::new(Arc::clone(&store));
    state.handlers = Arc::new(["picky".into()].into_iter().collect());
    let url = format!("{}/dashboard", common::serve(state, &shutdown).await);
    let browser = open_browser(&url, &dir.join("profile")).await;
    // Click the dead letter's re-drive button once the page lists it.
    eval_until(
        &browser.page,
        "(() => { const b = document.querySelector('#dead tbody button'); \
         if (!b) return 'waiting'; b.click(); return 'clicked'; })()",
        "clicked",
    )
    .await;
    let done = finished(2).await;
    assert_eq!(done.failed, 0, "{done:?}");
    assert!(store
        .dead_letters("", 10, None)
        .await
        .unwrap()
        .items
        .is_empty());
    // The page follows: no dead letters left, the job completed.
    eval_until(
        &browser.page,
        "document.querySelectorAll('#dead tbody tr').length === 0 && \
         document.querySelector('#jobs .status-completed') !== null ? 'shown' : 'not yet'",
        "shown",
    )
    .await;
    drop(browser);
    shutdown.cancel();
    let _ = std::fs::remove_dir_all(&dir);
}
