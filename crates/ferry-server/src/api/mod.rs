//! The HTTP API: `fn app(state) -> Router`, shared by `ferry serve` and the tests.

mod auth;
mod body;
mod dashboard;
mod events;
mod limits;
mod openapi;
mod path;
mod problem;
mod seed;
mod v1;
mod ws;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::get;
use axum::{middleware, Json, Router};
use ferry_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

pub use auth::{Tenant, RECHECK};
pub use body::JsonBody;
pub use limits::TenantRate;
pub use problem::Problem;

/// What every handler of the API shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The durable store.
    pub store: Arc<dyn Store>,
    /// The handler seed 001's `predict` route submits to (default `sentiment`).
    pub predict_handler: String,
    /// Most texts in one job (default 1,000, as the seed).
    pub max_texts: usize,
    /// Longest text in characters (default 10,000).
    pub max_text_chars: usize,
    /// The Prometheus recorder's handle, rendered at `/metrics` (none: `/metrics` is 404).
    pub metrics: Option<PrometheusHandle>,
    /// Whether every route but health needs an API key (see [`Tenant`]); `ferry serve` sets
    /// it when the store holds a live key at start. Without it, keys become required as
    /// soon as one is created (checked every [`RECHECK`]).
    pub auth_required: bool,
    /// Watches the store for a first key while `auth_required` is false.
    key_watch: auth::KeyWatch,
    /// Largest request body in bytes (default 16 MiB): larger is 413.
    pub max_body_bytes: usize,
    /// Most items in one `/v1` job (default 100,000).
    pub max_items: usize,
    /// Handler names jobs may name (the workers' handlers); another is 422 at submit.
    pub handlers: Arc<BTreeSet<String>>,
    /// Requests per second each tenant may make (none: unlimited); see [`TenantRate`].
    pub tenant_rate: Option<TenantRate>,
    /// Cancelled when the server shuts down: open event streams and WebSockets end then
    /// (with an `error` event / close code 1001), so a graceful shutdown does not wait for
    /// the jobs they follow.
    pub shutdown: CancellationToken,
}

impl AppState {
    /// State over `store` with the defaults.
    pub fn new(store: Arc<dyn Store>) -> Self {
        AppState {
            store,
            predict_handler: "sentiment".into(),
            max_texts: 1000,
            max_text_chars: 10_000,
            metrics: None,
            auth_required: false,
            key_watch: auth::KeyWatch::default(),
            max_body_bytes: 16 * 1024 * 1024,
            max_items: 100_000,
            handlers: Arc::new(["sentiment".to_owned()].into_iter().collect()),
            tenant_rate: None,
            shutdown: CancellationToken::new(),
        }
    }
}

/// The API's routes: health and `/openapi.json` (open), and behind the API-key check
/// `/metrics`, `/v1/...` and seed 001's `/api/v1/batch/...` routes; bodies are limited to
/// [`AppState::max_body_bytes`].
pub fn app(state: AppState) -> Router {
    let guarded = Router::new()
        .route("/metrics", get(prometheus))
        .merge(seed::routes())
        .merge(v1::routes())
        // Layers run outside-in: the key check first, then the tenant's rate limit.
        .route_layer(middleware::from_fn_with_state(state.clone(), limits::limit))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(dashboard::routes())
        .merge(openapi::routes())
        .merge(guarded)
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .with_state(state)
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, Problem> {
    state.store.queue_depths().await.map_err(|e| {
        Problem {
            status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
            title: "Not Ready",
            detail: "the store is unreachable".into(),
            retry_after: Some(1),
        }
        .log(&e)
    })?;
    Ok(Json(json!({ "status": "ready" })))
}

/// Prometheus text format: the engines' metrics (`ferry_items_total`, `ferry_calls_total`,
/// `ferry_batch_latency_seconds`, `ferry_concurrency_limit`, ..., labelled by `engine`, which
/// is the handler's name).
async fn prometheus(
    State(state): State<AppState>,
) -> Result<([(axum::http::header::HeaderName, &'static str); 1], String), Problem> {
    let handle = state
        .metrics
        .as_ref()
        .ok_or_else(|| Problem::not_found("metrics are not enabled on this server"))?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        handle.render(),
    ))
}
