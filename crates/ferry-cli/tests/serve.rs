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

/// `ferry serve --config`: the `[handler.NAME]` tables of the shipped example (a Python and
/// a Node.js exec handler), beside service settings it leaves alone, run by the in-process
/// worker; the poison text is dead-lettered with the handler's exception.
#[test]
fn serve_runs_handlers_from_its_configuration_file() {
    let dir = common::TempDir::new("handler-config");
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/exec-handlers/ferry.toml");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // The example names its scripts from the repository's root.
    let text = std::fs::read_to_string(&example)
        .unwrap()
        .replace("\"examples/", &format!("\"{}/examples/", root.display()));
    let config = dir.0.join("ferry.toml");
    std::fs::write(
        &config,
        format!("listen = \"127.0.0.1:1\"\n[store]\nurl = \"x\"\n\n{text}"),
    )
    .unwrap();
    let server = Server::start("config", &["--config", config.to_str().unwrap()]);
    let (_, _, handlers) = http::get(&server.url("/v1/handlers"), &[]);
    let handlers: Value = serde_json::from_str(&handlers).unwrap();
    assert_eq!(
        handlers["handlers"],
        json!(["echo", "enrich", "enrich-node", "sentiment"])
    );
    let node = common::client("node").arg("--version").output().is_ok();
    let names: &[&str] = if node {
        &["enrich", "enrich-node"]
    } else {
        &["enrich"]
    };
    for name in names {
        let job: Value = http::post(
            &server.url("/v1/jobs"),
            &json!({"handler": name, "items": [
                {"key": "a", "payload": {"text": "great love", "n": 1}},
                {"key": "b", "payload": {"text": "poison", "n": 2}},
                {"key": "c", "payload": {"text": "awful", "n": 3}},
            ]}),
        );
        let url = server.url(&format!("/v1/jobs/{}", job["id"].as_str().unwrap()));
        let status =
            common::until_completed(|| serde_json::from_str(&http::get(&url, &[]).2).unwrap());
        assert_eq!(status["counts"]["succeeded"], 2, "{name}: {status}");
        assert_eq!(status["counts"]["failed"], 1, "{name}: {status}");
        let (_, _, results) = http::get(&format!("{url}/results"), &[]);
        let results: Value = serde_json::from_str(&results).unwrap();
        let seen: Vec<(&str, &Value, &Value)> = results["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["key"].as_str().unwrap(),
                    &r["result"]["score"],
                    &r["error"],
                )
            })
            .collect();
        let refused = if *name == "enrich" {
            "ValueError: cannot score the poison text"
        } else {
            "Error: cannot score the poison text"
        };
        assert_eq!(
            seen,
            [
                ("a", &json!(2), &Value::Null),
                ("b", &Value::Null, &json!(refused)),
                ("c", &json!(-1), &Value::Null)
            ],
            "{name}: {results}"
        );
    }
}

/// A bad `[handler.NAME]` table stops `ferry worker` before it claims anything, naming the
/// file, line and key.
#[test]
fn a_bad_handler_table_names_file_line_and_key() {
    let dir = common::TempDir::new("bad-config");
    let config = dir.0.join("ferry.toml");
    std::fs::write(
        &config,
        "[handler.enrich]\ntype = \"exec\"\nprogram = \"python3\"\nworkrs = 2\n",
    )
    .unwrap();
    let mut cmd = common::client(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(["worker", "--store", dir.0.join("s.db").to_str().unwrap()])
        .arg("--config")
        .arg(&config);
    let out = common::run(cmd, std::time::Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:4: `handler.enrich.workrs`: unknown key; expected one of:",
            config.display()
        )),
        "{stderr}"
    );
}
