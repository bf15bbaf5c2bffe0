//! The dashboard in headless Chromium against a live service (driven over the DevTools
//! protocol, `common/browser.rs`): every job row shows the numbers `/v1/jobs` returns for a
//! finished, a running and a failed job; the throughput chart moves while items flow; the
//! queues and dead letters are listed; the re-drive button queues a dead letter again.
//! Screenshots of each state are written to `target/tmp/dashboard-*.png` (to be looked at).
//!
//! Needs Chromium: `FERRY_CHROMIUM`, else `chromium` on the PATH (Debian: `apt-get install
//! chromium`; `scripts/test.sh` and `.ci/run` install it). Without it the test fails and
//! says so, rather than skip.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use browser::Browser;
use ferry_core::{
    Batch, BatchOutcome, BatchSizing, BoxFuture, Concurrency, EngineConfig, FlushPolicy, Handler,
    ItemOutcome,
};
use ferry_server::{AppState, Echo, Handlers, Worker, WorkerOptions};
use ferry_store::{JobId, NewItem, NewJob, Priority, SqliteStore, Store};
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

/// Succeeds each batch after 50 ms while its gate is open; while it is closed, holds every
/// batch it is given (the job stops moving part-way: a running job whose numbers stand still).
#[derive(Clone)]
struct Paced(Arc<AtomicBool>);

impl Handler<Value, Value> for Paced {
    fn call<'a>(&'a self, batch: &'a Batch<Value>) -> BoxFuture<'a, BatchOutcome<Value>> {
        let open = Arc::clone(&self.0);
        let out = batch
            .payloads()
            .map(|p| ItemOutcome::Ok(p.clone()))
            .collect();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            while !open.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            BatchOutcome::Done(out)
        })
    }
}

/// Batches of 5 items, 2 calls at a time: with [`Paced`], a steady trickle (at most 200 items/s).
fn paced_config() -> EngineConfig {
    let mut config = EngineConfig::standard();
    config.flush = FlushPolicy::new().max_items(NonZeroUsize::new(5).unwrap());
    config.sizing = BatchSizing::Fixed;
    config.dispatch.concurrency = Concurrency::Fixed(NonZeroUsize::new(2).unwrap());
    config
}

async fn submit(store: &dyn Store, handler: &str, payloads: Vec<Value>) -> JobId {
    store
        .create_job(NewJob {
            tenant: String::new(),
            handler: handler.into(),
            params: Value::Null,
            priority: Priority::Medium,
            items: payloads
                .into_iter()
                .enumerate()
                .map(|(i, payload)| NewItem {
                    key: format!("k{i}"),
                    payload,
                })
                .collect(),
            idempotency_key: None,
            limits: ferry_store::JobLimits::default(),
        })
        .await
        .unwrap()
        .id
}

/// Where the screenshots go: `target/tmp/dashboard-<state>.png`.
fn screenshot_path(state: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("dashboard-{state}.png"))
}

/// What the page's job rows show, by job id: the cells as text, the bar's width in percent.
const ROWS: &str = "JSON.stringify(Object.fromEntries([...document.querySelectorAll('#jobs tbody tr')]\
    .map(tr => [tr.dataset.job, { status: tr.children[3].textContent, \
      pct: tr.querySelector('.pct').textContent, \
      bar: (parseFloat(tr.querySelector('.bar span').style.width) || 0).toFixed(2), \
      done: tr.querySelector('td.done').textContent, failed: tr.querySelector('td.failed').textContent, \
      cancelled: tr.querySelector('td.cancelled').textContent, total: tr.querySelector('td.total').textContent }])))";

/// The same, computed from a `/v1/jobs` answer.
fn expected_rows(api: &Value) -> Value {
    let rows = api["items"].as_array().unwrap().iter().map(|j| {
        let c = &j["counts"];
        let total = c["total"].as_u64().unwrap();
        let bar = if total == 0 {
            0.0
        } else {
            100.0 * c["succeeded"].as_u64().unwrap() as f64 / total as f64
        };
        (
            j["id"].as_str().unwrap().to_owned(),
            json!({
                "status": j["status"],
                "pct": format!("{:.1} %", j["progress"].as_f64().unwrap()),
                "bar": format!("{bar:.2}"),
                "done": c["succeeded"].to_string(), "failed": c["failed"].to_string(),
                "cancelled": c["cancelled"].to_string(), "total": c["total"].to_string(),
            }),
        )
    });
    Value::Object(rows.collect())
}

/// Waits until the page's rows equal what `/v1/jobs` answers (the page refreshes every
/// second, so it may be a refresh behind); fails with both after 30 s.
async fn rows_match_api(browser: &mut Browser, base: &str) -> Value {
    let api: Value = reqwest::get(format!("{base}/v1/jobs?limit=50"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let want = expected_rows(&api);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let shown: Value = browser
            .eval(ROWS)
            .await
            .as_str()
            .map(|s| serde_json::from_str(s).unwrap())
            .unwrap_or(Value::Null);
        if shown == want {
            return api;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the page's job rows differ from /v1/jobs:\n shown {shown}\n api   {want}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn job<'a>(api: &'a Value, id: &JobId) -> &'a Value {
    api["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == id.as_str())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_rows_show_what_the_api_returns_and_the_chart_moves() {
    let dir = std::env::temp_dir().join(format!("ferry-dashboard-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.join("s.db")).await.unwrap());
    let gate = Arc::new(AtomicBool::new(true));
    let handlers = Handlers::new()
        .register("echo", Echo, EngineConfig::standard())
        .register(
            "picky",
            Picky(Arc::new(AtomicBool::new(true))),
            EngineConfig::standard(),
        )
        .register("paced", Paced(Arc::clone(&gate)), paced_config());
    let shutdown = CancellationToken::new();
    tokio::spawn(
        Worker::new(Arc::clone(&store), handlers, WorkerOptions::default()).run(shutdown.clone()),
    );
    // A finished 1,000-item job and a failed one (every item dead-lettered).
    let finished = submit(
        store.as_ref(),
        "echo",
        (0..1000).map(|i| json!(i)).collect(),
    )
    .await;
    let failed = submit(store.as_ref(), "picky", vec![json!("poison"); 3]).await;
    for id in [&finished, &failed] {
        common::wait_for_job(store.as_ref(), "", id, |j| j.status.is_finished()).await;
    }
    let mut state = AppState::new(Arc::clone(&store));
    state.handlers = Arc::new(["echo", "picky", "paced"].map(String::from).into());
    let base = common::serve(state, &shutdown).await;
    let mut browser = Browser::open(&format!("{base}/dashboard"), &dir.join("profile")).await;

    let api = rows_match_api(&mut browser, &base).await;
    assert_eq!(job(&api, &finished)["counts"]["succeeded"], 1000);
    assert_eq!(job(&api, &finished)["status"], "completed");
    assert_eq!(job(&api, &failed)["status"], "failed");
    assert_eq!(job(&api, &failed)["counts"]["failed"], 3);
    browser
        .screenshot(&screenshot_path("finished-and-failed"))
        .await;

    // A running job: while its items flow, the chart shows non-zero bars (three refreshes)
    // and a non-zero rate.
    let running = submit(
        store.as_ref(),
        "paced",
        (0..4000).map(|i| json!(i)).collect(),
    )
    .await;
    let rate = browser
        .eval_until(
            "(() => { const m = document.getElementById('rate').textContent.match(/^(\\d+) items/); \
              const bars = [...document.querySelectorAll('#chart rect.rate')] \
                .filter(r => parseFloat(r.getAttribute('height')) > 0).length; \
              return m && bars >= 3 ? parseInt(m[1]) : 0; })()",
            |v| v.as_u64().unwrap_or(0) > 0,
        )
        .await;
    browser
        .screenshot(&screenshot_path("running-flowing"))
        .await;
    assert!(rate.as_u64().unwrap() > 0, "{rate}");

    // Hold the running job part-way: its numbers stand still, and the page shows them.
    gate.store(false, Ordering::SeqCst);
    let mut last = store.job("", &running).await.unwrap().unwrap();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = store.job("", &running).await.unwrap().unwrap();
        if now.succeeded == last.succeeded {
            break;
        }
        last = now;
    }
    let api = rows_match_api(&mut browser, &base).await;
    let shown = job(&api, &running);
    let progress = shown["progress"].as_f64().unwrap();
    assert!(progress > 0.0 && progress < 100.0, "{shown}");
    assert_eq!(shown["status"], "processing");
    assert_eq!(job(&api, &finished)["counts"]["total"], 1000);
    browser.screenshot(&screenshot_path("running-held")).await;
    eprintln!(
        "rate shown while flowing: {rate} items/s; running job held at {progress} %; \
         screenshots in {}",
        screenshot_path("*").display()
    );

    // The queues and the failed job's dead letters are listed too.
    let page = browser.eval("document.body.innerHTML").await;
    let html = page.as_str().unwrap();
    for priority in ["high", "medium", "low"] {
        assert!(html.contains(&format!("<td>{priority}</td>")), "{priority}");
    }
    assert!(html.contains("poison rejected"), "{html}");
    assert!(html.contains(">re-drive</button>"), "{html}");
    assert!(!html.contains("<p id=\"error\" role=\"alert\">/"), "{html}");
    drop(browser);
    shutdown.cancel();
    let _ = std::fs::remove_dir_all(&dir);
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
            limits: ferry_store::JobLimits::default(),
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
    let mut browser = Browser::open(&url, &dir.join("profile")).await;
    // Click the dead letter's re-drive button once the page lists it.
    browser
        .eval_until(
            "(() => { const b = document.querySelector('#dead tbody button'); \
             if (!b) return 'waiting'; b.click(); return 'clicked'; })()",
            |v| v == "clicked",
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
    browser
        .eval_until(
            "document.querySelectorAll('#dead tbody tr').length === 0 && \
             document.querySelector('#jobs .status-completed') !== null ? 'shown' : 'not yet'",
            |v| v == "shown",
        )
        .await;
    drop(browser);
    shutdown.cancel();
    let _ = std::fs::remove_dir_all(&dir);
}
