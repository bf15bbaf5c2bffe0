//! The market-breadth example end to end (`examples/market-breadth/`): `ferry run` of its
//! phased job file on generated SQLite data, checked against pandas, re-run incrementally
//! after new days, killed with SIGKILL in phase 1 and resumed, and fed bad input.
//!
//! Needs `python3` (the example's generator) and, for the pandas check, a Python with pandas:
//! `FERRY_PYTHON`, else the venv `scripts/py-env.sh` makes (`target/py`, or `FERRY_PY_ENV`).
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{run, Killed, TempDir};

const DEADLINE: Duration = Duration::from_secs(300);

fn example(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/market-breadth")
        .join(file)
}

struct Market {
    dir: TempDir,
}

impl Market {
    /// A directory with the example's job file and `tickers` x `days` of prices.
    fn new(name: &str, tickers: u32, days: u32) -> Market {
        let dir = TempDir::new(&format!("market-{name}"));
        std::fs::copy(
            example("market-breadth.toml"),
            dir.0.join("market-breadth.toml"),
        )
        .unwrap();
        let m = Market { dir };
        m.generate(tickers, days, false);
        m
    }

    fn db(&self) -> PathBuf {
        self.dir.0.join("market.db")
    }

    fn job(&self) -> PathBuf {
        self.dir.0.join("market-breadth.toml")
    }

    fn generate(&self, tickers: u32, days: u32, append: bool) {
        let mut cmd = Command::new("python3");
        cmd.arg(example("generate.py"))
            .arg("--db")
            .arg(self.db())
            .args([
                "--tickers",
                &tickers.to_string(),
                "--days",
                &days.to_string(),
            ]);
        if append {
            cmd.arg("--append");
        }
        let out = run(cmd, DEADLINE);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs SQL statements on the database.
    fn sql(&self, script: &str) {
        let mut cmd = Command::new("python3");
        cmd.args([
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()",
        ])
        .arg(self.db())
        .arg(script);
        let out = run(cmd, DEADLINE);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// One query's rows, one `repr` per line (floats exactly).
    fn rows(&self, query: &str) -> String {
        let mut cmd = Command::new("python3");
        cmd.args([
            "-c",
            "import sqlite3, sys\nfor r in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]): print(repr(r))",
        ])
        .arg(self.db())
        .arg(query);
        let out = run(cmd, DEADLINE);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Both output tables, in key order.
    fn tables(&self) -> String {
        self.rows("SELECT * FROM indicators ORDER BY ticker, date")
            + &self.rows("SELECT * FROM breadth ORDER BY date")
    }

    fn ferry(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.arg("run")
            .arg(self.job())
            .args(args)
            .env("MARKET_DB", format!("sqlite:{}", self.db().display()));
        cmd
    }

    /// `ferry run`: its exit code, stdout and stderr.
    fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let Output {
            status,
            stdout,
            stderr,
        } = run(self.ferry(args), DEADLINE);
        (
            status.code(),
            String::from_utf8_lossy(&stdout).into_owned(),
            String::from_utf8_lossy(&stderr).into_owned(),
        )
    }

    /// The same prices in a fresh directory, computed from scratch: the full recomputation.
    fn recomputed(&self, name: &str) -> String {
        let fresh = TempDir::new(&format!("market-{name}-fresh"));
        std::fs::copy(self.job(), fresh.0.join("market-breadth.toml")).unwrap();
        std::fs::copy(self.db(), fresh.0.join("market.db")).unwrap();
        let m = Market { dir: fresh };
        m.sql("DELETE FROM indicators; DELETE FROM breadth; DROP TABLE IF EXISTS ferry_indicator_state;");
        let (code, out, err) = m.run(&[]);
        assert_eq!(code, Some(0), "{out}\n{err}");
        m.tables()
    }
}

fn python_with_pandas() -> PathBuf {
    if let Some(p) = std::env::var_os("FERRY_PYTHON") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = std::env::var_os("FERRY_PY_ENV")
        .map_or_else(|| root.join("target/py"), PathBuf::from)
        .join("bin/python");
    let works = |p: &Path| {
        Command::new(p)
            .args(["-c", "import pandas"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works(&venv) {
        return venv;
    }
    let mut cmd = Command::new("bash");
    cmd.arg(root.join("scripts/py-env.sh"));
    let out = run(cmd, Duration::from_secs(900));
    let made = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(works(&made), "{} has no pandas", made.display());
    made
}

#[test]
fn tables_equal_pandas_and_bad_tickers_are_dead_lettered() {
    let m = Market::new("pandas", 40, 260);
    // A ticker that starts later (not bad data), one with a NULL close, one with 3 rows.
    m.sql(
        "DELETE FROM prices WHERE ticker = 'T00003' AND date < '2015-05-01';
         UPDATE prices SET close = NULL WHERE ticker = 'T00005' AND date = '2015-03-02';
         DELETE FROM prices WHERE ticker = 'T00007' AND date > '2015-01-06';",
    );
    let (code, out, err) = m.run(&[]);
    assert_eq!(code, Some(3), "dead letters exit 3\n{out}\n{err}");
    assert!(out.contains("== phase `indicators`: completed"), "{out}");
    assert!(
        out.contains("38 tickers computed, 2 dead-lettered"),
        "{out}"
    );
    assert!(out.contains("260 dates computed, 0 dead-lettered"), "{out}");
    let letters =
        std::fs::read_to_string(m.dir.0.join("market-breadth.indicators.dead.jsonl")).unwrap();
    assert!(
        letters
            .contains("close is NULL on row 42 (2015-03-02): a ticker needs a close on every row"),
        "{letters}"
    );
    assert!(
        letters.contains("3 rows: a ticker needs at least 5 rows of prices"),
        "{letters}"
    );
    assert_eq!(
        m.rows("SELECT COUNT(*) FROM indicators WHERE ticker IN ('T00005', 'T00007')"),
        "(0,)\n"
    );
    assert_eq!(
        m.rows("SELECT MIN(tickers), MAX(tickers) FROM breadth"),
        "(37, 38)\n"
    );
    let mut check = Command::new(python_with_pandas());
    check
        .arg(example("pandas_breadth.py"))
        .args(["check", "--db"])
        .arg(m.db());
    let out = run(check, DEADLINE);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("indicators: 9795 rows x 12 values compared, 0 differ"),
        "{text}"
    );
    assert!(
        text.contains("breadth: 260 rows x 9 values compared, 0 differ"),
        "{text}"
    );
}

#[test]
fn a_rerun_after_new_days_writes_only_them_and_equals_a_full_recomputation() {
    let m = Market::new("incremental", 500, 60);
    let (code, out, err) = m.run(&[]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains("500 tickers computed, 0 dead-lettered, 30000 rows written"),
        "{out}"
    );
    // Each phase read 500 x 60 rows: phase 1 the prices, phase 2 the indicator rows.
    assert_eq!(out.matches("; 30000 source rows read").count(), 2, "{out}");
    m.generate(500, 5, true);
    let (code, out, err) = m.run(&[]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains("500 tickers computed, 0 dead-lettered, 2500 rows written"),
        "{out}"
    );
    assert!(
        out.contains("5 dates computed, 0 dead-lettered, 5 rows written"),
        "{out}"
    );
    // Phase 1 read only the new days; phase 2 folds every row again and leaves out the 60
    // dates whose row is the same.
    assert!(out.contains("; 2500 source rows read"), "{out}");
    assert!(out.contains("; 32500 source rows read"), "{out}");
    assert!(
        out.contains("unchanged: 60 dates not written (the sink holds the same row)"),
        "{out}"
    );
    assert_eq!(m.tables(), m.recomputed("incremental"));
}

#[test]
fn sigkill_in_phase_one_then_resume_runs_the_rest_and_phase_two_once() {
    let m = Market::new("sigkill", 2000, 200);
    let mut cmd = m.ferry(&[]);
    let mut child = Killed(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Kill once phase 1 has checkpointed some tickers, before it completes.
    let checkpoint = m.dir.0.join("market-breadth.indicators.checkpoint.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    loop {
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "phase 1 ended before it could be killed"
        );
        assert!(started.elapsed() < DEADLINE, "no ticker checkpointed");
        let recorded = rt.block_on(async {
            match ferry_connectors::job::Checkpoint::open(&checkpoint).await {
                Ok(c) => c.len().await.unwrap_or(0),
                Err(_) => 0,
            }
        });
        if recorded > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert_eq!(m.rows("SELECT COUNT(*) FROM breadth"), "(0,)\n");
    let (code, out, err) = m.run(&[]);
    assert_eq!(
        code,
        Some(1),
        "a checkpoint holds work: --resume or --restart\n{out}"
    );
    assert!(err.contains("pass --resume to continue it"), "{err}");
    let (code, out, err) = m.run(&["--resume"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("== phase `indicators`: completed"), "{out}");
    assert!(
        out.contains("200 dates computed, 0 dead-lettered, 200 rows written"),
        "{out}"
    );
    assert_eq!(
        m.rows("SELECT COUNT(*), COUNT(DISTINCT ticker) FROM indicators"),
        "(400000, 2000)\n"
    );
    assert_eq!(m.tables(), m.recomputed("sigkill"));
}

#[test]
fn a_missing_table_and_an_unknown_after_are_clear_errors() {
    let m = Market::new("bad", 3, 10);
    m.sql("DROP TABLE prices;");
    let (code, out, err) = m.run(&[]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(err.contains("phase `indicators`: source query"), "{err}");
    assert!(err.contains("no such table: prices"), "{err}");

    let text = std::fs::read_to_string(m.job())
        .unwrap()
        .replace("after = \"indicators\"", "after = \"indicatorz\"");
    std::fs::write(m.job(), text).unwrap();
    let (code, out, err) = m.run(&[]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        err.contains("`phase.after`: phase `breadth` runs after `indicatorz`, but no phase is named `indicatorz`; the phases are: indicators, breadth"),
        "{err}"
    );
}

/// PostgreSQL by URL (`127.0.0.1:5432`, user `postgres`, a database of the test's own): the
/// same job file, the same prices, the same values as on SQLite, bit for bit.
#[test]
fn postgresql_gives_the_values_of_sqlite() {
    let m = Market::new("pg", 30, 120);
    let (code, out, err) = m.run(&[]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let name = format!("ferry_market_{}", std::process::id());
    let admin = "postgres://postgres@127.0.0.1:5432/postgres";
    let psql = |url: &str, sql: &str| {
        let mut cmd = Command::new("psql");
        cmd.args([
            url,
            "-v",
            "ON_ERROR_STOP=1",
            "-tAF|",
            "-c",
            "SET extra_float_digits = 3",
            "-c",
            sql,
        ]);
        let out = run(cmd, DEADLINE);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    psql(admin, &format!("DROP DATABASE IF EXISTS {name}"));
    psql(admin, &format!("CREATE DATABASE {name}"));
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let mut gen = Command::new("python3");
    gen.arg(example("generate.py"))
        .args(["--db", &url, "--tickers", "30", "--days", "120"]);
    let g = run(gen, DEADLINE);
    assert!(g.status.success(), "{}", String::from_utf8_lossy(&g.stderr));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.arg("run")
        .arg(m.job())
        .arg("--restart")
        .env("MARKET_DB", &url);
    let out = run(cmd, DEADLINE);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("30 tickers computed, 0 dead-lettered, 3600 rows written"),
        "{text}"
    );
    // Every value as text that round-trips: Python's repr on SQLite, extra_float_digits = 3
    // on PostgreSQL; compared as numbers.
    let sqlite = m.rows("SELECT * FROM indicators ORDER BY ticker, date")
        + &m.rows("SELECT * FROM breadth ORDER BY date");
    let pg = psql(&url, "SELECT * FROM indicators ORDER BY ticker, date")
        + &psql(&url, "SELECT * FROM breadth ORDER BY date");
    psql(admin, &format!("DROP DATABASE {name}"));
    let sqlite: Vec<Vec<String>> = sqlite
        .lines()
        .map(|l| {
            l.trim_matches(|c| c == '(' || c == ')')
                .split(", ")
                .map(|v| v.trim_matches('\'').replace("None", ""))
                .collect()
        })
        .collect();
    let pg: Vec<Vec<String>> = pg
        .lines()
        .filter(|l| !l.is_empty() && *l != "SET")
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect();
    assert_eq!(sqlite.len(), 3600 + 120);
    assert_eq!(sqlite.len(), pg.len());
    for (a, b) in sqlite.iter().zip(&pg) {
        assert_eq!(a.len(), b.len(), "{a:?} {b:?}");
        for (x, y) in a.iter().zip(b) {
            match (x.parse::<f64>(), y.parse::<f64>()) {
                (Ok(x), Ok(y)) => assert_eq!(x.to_bits(), y.to_bits(), "{a:?}\n{b:?}"),
                _ => assert_eq!(x, y, "{a:?}\n{b:?}"),
            }
        }
    }
}
