//! The HTTP API: `fn app(state) -> Router`, shared by `ferry serve` and the tests.

mod problem;
mod seed;

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use ferry_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{json, Value};

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
        }
    }
}

/// The API's routes: health and seed 001's `/api/v1/batch/...` routes.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus))
        .route("/api/v1/batch/predict", post(seed::predict))
        .route("/api/v1/batch/status/{id}", get(seed::status))
        .route("/api/v1/batch/results/{id}", get(seed::results))
        .route("/api/v1/batch/jobs/{id}", delete(seed::cancel))
        .route("/api/v1/batch/queue/status", get(seed::queue_status))
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
