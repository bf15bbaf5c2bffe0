//! A worker's own HTTP port (`ferry worker --metrics-addr`): `/metrics` (Prometheus: the
//! engines' `ferry_*` metrics and the `async_batch_*` ones, see [`crate::batch_metrics`]),
//! `/healthz` (the process answers) and `/readyz` (its store answers, else 503). No API key:
//! bind it where only the monitoring can reach it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use ferry_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

use crate::batch_metrics;

#[derive(Clone)]
struct Ops {
    store: Arc<dyn Store>,
    metrics: PrometheusHandle,
}

/// The worker's routes over `store`, rendering `metrics`.
pub fn worker_routes(store: Arc<dyn Store>, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/metrics", get(prometheus))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready))
        .with_state(Ops { store, metrics })
}

async fn prometheus(State(ops): State<Ops>) -> impl IntoResponse {
    batch_metrics::refresh_queue(ops.store.as_ref()).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        ops.metrics.render(),
    )
}

async fn ready(State(ops): State<Ops>) -> impl IntoResponse {
    match ops.store.queue_depths().await {
        Ok(_) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: the store is unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "the store is unreachable"})),
            )
        }
    }
}
