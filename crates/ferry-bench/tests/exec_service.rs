//! A Python handler behind the job service, crashing on purpose: `ferry serve --no-worker`
//! and two `ferry worker`s on PostgreSQL, all with `--config ferry.toml` naming an `exec`
//! handler written with the Python helper (`examples/exec-handlers/ferry_exec.py`). A job of
//! 10,000 items, one of them poison (the handler raises for it); midway one handler child
//! process is SIGKILLed, then one worker. Every item must end with exactly one result or one
//! dead letter (the poison item, with the handler's exception), none with both, none twice;
//! the killed child must have been replaced, and the killed worker's children must exit.
//!
//! It lives beside the crash test (`crash.rs`) because it reads the store's tables directly.
//! The database is a fresh one per run, so `ferry serve` needs no schema flag. The `ferry`
//! binary is `$FERRY_BIN`, else the one in this target directory, built first if missing.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{ferry_binary, Process};
use serde_json::{json, Value};
use sqlx::postgres::{PgPool, PgPoolOptions};

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";
const ITEMS: usize = 10_000;
const POISON: usize = 4_321;

/// The child processes of `pid` (from `/proc/*/stat`).
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so read after its last ')'.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..]
            .split_whitespace()
            .collect();
        if fields.len() > 1 && fields[0] != "Z" && fields[1] == pid.to_string() {
            out.push(child);
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s[s.rfind(')').unwrap() + 1..].split_whitespace().next();
            state != Some("Z")
        })
        .unwrap_or(false)
}

/// The handler: the Python helper's `serve`, 1 ms per item, raising for the poison item.
fn write_config(dir: &Path) -> PathBuf {
    let helper_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/exec-handlers");
    let script = dir.join("score.py");
    std::fs::write(
        &script,
        format!(
            r#"import os, sys, time
sys.path.insert(0, {helper:?})
from ferry_exec import serve

def handle(items):
    time.sleep(0.001 * len(items))
    out = []
    for p in items:
        if p["n"] == {POISON}:
            raise ValueError("poison item %d" % p["n"])
        out.append({{"n": p["n"], "pid": os.getpid()}})
    return out

serve(handle)
"#,
            helper = helper_dir.canonicalize().unwrap().to_string_lossy(),
        ),
    )
    .unwrap();
    let config = dir.join("ferry.toml");
    std::fs::write(
        &config,
        format!(
            r#"# Service settings would sit here too; only [handler.*] tables are handlers.
[handler.score]
type = "exec"
program = "python3"
args = [{script:?}]
workers = 2

[handler.score.batch]
max_items = 100
adaptive = false

[handler.score.dispatch]
max_concurrency = 2
timeout = "10s"
"#,
            script = script.to_string_lossy(),
        ),
    )
    .unwrap();
    config
}

/// Starts `ferry serve --no-worker` and returns it with its address (from its first line).
fn serve(url: &str, config: &Path) -> (Process, String) {
    let mut child = Command::new(ferry_binary())
        .args([
            "serve",
            "--no-worker",
            "--listen",
            "127.0.0.1:0",
            "--store",
            url,
        ])
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let banner = lines.next().unwrap().unwrap();
    std::thread::spawn(move || lines.for_each(|l| eprintln!("serve: {}", l.unwrap_or_default())));
    let addr = banner
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {banner:?}"))
        .to_owned();
    (Process(child), format!("http://{addr}"))
}

fn worker(url: &str, id: &str, config: &Path) -> Process {
    Process(
        Command::new(ferry_binary())
            .args(["worker", "--store", &format!("{url}?application_name={id}")])
            .args(["--id", id, "--lease", "3s"])
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    )
}

async fn pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .unwrap()
}

async fn count(db: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_handler_survives_a_killed_child_and_a_killed_worker() {
    let started = Instant::now();
    let name = format!("ferry_exec_{}", std::process::id());
    let admin = pool(&format!("{SERVER}/test")).await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    let url = format!("{SERVER}/{name}");
    let dir = std::env::temp_dir().join(&name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = write_config(&dir);

    eprintln!(
        "database created {:.1} s in",
        started.elapsed().as_secs_f64()
    );
    let (server, base) = serve(&url, &config);
    eprintln!("serve up {:.1} s in", started.elapsed().as_secs_f64());
    let http = reqwest::Client::new();
    let handlers: Value = http
        .get(format!("{base}/v1/handlers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        handlers["handlers"]
            .as_array()
            .unwrap()
            .contains(&json!("score")),
        "{handlers}"
    );
    assert!(
        children_of(server.0.id()).is_empty(),
        "an API without a worker starts no handler child"
    );
    let mut victim = worker(&url, "exec-victim", &config);
    let survivor = worker(&url, "exec-survivor", &config);

    eprintln!(
        "workers started {:.1} s in",
        started.elapsed().as_secs_f64()
    );
    let items: Vec<Value> = (0..ITEMS)
        .map(|n| json!({"key": n.to_string(), "payload": {"n": n}}))
        .collect();
    let response = http
        .post(format!("{base}/v1/jobs"))
        .json(&json!({"handler": "score", "items": items}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let job: Value = response.json().await.unwrap();
    let job_id = job["id"].as_str().unwrap().to_owned();
    eprintln!("job submitted {:.1} s in", started.elapsed().as_secs_f64());
    let db = pool(&url).await;

    // Midway: SIGKILL one of the survivor's handler children, then the victim worker while
    // it holds leases.
    let done_sql = "SELECT count(*) FROM items WHERE state IN ('done', 'dead')";
    let deadline = Instant::now() + Duration::from_secs(60);
    let (killed_child, children_before) = loop {
        assert!(
            Instant::now() < deadline,
            "a quarter of the items were not done in 60 s"
        );
        let done = count(&db, done_sql).await;
        assert!(done < ITEMS as i64, "the job finished before the kills");
        let children = children_of(survivor.0.id());
        if done >= ITEMS as i64 / 4 && children.len() == 2 {
            let pid = children[0];
            eprintln!(
                "killing a handler child at {done} done, {:.1} s in",
                started.elapsed().as_secs_f64()
            );
            let status = Command::new("kill").args(["-9", &pid.to_string()]).status();
            assert!(status.unwrap().success());
            break (pid, children);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let victim_children = children_of(victim.0.id());
    assert_eq!(
        victim_children.len(),
        2,
        "the victim runs two handler children"
    );
    let (done_at_kill, victim_held) = loop {
        assert!(
            Instant::now() < deadline,
            "half the items were not done in 60 s"
        );
        let done = count(&db, done_sql).await;
        assert!(
            done < ITEMS as i64,
            "the job finished before the worker could be killed"
        );
        let held = count(
            &db,
            "SELECT count(*) FROM items WHERE state = 'leased' AND lease_owner = 'exec-victim'",
        )
        .await;
        if done >= ITEMS as i64 / 2 && held > 0 {
            victim.0.kill().unwrap();
            break (done, held);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    victim.0.wait().unwrap();
    eprintln!(
        "killed handler child {killed_child}, then the victim worker at {done_at_kill} of \
         {ITEMS} items done, holding {victim_held} leases, {:.1} s in",
        started.elapsed().as_secs_f64()
    );

    // The survivor finishes everything, the victim's items included.
    let finished = loop {
        let status: Value = http
            .get(format!("{base}/v1/jobs/{job_id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["status"] == "completed" || status["status"] == "failed" {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the job did not finish: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let counts = &finished["counts"];
    assert_eq!(
        (
            counts["succeeded"].as_u64(),
            counts["failed"].as_u64(),
            counts["cancelled"].as_u64()
        ),
        (Some(ITEMS as u64 - 1), Some(1), Some(0)),
        "{finished}"
    );

    // Exactly one outcome per item: a result or a dead letter, never both, never two.
    let results = count(&db, "SELECT count(*) FROM results").await;
    let dead = count(&db, "SELECT count(*) FROM dead_letters").await;
    assert_eq!((results, dead), (ITEMS as i64 - 1, 1));
    let both = count(
        &db,
        "SELECT count(*) FROM results r JOIN dead_letters d ON d.item_id = r.item_id",
    )
    .await;
    assert_eq!(both, 0, "items with a result and a dead letter");
    let neither = count(
        &db,
        "SELECT count(*) FROM items i WHERE NOT EXISTS (SELECT 1 FROM results r WHERE r.item_id = i.id) \
         AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.item_id = i.id)",
    )
    .await;
    assert_eq!(neither, 0, "items without an outcome");
    let distinct = count(&db, "SELECT count(DISTINCT item_id) FROM results").await;
    assert_eq!(distinct, results, "an item with two results");
    // Each result is its own item's (the handler echoes `n`).
    let mismatched = count(
        &db,
        "SELECT count(*) FROM results r JOIN items i ON i.id = r.item_id \
         WHERE (r.result->>'n') IS DISTINCT FROM (i.payload->>'n')",
    )
    .await;
    assert_eq!(mismatched, 0);
    // The dead letter is the poison item, with the handler's exception.
    let (key, error): (String, String) = sqlx::query_as(
        "SELECT i.key, d.error FROM dead_letters d JOIN items i ON i.id = d.item_id",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(key, POISON.to_string());
    assert_eq!(error, format!("ValueError: poison item {POISON}"));

    // The killed child was replaced: the survivor recorded results from a child started
    // after the kill, and still runs two.
    let pids: Vec<i64> =
        sqlx::query_scalar("SELECT DISTINCT (r.result->>'pid')::bigint FROM results r")
            .fetch_all(&db)
            .await
            .unwrap();
    let before: HashSet<i64> = children_before
        .iter()
        .chain(&victim_children)
        .map(|p| i64::from(*p))
        .collect();
    assert!(
        pids.iter().any(|p| !before.contains(p)),
        "no result came from a restarted child: {pids:?} vs {before:?}"
    );
    assert!(!alive(killed_child));
    assert_eq!(children_of(survivor.0.id()).len(), 2);
    // The killed worker's children saw their stdin close and exited.
    let deadline = Instant::now() + Duration::from_secs(10);
    while victim_children.iter().any(|p| alive(*p)) {
        assert!(
            Instant::now() < deadline,
            "the killed worker's children linger"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "{ITEMS} items: {results} results, {dead} dead letter, {} handler child pids, in {:.1} s",
        pids.len(),
        started.elapsed().as_secs_f64()
    );

    drop((server, survivor, db));
    // The workers' connections must be gone before the database can be dropped.
    sqlx::query(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .execute(&admin)
    .await
    .unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&admin)
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
