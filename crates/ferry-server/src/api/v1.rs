//! The `/v1` REST API.

use axum::Router;

use super::AppState;

/// The `/v1` routes.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
}
