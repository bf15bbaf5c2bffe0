//! The `/v1` REST API with a real SQLite store and (where the test needs one) a worker
//! running `echo` and `poison` (echo, but items whose payload has `"poison": true` fail for
//! good while poisoning is on): submit → status → results with cursor paging, idempotency,
//! cancel, the SSE feed and the WebSocket, queues, dead letters and redrive, API keys and
//! tenants, and bad input answered as problem+json. Driven in-process (`oneshot`), except
//! where a client reads a stream or a socket as it comes, and one flow over loopback.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::Method;
use common::TestApp;
use ferry_core::{handler_fn, Batch, BatchOutcome, EngineConfig, ItemOutcome};
use ferry_server::{AppState, Echo, Handlers, Worker, WorkerOptions};
use ferry_store::{JobId, Store};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

struct Api {
    base: String,
    store: Arc<dyn Store>,
    client: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// `echo`, except that while `poisoning` is on an item whose payload has `"poison": true`
/// fails for good.
fn poison_handler(poisoning: Arc<AtomicBool>) -> impl ferry_core::Handler<Value, Value> {
    handler_fn(move |batch: &Batch<Value>| {
        let on = poisoning.load(Ordering::SeqCst);
        let outcomes: Vec<ItemOutcome<Value>> = batch
            .payloads()
            .map(|p| {
                if on && p.get("poison") == Some(&Value::Bool(true)) {
                    ItemOutcome::Fatal("poisoned payload".into())
                } else {
                    ItemOutcome::Ok(p.clone())
                }
            })
            .collect();
        Box::pin(async move { BatchOutcome::Done(outcomes) })
    })
}

/// The API served on loopback over a fresh store, adjusted by `tune`, with a worker when
/// `worker` is set: for the tests that read a stream or a socket as a client does.
async fn start(name: &str, worker: bool, tune: impl FnOnce(&mut AppState)) -> Api {
    let store = common::sqlite_store("v1", name).await;
    let shutdown = CancellationToken::new();
    let handlers = handlers(&Arc::new(AtomicBool::new(true)));
    let mut state = AppState::new(Arc::clone(&store));
    state.handlers = Arc::new(handlers.names());
    if worker {
        tokio::spawn(
            Worker::new(Arc::clone(&store), handlers, WorkerOptions::default())
                .run(shutdown.clone()),
        );
    }
    tune(&mut state);
    let base = common::serve(state, &shutdown).await;
    Api {
        base,
        store,
        client: reqwest::Client::new(),
        shutdown,
    }
}

/// `echo` and `poison` (which fails poisoned items while `poisoning` is on).
fn handlers(poisoning: &Arc<AtomicBool>) -> Handlers {
    Handlers::new()
        .register("echo", Echo, EngineConfig::standard())
        .register(
            "poison",
            poison_handler(Arc::clone(poisoning)),
            EngineConfig::standard(),
        )
}

/// The app in-process (`oneshot`) over a fresh store, accepting `echo` and `poison`, with
/// a worker running them when `worker` is set; adjusted by `tune`. Returns the poisoning
/// switch too.
async fn app(
    name: &str,
    worker: bool,
    tune: impl FnOnce(&mut AppState),
) -> (TestApp, Arc<AtomicBool>) {
    let poisoning = Arc::new(AtomicBool::new(true));
    let handlers = handlers(&poisoning);
    let names = Arc::new(handlers.names());
    let api = TestApp::start("v1", name, worker.then_some(handlers), |s| {
        s.handlers = names;
        tune(s);
    })
    .await;
    (api, poisoning)
}

/// `POST /v1/jobs` with `body` as it is, typed as JSON.
fn raw(body: &str) -> axum::http::Request<axum::body::Body> {
    common::raw_post("/v1/jobs", Some("application/json"), body)
}

/// Submits `body` to `POST /v1/jobs` in-process, asserting 201, and returns the job.
async fn submit(api: &TestApp, body: Value) -> Value {
    let answer = api.post("/v1/jobs", None, &body).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    answer.json()
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(self.url(path))
    }

    fn post(&self, path: &str, body: &Value) -> RequestBuilder {
        self.client.post(self.url(path)).json(body)
    }

    /// Submits `body` to `POST /v1/jobs`, asserting 201, and returns the job.
    async fn submit(&self, body: Value) -> Value {
        let r = send(self.post("/v1/jobs", &body)).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json().await.unwrap()
    }

    /// Waits until the job `id` (the open tenant's) ended, then returns it as the API shows it.
    async fn wait_ended(&self, id: &str) -> Value {
        common::wait_for_job(self.store.as_ref(), "", &id.into(), common::ended).await;
        ok(send(self.get(&format!("/v1/jobs/{id}"))).await).await
    }
}

async fn send(r: RequestBuilder) -> Response {
    r.send().await.unwrap()
}

/// Asserts a 200 JSON answer and returns its body.
async fn ok(r: Response) -> Value {
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.url().path());
    assert_eq!(r.headers()["content-type"], "application/json");
    r.json().await.unwrap()
}

/// Reads a whole SSE stream (until the server ends it; 30 s at most) into `(event, data)`.
async fn read_events(mut r: Response) -> Vec<(String, Value)> {
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut text = String::new();
    let read = async {
        while let Some(chunk) = r.chunk().await.unwrap() {
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the stream did not end");
    parse_events(&text)
}

fn parse_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut event = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            Some((event?, serde_json::from_str(&data).unwrap()))
        })
        .collect()
}

/// An SSE stream read event by event.
struct Feed {
    response: Response,
    buffer: String,
}

impl Feed {
    fn open(response: Response) -> Self {
        assert_eq!(response.status(), StatusCode::OK);
        Feed {
            response,
            buffer: String::new(),
        }
    }

    /// The next event; `None` when the server ended the stream. 30 s at most.
    async fn next(&mut self) -> Option<(String, Value)> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_events(&block).pop() {
                    return Some(event);
                }
                continue; // A keep-alive comment.
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.response.chunk())
                .await
                .expect("no event within 30 s")
                .unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_status_and_results_with_cursor_paging() {
    let api = start("results", true, |_| {}).await;
    let handlers = ok(send(api.get("/v1/handlers")).await).await;
    assert_eq!(handlers["handlers"], json!(["echo", "poison"]));

    // 250 items in every form: bare payloads, keyed and unkeyed wrapped ones.
    let items: Vec<Value> = (0..250)
        .map(|i| match i % 3 {
            0 => json!({ "n": i }),
            1 => json!({ "key": format!("k{i}"), "payload": i }),
            _ => json!({ "payload": [i] }),
        })
        .collect();
    let r = send(api.post(
        "/v1/jobs",
        &json!({ "handler": "echo", "items": items, "params": {"x": 1}, "priority": "high" }),
    ))
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let job: Value = r.json().await.unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/v1/jobs/{id}"));
    assert_eq!(job["handler"], "echo");
    assert_eq!(job["priority"], "high");
    assert_eq!(job["params"], json!({"x": 1}));
    assert_eq!(job["counts"]["total"], 250);
    assert!(job["created_at"].is_f64());

    let done = api.wait_ended(&id).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(
        done["counts"],
        json!({"total": 250, "succeeded": 250, "failed": 0, "cancelled": 0})
    );
    assert_eq!(done["progress"], 100.0);
    assert!(done["started_at"].is_f64() && done["completed_at"].is_f64());

    // Three pages of 100, 100 and 50, in item order, each result the item's payload.
    let mut rows = Vec::new();
    let mut cursor: Option<i64> = None;
    let mut pages = 0;
    loop {
        let query = match cursor {
            Some(c) => format!("?limit=100&cursor={c}"),
            None => "?limit=100".to_owned(),
        };
        let page = ok(send(api.get(&format!("/v1/jobs/{id}/results{query}"))).await).await;
        assert_eq!(page["job_id"], id.as_str());
        pages += 1;
        rows.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_i64() {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(rows.len(), 250);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["status"], "succeeded", "{row}");
        assert!(row["error"].is_null());
        let (key, payload) = match i % 3 {
            0 => (i.to_string(), json!({ "n": i })),
            1 => (format!("k{i}"), json!(i)),
            _ => (i.to_string(), json!([i])),
        };
        assert_eq!((&row["key"], &row["result"]), (&json!(key), &payload));
    }
    let ids: Vec<i64> = rows
        .iter()
        .map(|r| r["item_id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "item order");

    // The default page is 100 rows; the job appears in the listing.
    let first = ok(send(api.get(&format!("/v1/jobs/{id}/results"))).await).await;
    assert_eq!(first["items"].as_array().unwrap().len(), 100);
    let list = ok(send(api.get("/v1/jobs?limit=10")).await).await;
    assert_eq!(list["items"][0]["id"], id.as_str());
    assert!(list["next_cursor"].is_null());
}

#[tokio::test]
async fn idempotency_key_returns_the_same_job() {
    let (api, _) = app("idempotency", false, |_| {}).await;
    let body = json!({ "handler": "echo", "items": [1, 2, 3] });
    let keyed = |key: &str| {
        let request = common::call(Method::POST, "/v1/jobs", None, Some(&body));
        common::with_header(request, "idempotency-key", key)
    };
    let first = api.send(keyed("order-17")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = api.send(keyed("order-17")).await;
    assert!(again.headers.get("location").is_none());
    assert_eq!(again.ok()["id"], first.json()["id"]);
    // Another key, or none, is another job.
    let other = api.send(keyed("order-18")).await;
    assert_eq!(other.status, StatusCode::CREATED);
    assert_ne!(other.json()["id"], first.json()["id"]);
    let list = api.get("/v1/jobs", None).await.ok();
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    // A malformed key is 400.
    api.send(keyed(&"k".repeat(256)))
        .await
        .problem(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn cancel_ends_queued_items() {
    let (api, _) = app("cancel", false, |_| {}).await;
    let job = submit(&api, json!({ "handler": "echo", "items": ["a", "b"] })).await;
    let id = job["id"].as_str().unwrap();
    assert_eq!(job["status"], "pending");
    let cancelled = api.delete(&format!("/v1/jobs/{id}"), None).await.ok();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["counts"]["cancelled"], 2);
    assert!(cancelled["completed_at"].is_f64());
    let job = api.get(&format!("/v1/jobs/{id}"), None).await.ok();
    assert_eq!(job["status"], "cancelled");
    let rows = api.get(&format!("/v1/jobs/{id}/results"), None).await.ok();
    assert!(rows["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["status"] == "cancelled"));
    // Cancelling again changes nothing.
    let again = api.delete(&format!("/v1/jobs/{id}"), None).await.ok();
    assert_eq!(again, cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_the_job_until_it_ends() {
    // No worker: the test moves the job on itself.
    let api = start("events", false, |_| {}).await;
    let job = api
        .submit(json!({ "handler": "echo", "items": [1, 2, 3] }))
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    let mut feed = Feed::open(send(api.get(&format!("/v1/jobs/{id}/events"))).await);
    // Lock-step: the job changes only after the feed reported its previous state, so every
    // state must come as its own event.
    let lease = Duration::from_secs(30);
    let mut events = Vec::new();
    let mut claimed = Vec::new();
    loop {
        let (name, job) = feed.next().await.expect("the feed ended before `done`");
        events.push((name.clone(), job.clone()));
        if name == "done" {
            break;
        }
        assert_eq!(name, "progress");
        if job["status"] == "pending" {
            claimed = api.store.claim("w", 10, lease).await.unwrap();
            assert_eq!(claimed.len(), 3);
        } else {
            let item = claimed.remove(0);
            let recorded = api.store.complete("w", vec![(item.item_id, json!("ok"))]);
            assert_eq!(recorded.await.unwrap(), 1);
        }
    }
    assert!(feed.next().await.is_none(), "the stream ends after `done`");
    let statuses: Vec<&str> = events
        .iter()
        .map(|(_, j)| j["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "pending",
            "processing",
            "processing",
            "processing",
            "completed"
        ]
    );
    let last = &events.last().unwrap().1;
    assert_eq!(last["counts"]["succeeded"], 3);
    assert_eq!(last["progress"], 100.0);
    // Progress went up one item at a time, and no event repeats the previous one.
    let succeeded: Vec<u64> = events
        .iter()
        .map(|(_, j)| j["counts"]["succeeded"].as_u64().unwrap())
        .collect();
    assert_eq!(succeeded, [0, 0, 1, 2, 3]);
    assert!(events.windows(2).all(|w| w[0].1 != w[1].1));

    // A finished job: one `done` event and the end.
    let again = read_events(send(api.get(&format!("/v1/jobs/{id}/events"))).await).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].0, "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_with_a_worker_end_with_the_completed_job() {
    let api = start("events-worker", true, |_| {}).await;
    let items: Vec<Value> = (0..200).map(|i| json!(i)).collect();
    let job = api
        .submit(json!({ "handler": "echo", "items": items }))
        .await;
    let id = job["id"].as_str().unwrap();
    let events = read_events(send(api.get(&format!("/v1/jobs/{id}/events"))).await).await;
    let (name, last) = events.last().unwrap();
    assert_eq!(name, "done");
    assert_eq!(last["status"], "completed");
    assert_eq!(last["counts"]["succeeded"], 200);
}

#[tokio::test]
async fn the_websocket_twin_sends_the_job_until_it_ends() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    let api = start("ws", true, |_| {}).await;
    let items: Vec<Value> = (0..300).map(|i| json!(i)).collect();
    let job = api
        .submit(json!({ "handler": "echo", "items": items }))
        .await;
    let id = job["id"].as_str().unwrap();
    let url = format!("{}/v1/jobs/{id}/ws", api.base.replacen("http", "ws", 1));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut seen = Vec::new();
    let mut close = None;
    while let Some(message) = tokio::time::timeout(Duration::from_secs(30), socket.next())
        .await
        .unwrap()
    {
        match message.unwrap() {
            Message::Text(text) => seen.push(serde_json::from_str::<Value>(&text).unwrap()),
            Message::Close(frame) => {
                close = frame;
                break;
            }
            _ => {}
        }
    }
    let last = seen.last().unwrap();
    assert_eq!(last["id"], id);
    assert_eq!(last["status"], "completed");
    assert_eq!(last["counts"]["succeeded"], 300);
    let done: Vec<u64> = seen
        .iter()
        .map(|j| j["counts"]["succeeded"].as_u64().unwrap())
        .collect();
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "{done:?}");
    let close = close.unwrap();
    assert_eq!(u16::from(close.code), 1000);
    assert_eq!(close.reason.as_str(), "job completed");
    // An unknown job is refused before the upgrade.
    let unknown = format!("{}/v1/jobs/nope/ws", api.base.replacen("http", "ws", 1));
    assert!(tokio_tungstenite::connect_async(unknown).await.is_err());
}

#[tokio::test]
async fn event_streams_end_when_the_server_shuts_down() {
    let stop = CancellationToken::new();
    let token = stop.clone();
    // No worker: the job stays pending, so only the shutdown can end the stream.
    let api = start("events-shutdown", false, move |s| s.shutdown = token).await;
    let job = api.submit(json!({ "handler": "echo", "items": [1] })).await;
    let id = job["id"].as_str().unwrap();
    let response = send(api.get(&format!("/v1/jobs/{id}/events"))).await;
    stop.cancel();
    // read_events fails the test if the stream does not end.
    let events = read_events(response).await;
    assert_eq!(events[0].0, "progress");
    let (name, last) = events.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(last["status"], 503);
}

#[tokio::test]
async fn queues_show_unfinished_jobs_per_priority() {
    let (api, _) = app("queues", false, |_| {}).await;
    let before = api.get("/v1/queues", None).await.ok();
    let priorities: Vec<&str> = before["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["priority"].as_str().unwrap())
        .collect();
    assert_eq!(priorities, ["high", "medium", "low"]);
    submit(
        &api,
        json!({ "handler": "echo", "items": [1, 2, 3], "priority": "low" }),
    )
    .await;
    let after = api.get("/v1/queues", None).await.ok();
    let low = &after["queues"][2];
    assert_eq!(low["unfinished_jobs"], 1);
    assert_eq!(low["queued_items"], 3);
    assert_eq!(low["in_flight_items"], 0);
    assert!(low["limit"].as_u64().unwrap() > 0);
    assert_eq!(after["queues"][0]["unfinished_jobs"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_and_redrive() {
    let (api, poisoning) = app("dead", true, |_| {}).await;
    let job = submit(
        &api,
        json!({ "handler": "poison", "items": [
            {"key": "fine-1", "payload": {"n": 1}},
            {"key": "bad-1", "payload": {"poison": true, "n": 2}},
            {"key": "fine-2", "payload": {"n": 3}},
            {"key": "bad-2", "payload": {"poison": true, "n": 4}},
        ]}),
    )
    .await;
    let id = job["id"].as_str().unwrap().to_owned();
    let job_id = JobId::from(id.clone());
    common::wait_for_job(api.store.as_ref(), "", &job_id, common::ended).await;
    let ended = api.get(&format!("/v1/jobs/{id}"), None).await.ok();
    assert_eq!(ended["counts"]["failed"], 2);
    assert_eq!(ended["status"], "completed", "some items succeeded");

    let dead = api.get("/v1/dead-letters", None).await.ok();
    let items = dead["items"].as_array().unwrap();
    let keys: BTreeSet<&str> = items.iter().map(|d| d["key"].as_str().unwrap()).collect();
    assert_eq!(keys, BTreeSet::from(["bad-1", "bad-2"]));
    for d in items {
        assert_eq!(d["job_id"], id.as_str());
        assert_eq!(d["payload"]["poison"], true);
        assert!(d["error"].as_str().unwrap().contains("poisoned"), "{d}");
        assert!(d["attempts"].as_u64().unwrap() >= 1 && d["dead_at"].is_f64());
    }
    // Paging: one at a time.
    let page = api.get("/v1/dead-letters?limit=1", None).await.ok();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_i64().unwrap();
    let rest = api
        .get(&format!("/v1/dead-letters?limit=1&cursor={cursor}"), None)
        .await
        .ok();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_ne!(rest["items"][0]["item_id"], page["items"][0]["item_id"]);

    // The cause is fixed; redrive both (an unknown id is skipped).
    poisoning.store(false, Ordering::SeqCst);
    let mut ids: Vec<i64> = items
        .iter()
        .map(|d| d["item_id"].as_i64().unwrap())
        .collect();
    ids.push(999_999);
    let redriven = api
        .post(
            "/v1/dead-letters/redrive",
            None,
            &json!({ "item_ids": ids }),
        )
        .await
        .ok();
    assert_eq!(redriven, json!({"redriven": 2}));
    let done = common::wait_for_job(api.store.as_ref(), "", &job_id, |j| {
        j.succeeded == 4 && common::ended(j)
    })
    .await;
    assert_eq!(done.status.as_str(), "completed");
    assert_eq!(done.failed, 0);
    let dead = api.get("/v1/dead-letters", None).await.ok();
    assert_eq!(dead["items"], json!([]));
    api.post("/v1/dead-letters/redrive", None, &json!({ "item_ids": [] }))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn bad_input_is_a_precise_problem() {
    let (api, _) = app("bad", false, |s| {
        s.max_body_bytes = 4096;
        s.max_items = 5;
    })
    .await;
    let d = api
        .send(raw("{\"handler\": "))
        .await
        .problem(StatusCode::BAD_REQUEST);
    assert!(!d.is_empty());
    // Each body is 422 with a detail naming what is wrong.
    for (body, named) in [
        (r#"{"handler": "echo", "items": "x"}"#, vec!["items"]),
        (r#"{"handler": 5, "items": [1]}"#, vec!["handler"]),
        (
            r#"{"handler": "echo", "items": [1], "extra": 1}"#,
            vec!["extra"],
        ),
        (
            r#"{"handler": "echo", "items": [1], "params": [1]}"#,
            vec!["params"],
        ),
        (
            r#"{"handler": "echo", "items": [1], "priority": "urgent"}"#,
            vec!["urgent"],
        ),
        (r#"{"handler": "echo", "items": []}"#, vec!["empty"]),
        (
            r#"{"handler": "echo", "items": [1, 2, 3, 4, 5, 6]}"#,
            vec!["6 items", "limit is 5"],
        ),
        (
            r#"{"handler": "nope", "items": [1]}"#,
            vec!["nope", "echo, poison"],
        ),
        // An explicit key collides with a default one.
        (
            r#"{"handler": "echo", "items": [{"key": "1", "payload": 7}, 8]}"#,
            vec!["\"1\""],
        ),
        (
            r#"{"handler": "echo", "items": [{"key": 3, "payload": 1}]}"#,
            vec!["items[0].key"],
        ),
    ] {
        let d = api
            .send(raw(body))
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(named.iter().all(|n| d.contains(n)), "{body}: {d}");
    }
    let d = api
        .send(raw(
            r#"{"handler": "echo", "items": [{"key": "a", "payload": 1}, {"key": "a", "payload": 2}, {"key": "1", "payload": 3}]}"#,
        ))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(d.contains("\"a\"") && !d.contains("\"1\""), "{d}");
    let big = json!({ "handler": "echo", "items": ["x".repeat(5000)] });
    let d = api
        .post("/v1/jobs", None, &big)
        .await
        .problem(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(d.contains("4096"), "{d}");
    let untyped = common::raw_post("/v1/jobs", None, r#"{"handler": "echo", "items": [1]}"#);
    api.send(untyped)
        .await
        .problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Unknown jobs, on every route that names one.
    let missing = "00000000-0000-4000-8000-000000000000";
    for path in [
        format!("/v1/jobs/{missing}"),
        format!("/v1/jobs/{missing}/results"),
        format!("/v1/jobs/{missing}/events"),
    ] {
        let d = api.get(&path, None).await.problem(StatusCode::NOT_FOUND);
        assert!(d.contains(missing), "{d}");
    }
    api.delete(&format!("/v1/jobs/{missing}"), None)
        .await
        .problem(StatusCode::NOT_FOUND);
    api.get("/v1/jobs/%FF", None)
        .await
        .problem(StatusCode::BAD_REQUEST);

    // Query parameters: out of range 422, not a number 400.
    for (query, status) in [
        ("limit=0", StatusCode::UNPROCESSABLE_ENTITY),
        ("limit=1001", StatusCode::UNPROCESSABLE_ENTITY),
        ("limit=abc", StatusCode::BAD_REQUEST),
        ("cursor=x", StatusCode::BAD_REQUEST),
    ] {
        for path in ["/v1/jobs", "/v1/dead-letters"] {
            api.get(&format!("{path}?{query}"), None)
                .await
                .problem(status);
        }
    }
    let d = api
        .post(
            "/v1/dead-letters/redrive",
            None,
            &json!({ "item_ids": ["a"] }),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(d.contains("item_ids"), "{d}");
}

#[tokio::test]
async fn keys_are_required_and_tenants_see_only_their_own_jobs() {
    let (api, _) = app("keys", false, |s| s.auth_required = true).await;
    let acme = api.key("acme").await;
    let umbrella = api.key("umbrella").await;
    let body = json!({ "handler": "echo", "items": [1] });

    let d = api
        .post("/v1/jobs", None, &body)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    assert!(d.contains("requires an API key"), "{d}");
    let d = api
        .post("/v1/jobs", Some("fry_wrong"), &body)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    assert!(d.contains("unknown or revoked"), "{d}");
    api.get("/v1/queues", None)
        .await
        .problem(StatusCode::UNAUTHORIZED);

    let created = api.post("/v1/jobs", Some(&acme), &body).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let by_header = common::call(Method::GET, &format!("/v1/jobs/{id}"), None, None);
    let mine = api
        .send(common::with_header(by_header, "x-api-key", &acme))
        .await
        .ok();
    assert_eq!(mine["id"], id.as_str());

    // Another tenant finds nothing, and cannot cancel it.
    for path in [
        format!("/v1/jobs/{id}"),
        format!("/v1/jobs/{id}/results"),
        format!("/v1/jobs/{id}/events"),
    ] {
        api.get(&path, Some(&umbrella))
            .await
            .problem(StatusCode::NOT_FOUND);
    }
    api.delete(&format!("/v1/jobs/{id}"), Some(&umbrella))
        .await
        .problem(StatusCode::NOT_FOUND);
    let theirs = api.get("/v1/jobs", Some(&umbrella)).await.ok();
    assert_eq!(theirs["items"], json!([]));
    let after = api.get(&format!("/v1/jobs/{id}"), Some(&acme)).await.ok();
    assert_eq!(after["status"], "pending");

    // A browser's EventSource sends the key in the query.
    let path = format!("/v1/jobs/{id}/events?api_key={acme}");
    let stream = common::call(Method::GET, &path, None, None);
    let (status, _) = api
        .head_of(common::with_header(stream, "accept", "text/event-stream"))
        .await;
    assert_eq!(status, StatusCode::OK);

    // The OpenAPI document stays open.
    let doc = api.get("/openapi.json", None).await.ok();
    assert!(doc["paths"]["/v1/jobs"]["post"].is_object());
    assert_eq!(
        doc["components"]["schemas"]["SubmitJob"]["properties"]["handler"]["enum"],
        json!(["echo", "poison"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenant_can_neither_list_nor_redrive_dead_letters() {
    let (api, poisoning) = app("dead-tenants", true, |s| s.auth_required = true).await;
    let acme = api.key("acme").await;
    let umbrella = api.key("umbrella").await;
    let body = json!({ "handler": "poison", "items": [{"poison": true}, {"n": 1}] });
    let job = api.post("/v1/jobs", Some(&acme), &body).await;
    assert_eq!(job.status, StatusCode::CREATED);
    let id = JobId::from(job.json()["id"].as_str().unwrap().to_owned());
    let ended = common::wait_for_job(api.store.as_ref(), "acme", &id, common::ended).await;
    assert_eq!((ended.succeeded, ended.failed), (1, 1));
    let dead = api.get("/v1/dead-letters", Some(&acme)).await.ok();
    let item_id = dead["items"][0]["item_id"].as_i64().unwrap();

    // Umbrella sees none of acme's dead letters, and redriving one queues nothing.
    let theirs = api.get("/v1/dead-letters", Some(&umbrella)).await.ok();
    assert_eq!(theirs["items"], json!([]));
    let redrive = json!({ "item_ids": [item_id] });
    let redriven = api
        .post("/v1/dead-letters/redrive", Some(&umbrella), &redrive)
        .await
        .ok();
    assert_eq!(redriven, json!({"redriven": 0}));
    poisoning.store(false, Ordering::SeqCst);
    let still = api.get("/v1/dead-letters", Some(&acme)).await.ok();
    assert_eq!(
        still["items"], dead["items"],
        "acme's dead letter is untouched"
    );
    // Nor can umbrella read the job they belong to.
    api.get(&format!("/v1/jobs/{id}/results"), Some(&umbrella))
        .await
        .problem(StatusCode::NOT_FOUND);

    // Acme itself can.
    let mine = api
        .post("/v1/dead-letters/redrive", Some(&acme), &redrive)
        .await
        .ok();
    assert_eq!(mine, json!({"redriven": 1}));
    let done = common::wait_for_job(api.store.as_ref(), "acme", &id, |j| {
        j.succeeded == 2 && common::ended(j)
    })
    .await;
    assert_eq!(done.failed, 0);
}
