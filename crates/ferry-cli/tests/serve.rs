//! `ferry serve` as a user runs it: the KubeSentiment-compatible batch API's quick start
//! against the binary. Waits are event-driven: the server's address comes from the line it
//! prints when it listens, and the job is polled until it completed, under a deadline.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use common::{http, Server};
use serde_json::{json, Value};

#[test]
fn serve_runs_the_batch_api_quick_start() {
    let server = Server::start("quick-start", &[]);
    assert!(server.banner.contains("loopback only"), "{}", server.banner);
    let job: Value = http::post(
        &server.url("/api/v1/batch/predict"),
        &json!({"texts": ["I love this product! It is amazing.", "This is terrible and disappointing."], "priority": "high"}),
    );
    let id = job["job_id"].as_str().unwrap();
    let status = server.until_completed(id);
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["priority"], "high");
}
