//! `ferry serve` as a user runs it: seed 001's quick start against the binary.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_the_seed_quick_start() {
    let dir = std::env::temp_dir().join(format!("ferry-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["serve", "--listen", "127.0.0.1:0", "--store"])
        .arg(dir.join("svc.db"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .split("http://")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(first.contains("loopback only"), "{first}");
    let client = reqwest::Client::new();
    let job: Value = client
        .post(format!("http://{addr}/api/v1/batch/predict"))
        .json(&json!({"texts": ["I love this product! It is amazing.", "This is terrible and disappointing."], "priority": "high"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = job["job_id"].as_str().unwrap();
    let mut status = Value::Null;
    for _ in 0..100 {
        status = client
            .get(format!("http://{addr}/api/v1/batch/status/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["status"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["priority"], "high");
}
