//! `ferry serve --store postgres://...` while PostgreSQL drops every connection of the
//! service (`pg_terminate_backend` on the service's `application_name`, what a
//! `pg_ctlcluster ... restart` does to it): the service stays up, its in-process worker
//! reconnects with backoff, and the batch job completes with one result per text. A
//! submit that meets the store without a connection is answered `503` with `Retry-After`
//! and nothing stored, and the client sends it again, as the API documents.
//!
//! The machine's PostgreSQL is shared with other tests, so it is not restarted: only this
//! service's own connections are terminated. The service runs in a schema of its own
//! (`options=-csearch_path=...` in the URL).
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{collect, http, Killed};
use serde_json::{json, Value};

fn psql(sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-tAc",
            sql,
        ])
        .output()
        .expect("psql (PostgreSQL's client) is needed");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Submits a job as a client of the batch API should: a submit that meets the store
/// between losing its connections and the pool's next ones is answered `503` with
/// `Retry-After` ("nothing was stored; retry"), and is sent again after that long.
fn submit(url: &str, body: &Value) -> Value {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        for _ in 0..10 {
            let response = client.post(url).json(body).send().await.unwrap();
            if response.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE {
                assert!(
                    response.status().is_success(),
                    "{url}: {}",
                    response.status()
                );
                return response.json().await.unwrap();
            }
            let after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .expect("a 503 says when to retry");
            let problem: Value = response.json().await.unwrap();
            assert_eq!(problem["status"], 503, "{problem}");
            eprintln!("{url}: 503 ({}), retrying in {after} s", problem["detail"]);
            tokio::time::sleep(Duration::from_secs(after)).await;
        }
        panic!("{url}: still 503 after 10 tries");
    })
}

#[test]
fn ferry_serve_on_postgres_survives_its_connections_being_terminated() {
    let tag = format!("ferry_restart_{}", std::process::id());
    psql(&format!(
        "DROP SCHEMA IF EXISTS {tag} CASCADE; CREATE SCHEMA {tag}"
    ));
    let url = format!(
        "postgres://postgres@127.0.0.1:5432/test?application_name={tag}&options=-csearch_path%3D{tag}"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["serve", "--listen", "127.0.0.1:0", "--store", &url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = collect(child.stderr.take().unwrap());
    let mut server = Killed(child);
    let addr = loop {
        let line = out.next_line("`ferry serve` to listen");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let texts: Vec<String> = (0..1000).map(|i| format!("text {i}: I love it")).collect();
    let mut ids = Vec::new();
    let mut terminated = 0;
    for round in 0..5 {
        let job = submit(
            &format!("http://{addr}/api/v1/batch/predict"),
            &json!({ "texts": texts }),
        );
        ids.push(job["job_id"].as_str().unwrap().to_owned());
        let killed = psql(&format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = '{tag}'"
        ));
        terminated += killed.parse::<u32>().unwrap();
        eprintln!("round {round}: terminated {killed} backends");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(terminated >= 5, "{terminated}");
    // Every job completes, with one result per text.
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in &ids {
        let status = loop {
            let (code, _, body) =
                http::get(&format!("http://{addr}/api/v1/batch/status/{id}"), &[]);
            if code == 200 {
                let s: Value = serde_json::from_str(&body).unwrap();
                if s["status"] == "completed" {
                    break s;
                }
            }
            assert!(
                server.0.try_wait().unwrap().is_none(),
                "ferry serve exited:\n{}",
                out.text()
            );
            assert!(
                Instant::now() < deadline,
                "{id} never completed:\n{}",
                out.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(status["processed_texts"], 1000, "{status}");
        assert_eq!(status["failed_texts"], 0, "{status}");
    }
    let counts = psql(&format!(
        "SELECT count(*) || ' ' || count(DISTINCT item_id) FROM {tag}.results"
    ));
    assert_eq!(counts, "5000 5000");
    assert!(server.0.try_wait().unwrap().is_none(), "{}", out.text());
    let _ = server.0.kill();
    let _ = server.0.wait();
    psql(&format!("DROP SCHEMA IF EXISTS {tag} CASCADE"));
}
