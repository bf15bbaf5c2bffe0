//! The dashboard: one self-contained page at `/dashboard` (queues, jobs with live progress,
//! a throughput chart, dead letters with re-drive), built on the `/v1` API and refreshed
//! every second. The page itself holds no data, so it is served without an API key; the
//! key typed into it is sent with each API call. No build step and no external assets: the
//! HTML, CSS and script are compiled into the binary.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::state::AppState;

const PAGE: &str = include_str!("index.html");

/// `/dashboard` (and `/` redirecting to it).
pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/dashboard", get(page)).route(
        "/",
        get(|| async { axum::response::Redirect::to("/dashboard") }),
    )
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
}
