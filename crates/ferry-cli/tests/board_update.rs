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
    let countries = ["US", "CN", "VN", "IN", "MX"];
    let mut poison = HashSet::new();
    let rows = (0..n)
        .map(|i| {
            let id = 5_000_000 + i;
            let date = format!("2025-{:02}-{:02}", 1 + i % 12, 1 + i % 28);
            // Antarctica: a country the formatter accepts and the simulator's poison.
            let country = if poison_every > 0 && i % poison_every == poison_every / 2 {
                poison.insert(id);
                POISON.to_owned()
            } else {
                countries[(i % 5) as usize].to_owned()
            };
            (id, date, country)
        })
        .collect();
    let mut f = fixture_rows(name, rows).await;
    f.poison = poison;
    f
}

/// The poison country of [`fixture`]: a valid code (Antarctica), rejected by the simulator.
const POISON: &str = "AQ";

/// A planning database holding `rows` (id, fob_date, country) and the board-update job.
async fn fixture_rows(name: &str, rows: Vec<(u64, String, String)>) -> Fixture {
    let dir = std::env::temp_dir().join(format!("ferry-board-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("planning.db");
    let table: Vec<(i64, String, String)> = rows
        .iter()
        .map(|(id, d, c)| (*id as i64, d.clone(), c.clone()))
        .collect();
    planning_db(&db, &table);
    let job = dir.join("board_update.toml");
    std::fs::write(&job, BOARD_UPDATE_TOML).unwrap();
    Fixture {
        dir,
        db,
        job,
        rows: rows.into_iter().map(|(id, d, c)| (id, (d, c))).collect(),
        poison: HashSet::new(),
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
        poison_value: POISON.into(),
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
        // Shaped for the board's date and country columns.
        assert_eq!(s.values["date4"], json!({ "date": date }), "row {id}");
        assert_eq!(
            s.values["country"]["countryCode"],
            json!(country),
            "row {id}"
        );
    }
    // Each poison row dead-lettered alone, with the API's message.
    let dead = dead_letters(&f.dir.join("board_update.dead.jsonl"));
    let dead_keys: HashSet<u64> = dead
        .iter()
        .map(|d| d["key"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(dead_keys, f.poison);
    for d in &dead {
        assert_eq!(d["error"], "invalid value for column country: AQ");
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

/// The rows of the column-formatting tests: countries by name, by code, and one unknown.
fn country_rows() -> Vec<(u64, String, String)> {
    [
        (1, "2025-01-02", "Germany"),
        (2, "2025-01-03T08:00:00Z", "de"),
        (3, "4 February 2025", "Atlantis"),
        (4, "2025-02-05", "viet nam"),
        (5, "05.02.2025", "US"),
    ]
    .into_iter()
    .map(|(id, d, c)| (id, d.to_owned(), c.to_owned()))
    .collect()
}

/// A simulator that refuses values not shaped for their column, as monday.com does.
async fn checking_sim() -> Simulator {
    ferry_sim::spawn(SimConfig {
        check_values: true,
        poison_value: String::new(),
        rate_limit: 1000,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn countries_by_name_and_code_applied_an_unknown_one_dead_lettered_with_the_reason() {
    let f = fixture_rows("countries", country_rows()).await;
    let sim = checking_sim().await;
    let out = tokio::task::spawn_blocking({
        let mut cmd = ferry(&f, &sim, &["--execute"]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    let log = text(&out);
    assert_eq!(out.status.code(), Some(3), "one dead letter:\n{log}");
    let stats = sim.stats();
    assert_eq!(stats.column_queries, 1, "the board is asked once per run");
    assert_eq!(stats.value_rejected, 0, "every value sent was shaped right");
    let country = |id: u64| stats.items[&id].values["country"].clone();
    let date = |id: u64| stats.items[&id].values["date4"].clone();
    let germany = json!({"countryCode": "DE", "countryName": "Germany"});
    assert_eq!(country(1), germany, "by name");
    assert_eq!(country(2), germany, "by code");
    assert_eq!(country(4)["countryCode"], "VN");
    assert_eq!(country(5)["countryCode"], "US");
    assert_eq!(date(1), json!({"date": "2025-01-02"}));
    assert_eq!(date(2), json!({"date": "2025-01-03"}));
    assert_eq!(date(5), json!({"date": "2025-02-05"}));
    assert!(
        !stats.items.contains_key(&3),
        "the unknown country was sent"
    );
    let dead = dead_letters(&f.dir.join("board_update.dead.jsonl"));
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["key"], "3");
    assert_eq!(
        dead[0]["error"],
        "column `country` (country) of item `3`: cannot send \"Atlantis\": not an ISO 3166 country code or English country name"
    );
    assert!(log.contains("4 succeeded, 1 dead-lettered"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_shows_each_mapped_column_with_its_type_and_the_shaped_values() {
    let f = fixture_rows("dry-columns", country_rows()).await;
    let sim = checking_sim().await;
    let out = tokio::task::spawn_blocking({
        let mut cmd = ferry(&f, &sim, &["--dry_run"]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    let log = text(&out);
    assert!(
        log.contains("column types of board 8709134353 (asked once for this run):\n  date4: date (FOB Date)\n  country: country (Country)"),
        "{log}"
    );
    assert!(
        log.contains(r#"{\\\"countryCode\\\":\\\"DE\\\",\\\"countryName\\\":\\\"Germany\\\"}"#),
        "{log}"
    );
    // The unknown country is named before anything is sent; a dry run sends nothing.
    assert!(
        log.contains("1 cannot be rendered") && log.contains("Atlantis"),
        "{log}"
    );
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert_eq!(sim.stats().mutations_applied, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapped_column_missing_from_the_board_stops_the_run_before_sending() {
    let f = fixture_rows("no-column", country_rows()).await;
    std::fs::write(
        &f.job,
        BOARD_UPDATE_TOML.replace("\"date4\" = \"fob_date\"", "\"date9\" = \"fob_date\""),
    )
    .unwrap();
    let sim = checking_sim().await;
    let out = tokio::task::spawn_blocking({
        let mut cmd = ferry(&f, &sim, &["--execute"]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains(
            "board 8709134353: cannot read its column types: the board has no column `date9`"
        ),
        "{log}"
    );
    assert_eq!(sim.stats().mutations_applied, 0);
}
