//! The XML ingest example end to end (`examples/xml-ingest/`): generated orders -> `ferry
//! run` -> PostgreSQL with COPY, checked against the rows the generator wrote as CSV (count
//! and a checksum over every column of both tables), after bad records, after a SIGKILL and
//! `--resume`, and with PostgreSQL down. Each test works in its own schema of the database
//! `test` on 127.0.0.1:5432, dropped at the end.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/xml-ingest");

/// A schema holding the example's tables, and a data folder; both removed when dropped.
struct Scratch {
    schema: String,
    dir: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Self {
        let schema = format!("ferry_xml_{name}_{}", std::process::id());
        let dir = std::env::temp_dir().join(&schema);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let s = Scratch { schema, dir };
        s.psql(
            &format!(
                "DROP SCHEMA IF EXISTS {0} CASCADE; CREATE SCHEMA {0};",
                s.schema
            ),
            None,
        );
        let schema_sql = std::fs::read_to_string(Path::new(EXAMPLE).join("schema.sql")).unwrap();
        s.psql(&schema_sql, None);
        s
    }

    fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{}",
            self.schema
        )
    }

    /// Runs SQL (psql: `\copy` works, paths relative to the data folder); unaligned output.
    fn psql(&self, sql: &str, cwd: Option<&Path>) -> String {
        let mut child = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "test",
                "-v",
                "ON_ERROR_STOP=1",
                "-Atq",
            ])
            .env("PGOPTIONS", format!("-csearch_path={}", self.schema))
            .current_dir(cwd.unwrap_or(&self.dir))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("psql must be installed (PostgreSQL's client)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(sql.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{sql}\n{err}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn generate(&self, n: u64, extra: &[&str]) {
        let status = Command::new("python3")
            .arg(Path::new(EXAMPLE).join("generate.py"))
            .arg(n.to_string())
            .arg(self.dir.join("data"))
            .args(extra)
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn ferry(&self, extra: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.arg("run")
            .arg(Path::new(EXAMPLE).join("orders.toml"))
            .args([
                "--set",
                &format!(
                    "source.path={}",
                    self.dir.join("data/orders*.xml*").display()
                ),
            ])
            .args([
                "--set",
                &format!(
                    "dead_letters.path={}",
                    self.dir.join("dead.jsonl").display()
                ),
            ])
            .args([
                "--set",
                &format!(
                    "checkpoint.path={}",
                    self.dir.join("checkpoint.db").display()
                ),
            ])
            .args(extra)
            .env("DATABASE_URL", self.url())
            .env("RUST_LOG", "error");
        cmd
    }

    fn run(&self, extra: &[&str]) -> (Output, String) {
        let out = self.ferry(extra).output().unwrap();
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains("panicked"), "{text}");
        (out, text)
    }

    /// Counts and checksums of both tables beside those of the generator's CSV, loaded into
    /// temporary copies of the tables, as `name=value` lines (see `check.sql`).
    fn check(&self) -> Vec<(String, String)> {
        let sql = std::fs::read_to_string(Path::new(EXAMPLE).join("check.sql")).unwrap();
        let out = self.psql(&sql, Some(&self.dir.join("data")));
        out.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| {
            self.psql(
                &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema),
                None,
            )
        });
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn value<'a>(check: &'a [(String, String)], name: &str) -> &'a str {
    &check
        .iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("{name}: {check:?}"))
        .1
}

/// Asserts that both tables hold exactly the generator's rows.
fn assert_exact(check: &[(String, String)], orders: u64) {
    assert_eq!(value(check, "orders"), orders.to_string(), "{check:?}");
    assert_eq!(
        value(check, "orders"),
        value(check, "expected_orders"),
        "{check:?}"
    );
    assert_eq!(
        value(check, "lines"),
        value(check, "expected_lines"),
        "{check:?}"
    );
    assert_eq!(
        value(check, "orders_checksum"),
        value(check, "expected_orders_checksum")
    );
    assert_eq!(
        value(check, "lines_checksum"),
        value(check, "expected_lines_checksum")
    );
}

#[test]
fn every_order_lands_exactly_and_bad_records_are_dead_lettered() {
    let s = Scratch::new("exact");
    s.generate(3000, &["--gz", "--files", "3", "--bad", "--seed", "7"]);
    let (out, text) = s.run(&[]);
    // Six bad records (two per 1000 orders): dead-lettered, exit code 3.
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.contains("bad source records dead-lettered") && text.contains(": 6"),
        "{text}"
    );
    let check = s.check();
    assert_exact(&check, 3000);
    // Absent elements are NULL, present empty ones are empty strings.
    assert_eq!(
        value(&check, "null_emails"),
        value(&check, "expected_null_emails")
    );
    assert!(value(&check, "null_emails").parse::<u64>().unwrap() > 0);
    // Entities and CDATA are decoded (the generator writes both for the same texts).
    let decoded = s.psql(
        "SELECT count(*) FROM orders WHERE note LIKE '%<glass>%' OR customer_name LIKE '%& Sons'",
        None,
    );
    assert!(decoded.parse::<u64>().unwrap() > 0);
    let dead = std::fs::read_to_string(s.dir.join("dead.jsonl")).unwrap();
    let dead: Vec<serde_json::Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), 6);
    assert!(
        dead.iter()
            .all(|d| d["payload"]["offset"].as_u64().is_some()),
        "{dead:?}"
    );
    assert!(dead[1]["error"]
        .as_str()
        .unwrap()
        .ends_with("column `total`: `12,50` is not a decimal"));
    // A second run with --resume writes nothing again.
    let (out, text) = s.run(&["--resume"]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_exact(&s.check(), 3000);
}

#[test]
fn sigkill_mid_run_then_resume_is_exact() {
    let s = Scratch::new("kill");
    s.generate(12_000, &["--seed", "11"]);
    let mut child = s
        .ferry(&[
            "--set",
            "batch.max_items=500",
            "--set",
            "dispatch.max_concurrency=1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let n: u64 = s.psql("SELECT count(*) FROM orders", None).parse().unwrap();
        if n >= 1000 || started.elapsed() > Duration::from_secs(60) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let landed: u64 = s.psql("SELECT count(*) FROM orders", None).parse().unwrap();
    assert!(
        landed > 0 && landed < 12_000,
        "killed mid-run: {landed} rows"
    );
    let (out, text) = s.run(&["--resume"]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_exact(&s.check(), 12_000);
}

#[test]
fn postgres_down_is_one_clear_error_and_an_unmatched_path_is_a_warning() {
    let s = Scratch::new("down");
    s.generate(50, &[]);
    let (out, text) = s.run(&["--set", "handler.url=postgres://postgres@127.0.0.1:1/test"]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("connecting (COPY sink table `orders`)"),
        "{text}"
    );
    assert!(!text.contains("progress"), "{text}");
    let (out, text) = s.run(&["--set", "source.columns.coupon=\"promo/code\""]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("warning: source.columns.coupon: path `promo/code` matched nothing in any of the 50 records"),
        "{text}"
    );
}

#[test]
fn orders_kept_in_a_table_land_exactly_through_an_xml_stage_with_a_profile() {
    let s = Scratch::new("stage");
    s.generate(2000, &["--raw", "--seed", "11"]);
    let raw_sql = std::fs::read_to_string(Path::new(EXAMPLE).join("raw.sql")).unwrap();
    s.psql(&raw_sql, None);
    s.psql(
        "\\copy raw_orders FROM 'raw_orders.csv' CSV",
        Some(&s.dir.join("data")),
    );
    let profile = s.dir.join("profile.json");
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("run")
        .arg(Path::new(EXAMPLE).join("orders-from-table.toml"))
        .args(["--set", "checkpoint.enabled=false"])
        .args([
            "--set",
            &format!("dead_letters.path={}", s.dir.join("dead.jsonl").display()),
        ])
        .arg("--profile")
        .arg(&profile)
        .env("DATABASE_URL", s.url())
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert_exact(&s.check(), 2000);
    // The end report's profile: a line per step and the bottleneck.
    let steps: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("batch latency"))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| ["source", "xml", "sink"].contains(w))
        .collect();
    assert_eq!(steps, ["source", "xml", "sink"], "{text}");
    assert!(text.contains("\nbottleneck: "), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&profile).unwrap()).unwrap();
    let nodes = json["nodes"].as_array().unwrap();
    assert_eq!(nodes[1]["name"], "xml");
    assert_eq!(nodes[1]["items_in"], 2000);
    assert_eq!(nodes[1]["items_out"], 2000);
    assert_eq!(nodes[2]["items_out"], 2000);
    assert!(nodes[2]["latency_ms"]["p95"].as_f64().unwrap() > 0.0);
    assert!(!json["queue_samples"].as_array().unwrap().is_empty());
    let bottleneck = json["bottleneck"].as_str().unwrap();
    assert!(
        text.contains(&format!("bottleneck: {bottleneck} (busy ")),
        "{text}"
    );
}

#[test]
fn tune_prints_a_row_per_setting_and_the_best_set_line() {
    let s = Scratch::new("tune");
    s.generate(1500, &["--seed", "3"]);
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("tune")
        .arg(Path::new(EXAMPLE).join("orders.toml"))
        .args([
            "--sample",
            "1000",
            "--workers",
            "1,2",
            "--batch",
            "250,1000",
        ])
        .args([
            "--set",
            &format!("source.path={}", s.dir.join("data/orders.xml").display()),
        ])
        .args(["--set", &format!("handler.url={}", s.url())])
        .args(["--reset", "TRUNCATE order_lines, orders"])
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("bottleneck: "))
        .filter(|l| !l.starts_with("best"))
        .collect();
    assert_eq!(rows.len(), 4, "{text}");
    assert!(text.contains("\nbest: "), "{text}");
    let set_line = text.lines().last().unwrap();
    assert!(
        set_line.starts_with("--set source.workers=")
            && set_line.contains("--set batch.max_items=")
            && set_line.ends_with("--set batch.adaptive=false"),
        "{text}"
    );
    // The last setting's rows are there, once each: the reset emptied the tables before it.
    assert_eq!(s.psql("SELECT COUNT(*) FROM orders", None), "1000");
}
