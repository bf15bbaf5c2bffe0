//! What the API tests share: a fresh SQLite store, and the API served on loopback.
#![allow(dead_code, clippy::unwrap_used)] // Each test binary uses part of it; tests fail loudly.

use std::sync::Arc;

use ferry_server::{app, AppState};
use ferry_store::{SqliteStore, Store};
use tokio_util::sync::CancellationToken;

/// A new SQLite store in its own temporary directory, `<group>-<name>-<pid>`.
pub(crate) async fn sqlite_store(group: &str, name: &str) -> Arc<dyn Store> {
    let dir = std::env::temp_dir().join(format!("ferry-{group}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Arc::new(SqliteStore::open(dir.join("s.db")).await.unwrap())
}

/// Serves `app(state)` on a free loopback port until `shutdown`; returns `http://addr`.
pub(crate) async fn serve(state: AppState, shutdown: &CancellationToken) -> String {
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
