//! Where `ferry serve` and `ferry worker` take their settings from: a flag, else its
//! `FERRY_*` environment variable, else a KubeSentiment `ASYNC_BATCH_*` variable, else the
//! `--config` file, else the default; each source shown by what the running service does.
//! Also `--log-format json` and a worker's own `/metrics` and `/healthz` port.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{collect, http, Collected, Killed, TempDir};
use serde_json::Value;

/// Every variable these tests set, removed from what the child inherits first.
const VARIABLES: &[&str] = &[
    "FERRY_CONFIG",
    "FERRY_QUEUE_LIMIT_HIGH",
    "ASYNC_BATCH_PRIORITY_HIGH_LIMIT",
    "FERRY_LOG_FORMAT",
    "FERRY_STORE",
    "FERRY_METRICS_ADDR",
    "FERRY_TENANT_MAX_QUEUED",
    "FERRY_TENANT_MAX_IN_FLIGHT",
    "ASYNC_BATCH_MAX_BATCH_SIZE",
    "RUST_LOG",
];

/// `ferry ARGS` with `env`, killed on drop, and its stderr.
fn ferry(args: &[&str], env: &[(&str, &str)]) -> (Killed, Collected) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    for var in VARIABLES {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = collect(child.stderr.take().unwrap());
    (Killed(child), stderr)
}

/// Waits for the line containing `marker` and returns the address after it.
fn address_after(out: &Collected, marker: &str) -> String {
    loop {
        let line = out.next_line(marker);
        if let Some(rest) = line.split(marker).nth(1) {
            return rest.split_whitespace().next().unwrap().to_owned();
        }
    }
}

/// The high-priority queue limit a `ferry serve` started with `args` and `env` reports.
fn high_limit(store: &Path, args: &[&str], env: &[(&str, &str)]) -> u64 {
    let store = store.to_str().unwrap();
    let mut all = vec!["serve", "--listen", "127.0.0.1:0", "--store", store];
    all.extend_from_slice(args);
    let (_server, out) = ferry(&all, env);
    let addr = address_after(&out, "listening on http://");
    let (code, _, body) = http::get(&format!("http://{addr}/api/v1/batch/queue/status"), &[]);
    assert_eq!(code, 200, "{body}");
    let status: Value = serde_json::from_str(&body).unwrap();
    status["queues"]["high"]["limit"].as_u64().unwrap()
}

#[test]
fn a_flag_beats_the_environment_which_beats_the_file() {
    let dir = TempDir::new("settings-precedence");
    let store = dir.0.join("s.db");
    let config = dir.0.join("ferry.toml");
    // A handler table beside the settings: the settings ignore it, the handlers load it.
    std::fs::write(
        &config,
        format!(
            "[handler.archive]\ntype = \"jsonl\"\npath = {:?}\n\n[serve]\nqueue_limit_high = 13\n",
            dir.0.join("archive.jsonl").to_str().unwrap()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    assert_eq!(high_limit(&store, &[], &[]), 100, "the default");
    assert_eq!(
        high_limit(&store, &["--config", config], &[]),
        13,
        "the file"
    );
    assert_eq!(
        high_limit(&store, &[], &[("FERRY_CONFIG", config)]),
        13,
        "the file named by FERRY_CONFIG"
    );
    let kubesentiment = ("ASYNC_BATCH_PRIORITY_HIGH_LIMIT", "14");
    assert_eq!(
        high_limit(&store, &["--config", config], &[kubesentiment]),
        14,
        "ASYNC_BATCH_* over the file"
    );
    let ferry_env = ("FERRY_QUEUE_LIMIT_HIGH", "12");
    assert_eq!(
        high_limit(&store, &["--config", config], &[kubesentiment, ferry_env]),
        12,
        "FERRY_* over ASYNC_BATCH_*"
    );
    assert_eq!(
        high_limit(
            &store,
            &["--config", config, "--queue-limit-high", "11"],
            &[kubesentiment, ferry_env]
        ),
        11,
        "the flag over everything"
    );
}

/// The statuses of two submissions of two texts each to a `ferry serve --no-worker` (nothing
/// is claimed, so the first stays queued) started with `args` and `env` on a fresh store.
fn two_submissions(dir: &Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> (u16, u16) {
    let store = dir.join(format!("{name}.db"));
    let store = store.to_str().unwrap();
    let mut all = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--store",
        store,
        "--no-worker",
    ];
    all.extend_from_slice(args);
    let (_server, out) = ferry(&all, env);
    let addr = address_after(&out, "listening on http://");
    let url = format!("http://{addr}/api/v1/batch/predict");
    let submit = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let body = serde_json::json!({"texts": ["good", "bad"]});
                let r = reqwest::Client::new()
                    .post(&url)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                r.status().as_u16()
            })
    };
    (submit(), submit())
}

#[test]
fn the_tenant_queued_quota_comes_from_flag_environment_or_file() {
    let dir = TempDir::new("settings-quota");
    let config = dir.0.join("ferry.toml");
    std::fs::write(
        &config,
        "[serve]\ntenant_max_queued = 3\ntenant_max_in_flight = 2\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    assert_eq!(
        two_submissions(&dir.0, "none", &[], &[]),
        (200, 200),
        "unlimited"
    );
    assert_eq!(
        two_submissions(&dir.0, "file", &["--config", config], &[]),
        (200, 429),
        "3 from the file: 2 queued + 2 more is over"
    );
    let env = ("FERRY_TENANT_MAX_QUEUED", "4");
    assert_eq!(
        two_submissions(&dir.0, "env", &["--config", config], &[env]),
        (200, 200),
        "4 from FERRY_TENANT_MAX_QUEUED over the file"
    );
    assert_eq!(
        two_submissions(
            &dir.0,
            "flag",
            &["--config", config, "--tenant-max-queued", "3"],
            &[env]
        ),
        (200, 429),
        "the flag over the environment"
    );
}

#[test]
fn a_bad_settings_file_names_the_key_and_line() {
    let dir = TempDir::new("settings-bad");
    let config = dir.0.join("ferry.toml");
    std::fs::write(
        &config,
        "[serve]\nlisten = \"127.0.0.1:0\"\nqueue_limit_hihg = 3\n",
    )
    .unwrap();
    let (mut child, out) = ferry(&["serve", "--config", config.to_str().unwrap()], &[]);
    let status = common::wait(&mut child.0, Duration::from_secs(30)).unwrap();
    assert_eq!(status.code(), Some(1));
    let text = String::from_utf8(out.finish()).unwrap();
    assert!(
        text.contains("queue_limit_hihg") && text.contains("line 3") && text.contains("ferry.toml"),
        "{text}"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = TempDir::new("settings-json");
    let store = dir.0.join("s.db");
    let (_server, out) = ferry(
        &["--log", "info", "serve", "--listen", "127.0.0.1:0"],
        &[
            ("FERRY_LOG_FORMAT", "json"),
            ("FERRY_STORE", store.to_str().unwrap()),
        ],
    );
    let event = loop {
        let line = out.next_line("the `listening` log event");
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            if v["fields"]["message"] == "listening" {
                break v;
            }
        }
    };
    assert_eq!(event["level"], "INFO", "{event}");
    assert!(
        event["fields"]["addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{event}"
    );
    assert!(event["timestamp"].is_string(), "{event}");
}

#[test]
fn a_worker_serves_metrics_and_health_on_its_own_port() {
    let dir = TempDir::new("settings-worker");
    let config = dir.0.join("ferry.toml");
    std::fs::write(
        &config,
        format!(
            "[worker]\nstore = {:?}\nmetrics_addr = \"127.0.0.1:0\"\nlease = \"5s\"\n\
             tenant_max_in_flight = 8\n",
            dir.0.join("s.db").to_str().unwrap()
        ),
    )
    .unwrap();
    let (_worker, out) = ferry(&["worker", "--config", config.to_str().unwrap()], &[]);
    let addr = address_after(&out, "/metrics and /healthz on http://");
    let (code, _, body) = http::get(&format!("http://{addr}/healthz"), &[]);
    assert_eq!((code, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (code, _, body) = http::get(&format!("http://{addr}/readyz"), &[]);
    assert_eq!(code, 200, "{body}");
    let (code, kind, metrics) = http::get(&format!("http://{addr}/metrics"), &[]);
    assert_eq!(code, 200);
    assert!(kind.starts_with("text/plain"), "{kind}");
    for series in [
        "async_batch_jobs_active 0",
        "async_batch_throughput_tps 0",
        "async_batch_queue_size 0",
        "async_batch_priority_medium_limit 500",
    ] {
        assert!(
            metrics.lines().any(|l| l == series),
            "{series} missing:\n{metrics}"
        );
    }
}
