//! What the service's tests share: a fresh SQLite store; the app driven in-process through
//! `tower::ServiceExt::oneshot` (no socket), with tenants' keys and a manual clock
//! ([`TestApp`]); the app served on loopback for the tests that need a real socket
//! (WebSockets, streams read as a client would); and the one "wait until the job got
//! there" loop ([`wait_for_job`]).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)] // Each test binary uses part of it; tests fail loudly.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use ferry_server::api::ApiClock;
use ferry_server::{app, AppState, Handlers, Worker, WorkerOptions};
use ferry_store::{JobId, JobRecord, SqliteStore, Store};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// A new SQLite store in its own temporary directory, `<group>-<name>-<pid>`.
pub async fn sqlite_store(group: &str, name: &str) -> Arc<dyn Store> {
    let dir = std::env::temp_dir().join(format!("ferry-{group}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Arc::new(SqliteStore::open(dir.join("s.db")).await.unwrap())
}

/// Serves `app(state)` on a free loopback port until `shutdown`; returns `http://addr`.
pub async fn serve(state: AppState, shutdown: &CancellationToken) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = shutdown.clone();
    tokio::spawn(async move {
        axum::serve(listener, app(state))
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
            .unwrap();
    });
    base
}

/// Polls `tenant`'s job `id` in the store until `done` says so, and returns it; fails the
/// test after 30 s. For jobs a real worker runs (its pace is real time).
pub async fn wait_for_job(
    store: &dyn Store,
    tenant: &str,
    id: &JobId,
    done: impl Fn(&JobRecord) -> bool,
) -> JobRecord {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let job = store
            .job(tenant, id)
            .await
            .unwrap()
            .expect("the job exists");
        if done(&job) {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job never got there in 30 s: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether the job ended (completed or failed).
pub fn ended(job: &JobRecord) -> bool {
    matches!(
        job.status,
        ferry_store::JobStatus::Completed | ferry_store::JobStatus::Failed
    )
}

/// The app in-process over a fresh store, with a manual [`ApiClock`] (the key re-check
/// moves only when the test advances it) and, if given handlers, a worker running them.
pub struct TestApp {
    /// The store behind the app.
    pub store: Arc<dyn Store>,
    /// The app's clock.
    pub clock: ApiClock,
    router: Router,
    shutdown: CancellationToken,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestApp {
    /// The app over a new store named `<group>-<name>`, adjusted by `tune`; a worker runs
    /// `handlers` when given (and the app accepts their names).
    pub async fn start(
        group: &str,
        name: &str,
        handlers: Option<Handlers>,
        tune: impl FnOnce(&mut AppState),
    ) -> Self {
        Self::over(sqlite_store(group, name).await, handlers, tune)
    }

    /// [`start`](Self::start) over a store the test opened (with other store options).
    pub fn over(
        store: Arc<dyn Store>,
        handlers: Option<Handlers>,
        tune: impl FnOnce(&mut AppState),
    ) -> Self {
        let clock = ApiClock::manual();
        let shutdown = CancellationToken::new();
        let mut state = AppState::new(Arc::clone(&store));
        state.clock = clock.clone();
        state.shutdown = shutdown.clone();
        if let Some(handlers) = handlers {
            state.handlers = Arc::new(handlers.names());
            tokio::spawn(
                Worker::new(Arc::clone(&store), handlers, WorkerOptions::default())
                    .run(shutdown.clone()),
            );
        }
        tune(&mut state);
        TestApp {
            store,
            clock,
            router: app(state),
            shutdown,
        }
    }

    /// A new API key for `tenant`.
    pub async fn key(&self, tenant: &str) -> String {
        self.store
            .create_key(tenant, "test")
            .await
            .unwrap()
            .plaintext
    }

    /// Sends `request` through the app.
    pub async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Sends `request` through the app and returns the status and headers only, without
    /// reading the body (an event stream's body does not end while its job runs).
    pub async fn head_of(&self, request: Request<Body>) -> (StatusCode, HeaderMap) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        (response.status(), response.headers().clone())
    }

    /// `GET path`, with `key` as a bearer token when given.
    pub async fn get(&self, path: &str, key: Option<&str>) -> Answer {
        self.send(call(Method::GET, path, key, None)).await
    }

    /// `DELETE path`, with `key` when given.
    pub async fn delete(&self, path: &str, key: Option<&str>) -> Answer {
        self.send(call(Method::DELETE, path, key, None)).await
    }

    /// `POST path` with `body` as JSON, with `key` when given.
    pub async fn post(&self, path: &str, key: Option<&str>, body: &Value) -> Answer {
        self.send(call(Method::POST, path, key, Some(body))).await
    }
}

/// A request: `method path`, `Authorization: Bearer key` when given, `body` as JSON.
pub fn call(method: Method, path: &str, key: Option<&str>, body: Option<&Value>) -> Request<Body> {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
        None => request.body(Body::empty()).unwrap(),
    }
}

/// `request` with the header `name: value` added.
pub fn with_header(mut request: Request<Body>, name: &'static str, value: &str) -> Request<Body> {
    request
        .headers_mut()
        .insert(name, header::HeaderValue::from_str(value).unwrap());
    request
}

/// `POST path` with `body` sent as it is, with `content_type` when given.
pub fn raw_post(path: &str, content_type: Option<&str>, body: &str) -> Request<Body> {
    let mut request = Request::post(path);
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

/// An answer of the app.
#[derive(Debug)]
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Asserts a 200 JSON answer and returns its body.
    pub fn ok(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{:?}", self.body);
        assert_eq!(self.headers[header::CONTENT_TYPE], "application/json");
        self.json()
    }

    /// Asserts a problem+json answer with `status` and returns its detail.
    pub fn problem(&self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "{:?}", self.body);
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = self.json();
        assert_eq!(body["status"], status.as_u16());
        assert!(body["title"].is_string(), "{body}");
        body["detail"].as_str().unwrap().to_owned()
    }
}
