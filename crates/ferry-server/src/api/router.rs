//! [`app`]: the API's routes assembled into one `Router`, shared by the service and the
//! tests.

use axum::extract::DefaultBodyLimit;
use axum::{middleware, Router};

use super::state::AppState;
use super::{auth, batch, dashboard, limits, openapi, ops, v1};

/// The API's routes: health and `/openapi.json` (open), and behind the API-key check
/// `/metrics`, `/v1/...` and (unless [`AppState::batch_api`] is off) the batch API's
/// `/api/v1/batch/...` routes; bodies are limited
/// to [`AppState::max_body_bytes`].
pub fn app(state: AppState) -> Router {
    let batch_api = if state.batch_api {
        batch::routes()
    } else {
        Router::new()
    };
    let guarded = Router::new()
        .merge(ops::guarded_routes())
        .merge(batch_api)
        .merge(v1::routes())
        // Layers run outside-in: the key check first, then the tenant's rate limit.
        .route_layer(middleware::from_fn_with_state(
            state.tenant_rate.clone(),
            limits::limit,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    Router::new()
        .merge(ops::open_routes())
        .merge(dashboard::routes())
        .merge(openapi::routes())
        .merge(guarded)
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .with_state(state)
}
