//! The operations routes: `/healthz` (the process answers) and `/readyz` (the store
//! answers), open to all, and `/metrics` (Prometheus text), behind the API-key check.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::{Problem, ProblemBody};
use super::state::AppState;

/// A health answer.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Health {
    /// `ok` (`/healthz`) or `ready` (`/readyz`).
    #[schema(example = "ok")]
    status: &'static str,
}

/// `/healthz` and `/readyz`, served without a key.
pub(super) fn open_routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// `/metrics`, to be merged under the API-key check.
pub(super) fn guarded_routes() -> Router<AppState> {
    Router::new().route("/metrics", get(prometheus))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops", operation_id = "healthz", security(()),
    responses((status = 200, description = "Alive", body = Health)))]
pub(super) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the store answers.
#[utoipa::path(get, path = "/readyz", tag = "ops", operation_id = "readyz", security(()),
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "The store is unreachable", body = ProblemBody,
         content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ))]
pub(super) async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, Problem> {
    state.store.queue_depths().await.map_err(|e| {
        Problem {
            status: StatusCode::SERVICE_UNAVAILABLE,
            title: "Not Ready",
            detail: "the store is unreachable".into(),
            retry_after: Some(1),
        }
        .log(&e)
    })?;
    Ok(Json(Health { status: "ready" }))
}

/// The engines' metrics in Prometheus text format (`ferry_items_total`, `ferry_calls_total`,
/// `ferry_batch_latency_seconds`, `ferry_concurrency_limit`, ..., labelled by `engine`, which
/// is the handler's name) and the batch API's `async_batch_*` metrics
/// ([`crate::batch_metrics`]).
#[utoipa::path(get, path = "/metrics", tag = "ops", operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus text exposition", content_type = "text/plain",
         body = String),
        (status = 404, description = "Metrics are not enabled on this server",
         body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub(super) async fn prometheus(
    State(state): State<AppState>,
) -> Result<([(header::HeaderName, &'static str); 1], String), Problem> {
    let handle = state
        .metrics
        .as_ref()
        .ok_or_else(|| Problem::not_found("metrics are not enabled on this server"))?;
    crate::batch_metrics::refresh_queue(state.store.as_ref()).await;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    ))
}
