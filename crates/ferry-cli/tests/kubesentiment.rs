//! The KubeSentiment-compatible batch API (`/api/v1/batch/...`) as that service's own
//! clients use it, run verbatim against `ferry serve`: its curl quick start (under `sh`, with
//! `curl`), its Python httpx client (under the `target/py` venv that `scripts/py-env.sh`
//! makes) and its WebSocket JavaScript snippet (under Node's built-in `WebSocket`). The
//! snippets are files in `tests/kubesentiment/`, byte for byte as its README prints them; the
//! harness changes only the address (`localhost:8000` becomes the server's) and the job id,
//! as `tests/kubesentiment/README.md` lists. Every field of every response the documentation
//! shows must be in ours with the same JSON type (an integer stays an integer, a float a
//! float).
//!
//! Tools: `curl` and `sh` from `PATH`; Python from `FERRY_PYTHON`, else the venv
//! `target/py` (or `FERRY_PY_ENV`), made by running `scripts/py-env.sh` when it lacks httpx; Node from `FERRY_NODE`, else `node` on `PATH`,
//! with its built-in `WebSocket` (`--experimental-websocket` on Node 20 and 21) or, failing
//! that, the `ws` package installed into `target/node` with npm. A missing tool fails the test
//! with what to install: nothing is skipped.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use common::{
    client, collect, http, run, run_ok, spawn_ferry, until_completed, wait, Killed, Server,
    DEADLINE,
};
use serde_json::Value;

/// The address the documented snippets use.
const DOC_ADDR: &str = "localhost:8000";
/// The job id of the documented examples.
const DOC_JOB_ID: &str = "550e8400-e29b-41d4-a716-446655440000";
/// The texts of the documented quick start.
const QUICK_START_TEXTS: [&str; 3] = [
    "I love this product! It is amazing.",
    "This is terrible and disappointing.",
    "It is okay, nothing special.",
];
/// How long installing packages (`scripts/py-env.sh`, npm) may take.
const INSTALL_DEADLINE: Duration = Duration::from_secs(600);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/kubesentiment")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `snippet` with the documented address replaced by `addr` (it must contain it).
fn at(snippet: &str, addr: &str) -> String {
    assert!(snippet.contains(DOC_ADDR), "{snippet}");
    snippet.replace(DOC_ADDR, addr)
}

/// The JSON type of `v`, telling integers from floats as the documented examples do.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every field of the documented example `doc` is in `ours` with the same type, recursively
/// (each element of an array against the example's first element).
fn assert_shape(ours: &Value, doc: &Value, path: &str) {
    assert_eq!(
        kind(ours),
        kind(doc),
        "{path}: ours is {ours}, the documentation shows {doc}"
    );
    match (ours, doc) {
        (Value::Object(o), Value::Object(s)) => {
            for (key, expected) in s {
                let got = o
                    .get(key)
                    .unwrap_or_else(|| panic!("{path}.{key} is missing from {ours}"));
                assert_shape(got, expected, &format!("{path}.{key}"));
            }
        }
        (Value::Array(o), Value::Array(s)) => {
            if let Some(first) = s.first() {
                assert!(
                    !o.is_empty(),
                    "{path}: ours is empty, the documentation shows {doc}"
                );
                for (i, item) in o.iter().enumerate() {
                    assert_shape(item, first, &format!("{path}[{i}]"));
                }
            }
        }
        _ => {}
    }
}

/// Checks a completed job's results against the texts it scored.
fn assert_results(results: &Value, job_id: &str, texts: &[&str]) {
    assert_shape(results, &fixture_json("3_results.response.json"), "results");
    assert_eq!(results["job_id"], job_id);
    assert_eq!(results["total_results"], texts.len());
    assert_eq!(results["page"], 1);
    assert_eq!(results["page_size"], 100);
    assert_eq!(results["has_more"], false);
    let items = results["results"].as_array().unwrap();
    assert_eq!(items.len(), texts.len(), "{results}");
    let mut labels = std::collections::BTreeMap::<String, u64>::new();
    let mut scores = 0.0;
    for (item, text) in items.iter().zip(texts) {
        assert_eq!(item["text_length"], text.chars().count(), "{text}: {item}");
        let score = item["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score), "{item}");
        assert!(item["inference_time_ms"].as_f64().unwrap() >= 0.0, "{item}");
        assert!(!item["model_name"].as_str().unwrap().is_empty(), "{item}");
        assert_eq!(item["backend"], "ferry");
        let label = item["label"].as_str().unwrap();
        assert!(
            ["POSITIVE", "NEGATIVE", "NEUTRAL"].contains(&label),
            "{item}"
        );
        *labels.entry(label.to_owned()).or_default() += 1;
        scores += score;
    }
    let summary = &results["summary"];
    assert_eq!(summary["total_texts"], texts.len());
    assert_eq!(summary["successful_predictions"], texts.len());
    assert_eq!(summary["failed_predictions"], 0);
    assert_eq!(summary["success_rate"], 1.0);
    // The whole distribution, keyed by every label the documented example lists (a label
    // missing from ours fails, as does one the example does not know).
    let documented = fixture_json("3_results.response.json");
    let expected: serde_json::Map<String, Value> = documented["summary"]["sentiment_distribution"]
        .as_object()
        .unwrap()
        .keys()
        .map(|label| {
            (
                label.clone(),
                labels.get(label).copied().unwrap_or(0).into(),
            )
        })
        .collect();
    assert_eq!(
        labels.keys().filter(|l| !expected.contains_key(*l)).count(),
        0,
        "labels the documentation does not list: {labels:?}"
    );
    assert_eq!(
        summary["sentiment_distribution"].as_object().unwrap(),
        &expected,
        "{summary}"
    );
    let mean = summary["average_confidence"].as_f64().unwrap();
    assert!(
        (mean - scores / texts.len() as f64).abs() < 1e-9,
        "{summary}"
    );
}

#[test]
fn curl_quick_start_runs_verbatim() {
    let server = Server::start("curl", &[]);
    let sh = |script: String| {
        let mut cmd = client("sh");
        cmd.arg("-c").arg(script);
        let out = run_ok(cmd, DEADLINE);
        serde_json::from_str::<Value>(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };

    // 1. Submit Batch Job.
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let job = sh(at(&fixture("1_submit.sh"), &server.addr));
    assert_shape(&job, &fixture_json("1_submit.response.json"), "predict");
    assert_shape(
        &job,
        &fixture_json("schema.BatchJobResponse.json"),
        "predict",
    );
    let id = job["job_id"].as_str().unwrap().to_owned();
    assert_ne!(id, DOC_JOB_ID);
    assert!(["pending", "processing", "completed"].contains(&job["status"].as_str().unwrap()));
    assert_eq!(job["total_texts"], 3);
    assert_eq!(job["priority"], "medium");
    assert_eq!(job["progress_percentage"], 0.0);
    assert!(job["estimated_completion_seconds"].as_u64().unwrap() >= 1);
    let created = job["created_at"].as_f64().unwrap();
    assert!(
        (created - started).abs() < 60.0,
        "created_at {created}, now {started}"
    );

    // 2. Check Job Status, as a client would: until it is completed.
    let status_script = at(&fixture("2_status.sh"), &server.addr).replace(DOC_JOB_ID, &id);
    assert!(status_script.contains(&id));
    let status = until_completed(|| sh(status_script.clone()));
    assert_shape(&status, &fixture_json("2_status.response.json"), "status");
    assert_shape(
        &status,
        &fixture_json("schema.BatchJobStatus.json"),
        "status",
    );
    assert_eq!(status["job_id"], id.as_str());
    assert_eq!(status["total_texts"], 3);
    assert_eq!(status["processed_texts"], 3);
    assert_eq!(status["failed_texts"], 0);
    assert_eq!(status["progress_percentage"], 100.0);
    assert_eq!(status["created_at"], job["created_at"]);
    let (started_at, completed_at) = (
        status["started_at"].as_f64().unwrap(),
        status["completed_at"].as_f64().unwrap(),
    );
    assert!(
        created <= started_at && started_at <= completed_at,
        "{status}"
    );

    // 3. Get Results.
    let results_script = at(&fixture("3_results.sh"), &server.addr).replace(DOC_JOB_ID, &id);
    let results = sh(results_script);
    assert_results(&results, &id, &QUICK_START_TEXTS);
    let labels: Vec<&str> = results["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels[..2], ["POSITIVE", "NEGATIVE"], "{results}");

    // The metrics route the documented endpoint table lists, with curl too.
    let metrics = sh(format!(
        "curl -s \"http://{}/api/v1/batch/metrics\"",
        server.addr
    ));
    assert_eq!(metrics["total_jobs"], 1, "{metrics}");
    assert_eq!(metrics["jobs_by_status"]["completed"], 1, "{metrics}");
    assert_eq!(metrics["jobs_by_priority"]["medium"], 1, "{metrics}");
    assert_eq!(metrics["processed_texts"], 3, "{metrics}");
    assert_eq!(metrics["success_rate"], 1.0, "{metrics}");
    assert_eq!(metrics["queue_size"], 0, "{metrics}");
    assert!(
        metrics["throughput_tps"].as_f64().unwrap() > 0.0,
        "{metrics}"
    );
    assert!(
        metrics["average_processing_time_seconds"].is_f64(),
        "{metrics}"
    );
    assert!(
        metrics["queues"]["medium"]["utilization"].is_f64(),
        "{metrics}"
    );
    // `ferry serve` runs the worker in process, so its engine counted the three texts.
    assert!(
        metrics["engine"]["items_succeeded"].as_u64().unwrap() >= 3,
        "{metrics}"
    );
}

/// The Python to run: `FERRY_PYTHON`, else the venv `scripts/py-env.sh` makes (`target/py`,
/// or `FERRY_PY_ENV`), made now if it lacks httpx.
fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            if let Some(p) = std::env::var_os("FERRY_PYTHON") {
                return PathBuf::from(p);
            }
            let venv = std::env::var_os("FERRY_PY_ENV")
                .map_or_else(|| repo_root().join("target/py"), PathBuf::from)
                .join("bin/python");
            let works = |p: &Path| {
                Command::new(p)
                    .args(["-c", "import httpx"])
                    .output()
                    .is_ok_and(|o| o.status.success())
            };
            if works(&venv) {
                return venv;
            }
            let mut cmd = Command::new("bash");
            cmd.arg(repo_root().join("scripts/py-env.sh"));
            let made = PathBuf::from(run_ok(cmd, INSTALL_DEADLINE).trim());
            assert!(
                works(&made),
                "scripts/py-env.sh made {} without httpx",
                made.display()
            );
            made
        })
        .clone()
}

#[test]
fn python_client_runs_verbatim() {
    let server = Server::start("python", &[]);
    let texts = [
        QUICK_START_TEXTS[0],
        QUICK_START_TEXTS[1],
        QUICK_START_TEXTS[2],
        "Le café était délicieux 😀",
        "",
    ];
    // The snippet annotates with `List`, `Dict` and `Any` but does not import them.
    let script = format!(
        "from typing import List, Dict, Any\n{}\n\n\
         if __name__ == \"__main__\":\n    \
         import json, sys\n    \
         print(json.dumps(asyncio.run(process_batch_async(json.loads(sys.argv[1])))))\n",
        at(&fixture("client.py"), &server.addr)
    );
    let path = server.store.with_file_name("client.py");
    std::fs::write(&path, script).unwrap();
    let mut cmd = client(python());
    cmd.arg(&path).arg(serde_json::to_string(&texts).unwrap());
    let out = run_ok(cmd, DEADLINE);
    let results: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let id = results["job_id"].as_str().unwrap().to_owned();
    assert_results(&results, &id, &texts);

    // The WebSocket of a job that has already finished: its final state, then the close.
    let lines = node_ws(&server, &id);
    assert_eq!(
        lines,
        [
            format!("Job {id}: completed (100%)"),
            "closed 1000 job completed".to_owned()
        ]
    );
}

/// How to run Node with a global `WebSocket`: the program and its leading arguments.
fn node() -> Vec<String> {
    static NODE: OnceLock<Vec<String>> = OnceLock::new();
    NODE.get_or_init(|| {
        let program = std::env::var("FERRY_NODE").unwrap_or_else(|_| "node".into());
        let probe = "process.exit(typeof WebSocket === 'function' ? 0 : 1)";
        let has = |args: &[&str]| {
            Command::new(&program)
                .args(args)
                .args(["-e", probe])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        let version = Command::new(&program).arg("--version").output();
        assert!(
            version.as_ref().is_ok_and(|o| o.status.success()),
            "Node.js is needed for the documented WebSocket snippet (`{program}`: {version:?}); \
             install Node 20 or later, or set FERRY_NODE"
        );
        if has(&[]) {
            return vec![program];
        }
        if has(&["--experimental-websocket"]) {
            return vec![program, "--experimental-websocket".into()];
        }
        // An older Node: the `ws` package as the global `WebSocket`.
        let prefix = repo_root().join("target/node");
        let shim = prefix.join("websocket-shim.js");
        if !prefix.join("node_modules/ws").exists() {
            let mut npm = Command::new("npm");
            npm.args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(&prefix)
                .arg("ws@8");
            run_ok(npm, INSTALL_DEADLINE);
        }
        std::fs::write(&shim, "globalThis.WebSocket = require('ws');\n").unwrap();
        let shim = shim.display().to_string();
        assert!(
            has(&["--require", &shim]),
            "Node has no WebSocket even with the `ws` shim"
        );
        vec![program, "--require".into(), shim]
    })
    .clone()
}

/// The documented WebSocket snippet for `id` against `server`, with the harness's tail: it prints
/// how the socket ends and exits: 0 after the close, 1 after an error (Node 20 fires no close
/// after a failed handshake), 3 after 30 s.
fn ws_script(server: &Server, id: &str) -> PathBuf {
    let snippet = fixture("ws.js");
    assert!(snippet.contains("{job_id}"), "{snippet}");
    let script = format!(
        "{}\n\n// Appended by tests/kubesentiment.rs: report how the socket ends, then exit.\n\
         ws.onerror = () => {{\n    \
         console.log('error');\n    \
         setTimeout(() => process.exit(1), 500);\n}};\n\
         ws.onclose = (event) => {{\n    \
         console.log(`closed ${{event.code}} ${{event.reason}}`);\n    \
         process.exit(0);\n}};\n\
         setTimeout(() => {{ console.log('timed out'); process.exit(3); }}, 30000);\n",
        at(&snippet, &server.addr).replace("{job_id}", id)
    );
    let path = server.store.with_file_name(format!("ws-{id}.js"));
    std::fs::write(&path, script).unwrap();
    path
}

fn node_command(script: &Path) -> Command {
    let node = node();
    let mut cmd = client(&node[0]);
    cmd.args(&node[1..]).arg(script);
    cmd
}

/// Runs the WebSocket snippet to its end; its stdout lines.
fn node_ws(server: &Server, id: &str) -> Vec<String> {
    run_ok(node_command(&ws_script(server, id)), DEADLINE)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn websocket_snippet_follows_a_job_run_by_another_process() {
    // No in-process worker: the job waits until a `ferry worker` process takes it.
    let server = Server::start("ws", &["--no-worker"]);
    let id = server.submit(&QUICK_START_TEXTS);
    let mut node = Killed(
        node_command(&ws_script(&server, &id))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = collect(node.0.stdout.take().unwrap());
    let stderr = collect(node.0.stderr.take().unwrap());
    let first = stdout.next_line("the first status");
    assert_eq!(
        first,
        format!("Job {id}: pending (0%)"),
        "{}",
        stderr.text()
    );

    let worker = spawn_ferry(&["worker"], &server.store);
    let mut seen = vec![first];
    while !seen.last().unwrap().starts_with("closed") {
        seen.push(stdout.next_line("the job to complete"));
    }
    let exit = wait(&mut node.0, DEADLINE);
    drop(worker);
    assert!(
        exit.is_some_and(|e| e.success()),
        "node: {exit:?}: {seen:?}\n{}",
        stderr.text()
    );
    let n = seen.len();
    assert_eq!(
        seen[n - 2..],
        [
            format!("Job {id}: completed (100%)"),
            "closed 1000 job completed".to_owned()
        ],
        "{seen:?}"
    );
    // Anything in between is a `processing` step with its percentage, never repeated.
    for line in &seen[1..n - 2] {
        assert!(
            line.starts_with(&format!("Job {id}: processing (")),
            "{seen:?}"
        );
    }
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(unique, seen);

    // An unknown job: 404 before the upgrade, so the snippet sees an error (then an abnormal
    // close, which Node 20's own WebSocket never reports), and a plain GET the same 404
    // problem as `status/{id}`.
    let unknown = "00000000-0000-4000-8000-000000000000";
    let out = run(node_command(&ws_script(&server, unknown)), DEADLINE);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        matches!(
            (out.status.code(), &lines[..]),
            (Some(1), ["error"]) | (Some(0), ["error", "closed 1006 "])
        ),
        "{:?}: {stdout}",
        out.status
    );
    let (code, kind, body) = http::get(&server.url(&format!("/api/v1/batch/ws/{unknown}")), &[]);
    assert_eq!(
        (code, kind.as_str()),
        (404, "application/problem+json"),
        "{body}"
    );
    // A known job without the handshake: a client error that says so.
    let (code, kind, body) = http::get(&server.url(&format!("/api/v1/batch/ws/{id}")), &[]);
    assert!((400..500).contains(&code), "{code} {body}");
    assert_eq!(kind, "application/problem+json");
    assert!(body.contains("WebSocket"), "{body}");
}
