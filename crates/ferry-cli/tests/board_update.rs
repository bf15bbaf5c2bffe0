//! The monday.com board update, end to end: the board-update job file as its users wrote it
//! (`examples/board-update/board_update.toml`), a SQLite planning database, `ferry run` as a
//! child process, and the monday.com-style simulator on loopback.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{planning_db, BOARD_UPDATE_TOML};
use ferry_connectors::job::Checkpoint;
use ferry_sim::{SimConfig, Simulator, Stats};
use serde_json::{json, Value};

struct Fixture {
    dir: PathBuf,
    db: PathBuf,
    job: PathBuf,
    /// id -> (fob_date, country)
    rows: HashMap<u64, (String, String)>,
    poison: HashSet<u64>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn fixture(name: &str, n: u64, poison_every: u64) -> Fixture {
    let dir = std::env::temp_dir().join(format!("ferry-board-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("planning.db");
    let countries = ["US", "CN", "VN", "IN", "MX"];
    let mut rows = HashMap::new();
    let mut poison = HashSet::new();
    let mut table = Vec::new();
    for i in 0..n {
        let id = 5_000_000 + i;
        let date = format!("2025-{:02}-{:02}", 1 + i % 12, 1 + i % 28);
        let country = if poison_every > 0 && i % poison_every == poison_every / 2 {
            poison.insert(id);
            "INVALID".to_owned()
        } else {
            countries[(i % 5) as usize].to_owned()
        };
        table.push((id as i64, date.clone(), country.clone()));
        rows.insert(id, (date, country));
    }
    planning_db(&db, &table);
    let job = dir.join("board_update.toml");
    std::fs::write(&job, BOARD_UPDATE_TOML).unwrap();
    Fixture {
        dir,
        db,
        job,
        rows,
        poison,
    }
}

fn ferry(f: &Fixture, sim: &Simulator, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.arg("run").arg(&f.job).args(args);
    cmd.env("DATABASE_URL", &f.db)
        .env("MONDAY_API_TOKEN", "test-token")
        .env("MONDAY_API_URL", sim.url());
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn number_after(haystack: &str, marker: &str) -> u64 {
    let at = haystack
        .find(marker)
        .unwrap_or_else(|| panic!("`{marker}` not in:\n{haystack}"))
        + marker.len();
    haystack[at..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn dead_letters(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_5000_rows_5_poison_nothing_lost() {
    let f = fixture("faults", 5000, 1000).await;
    assert_eq!(f.poison.len(), 5);
    // 4 slots; 5 ms + 2 ms per mutation; more than 12 mutations time out (30 ms), so the
    // job file's batches of 15 time out and fall back 15 -> 5; 80 requests/s; 2 % 500s; 1 % of
    // requests applied and then dropped.
    let sim = ferry_sim::spawn(SimConfig {
        slots: 4,
        per_request: Duration::from_millis(5),
        per_mutation: Duration::from_millis(2),
        request_timeout: Duration::from_millis(30),
        rate_limit: 80,
        error_rate: 0.02,
        drop_rate: 0.01,
        seed: 7,
        poison_value: "INVALID".into(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let out = tokio::task::spawn_blocking({
        let mut cmd = ferry(&f, &sim, &["--execute", "--max_concurrent", "8"]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    let log = text(&out);
    assert_eq!(
        out.status.code(),
        Some(3),
        "dead letters make the exit code 3:\n{log}"
    );
    let stats: Stats = sim.stats();
    println!(
        "{log}\nsimulator: {} requests, {} x 429, {} timeouts, {} x 500, {} dropped",
        stats.requests, stats.rejected_429, stats.timeouts, stats.errors_500, stats.dropped
    );
    assert!(
        stats.rejected_429 > 0 && stats.timeouts > 0 && stats.errors_500 > 0 && stats.dropped > 0,
        "every fault happened"
    );

    // Every other row applied with its mapped values; none lost.
    for (id, (date, country)) in &f.rows {
        let applied = stats.items.get(id);
        if f.poison.contains(id) {
            assert!(
                applied.is_none_or(|s| s.applies == 0),
                "poison {id} applied"
            );
            continue;
        }
        let s = applied.unwrap_or_else(|| panic!("row {id} lost"));
        assert!(s.applies >= 1);
        assert_eq!(s.values.get("date4"), Some(&json!(date)), "row {id}");
        assert_eq!(s.values.get("country"), Some(&json!(country)), "row {id}");
    }
    // Each poison row dead-lettered alone, with the API's message.
    let dead = dead_letters(&f.dir.join("board_update.dead.jsonl"));
    let dead_keys: HashSet<u64> = dead
        .iter()
        .map(|d| d["key"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(dead_keys, f.poison);
    for d in &dead {
        assert_eq!(d["error"], "invalid value for column country: INVALID");
    }
    // Repeated applies come only from dropped connections, and the report counts them.
    let ambiguous = number_after(
        &log,
        "ambiguous failures (request sent, no complete answer; a retry may repeat an apply):",
    );
    assert_eq!(
        ambiguous, stats.dropped,
        "every drop is reported as ambiguous"
    );
    let repeats: u64 = stats
        .items
        .values()
        .map(|s| s.applies.saturating_sub(1))
        .sum();
    assert!(
        repeats <= stats.dropped * 15,
        "{repeats} repeated applies from {} dropped requests",
        stats.dropped
    );
    assert!(log.contains("4995 succeeded, 5 dead-lettered"), "{log}");
    // Progress lines (stderr is not a terminal here) carry the counted total.
    assert!(log.contains("/5000 ("), "progress shows done/total:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_midway_and_resumed_sends_nothing_confirmed_twice() {
    let f = fixture("kill", 3000, 0).await;
    let sim = ferry_sim::spawn(SimConfig {
        slots: 2,
        per_request: Duration::from_millis(20),
        per_mutation: Duration::from_millis(2),
        request_timeout: Duration::from_secs(5),
        rate_limit: 1000,
        poison_value: String::new(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut child = ferry(&f, &sim, &["--execute"]).spawn().unwrap();
    // Kill it once a third of the rows are applied.
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if sim.stats().mutations_applied >= 1000 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the kill"
        );
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Let requests that were in flight at the kill finish at the server.
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = sim.stats().mutations_applied;
        if now == last {
            break;
        }
        last = now;
    }
    let before = sim.stats();
    let confirmed = Checkpoint::open(&f.dir.join("board_update.checkpoint.db"))
        .await
        .unwrap()
        .settled_keys()
        .await
        .unwrap();
    assert!(
        !confirmed.is_empty() && confirmed.len() < 3000,
        "{} confirmed",
        confirmed.len()
    );

    let out = tokio::task::spawn_blocking({
        let mut cmd = ferry(&f, &sim, &["--execute", "--resume"]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert_eq!(
        number_after(&log, "resumed:"),
        confirmed.len() as u64,
        "{log}"
    );
    let after = sim.stats();
    for id in f.rows.keys() {
        let applies = after.items.get(id).map_or(0, |s| s.applies);
        assert!(applies >= 1, "row {id} never applied");
        if confirmed.contains(&id.to_string()) {
            let was = before.items.get(id).map_or(0, |s| s.applies);
            assert_eq!(
                applies, was,
                "row {id} was confirmed before the kill and sent again"
            );
        }
    }
    println!(
        "killed after {} applies; {} confirmed in the checkpoint; resume sent the rest",
        before.mutations_applied,
        confirmed.len()
    );
}
