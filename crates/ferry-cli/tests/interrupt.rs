//! Ctrl-C, end to end: `ferry run` of the monday.com board-update job file and `ferry demo`
//! as child processes, interrupted by real SIGINTs (`kill -INT`) mid-job, against the
//! monday.com-style simulator on loopback. What is checked: the exit code (130), the report
//! with its counts, the checkpoint, and that `--resume` sends exactly the rows that were not
//! confirmed and ends with every row applied.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{collect, planning_db, Collected, Killed, TempDir, BOARD_UPDATE_TOML, DEADLINE};
use ferry_connectors::job::Checkpoint;
use ferry_sim::{SimConfig, Simulator, Stats};

/// The board-update example's caps: `max_concurrent_batches` calls of at most
/// `max_batch_size` rows: the most rows a call in flight can hold at once.
const CAP_CALLS: u64 = 3;
const CAP_BATCH: u64 = 15;

struct Job {
    dir: TempDir,
    job: PathBuf,
    db: PathBuf,
    ids: Vec<u64>,
}

impl Job {
    fn new(name: &str, rows: u64) -> Job {
        let dir = TempDir::new(&format!("interrupt-{name}"));
        let db = dir.0.join("planning.db");
        let ids: Vec<u64> = (0..rows).map(|i| 7_000_000 + i).collect();
        let table: Vec<(i64, String, String)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let date = format!("2025-{:02}-{:02}", 1 + i % 12, 1 + i % 28);
                (*id as i64, date, ["US", "DE", "VN"][i % 3].to_owned())
            })
            .collect();
        planning_db(&db, &table);
        let job = dir.0.join("board_update.toml");
        std::fs::write(&job, BOARD_UPDATE_TOML).unwrap();
        Job { dir, job, db, ids }
    }

    fn checkpoint(&self) -> PathBuf {
        self.dir.0.join("board_update.checkpoint.db")
    }

    fn ferry(&self, sim: &Simulator, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.arg("run").arg(&self.job).arg("--execute").args(args);
        cmd.env("DATABASE_URL", &self.db)
            .env("MONDAY_API_TOKEN", "test-token")
            .env("MONDAY_API_URL", sim.url())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Keys the checkpoint records.
    async fn confirmed(&self) -> std::collections::HashSet<String> {
        let path = self.checkpoint();
        assert!(path.exists(), "no checkpoint at {}", path.display());
        Checkpoint::open(&path)
            .await
            .unwrap()
            .settled_keys()
            .await
            .unwrap()
    }
}

/// A child with its stdout and stderr read as they come.
struct Running {
    child: Killed,
    stdout: Collected,
    stderr: Collected,
}

fn start(mut cmd: Command) -> Running {
    let mut child = Killed(cmd.spawn().unwrap());
    let stdout = collect(child.0.stdout.take().unwrap());
    let stderr = collect(child.0.stderr.take().unwrap());
    Running {
        child,
        stdout,
        stderr,
    }
}

impl Running {
    fn sigint(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -INT failed");
    }

    fn assert_running(&mut self, what: &str) {
        if let Some(status) = self.child.0.try_wait().unwrap() {
            panic!(
                "ended ({status}) before {what}\nstdout:\n{}\nstderr:\n{}",
                self.stdout.text(),
                self.stderr.text()
            );
        }
    }

    /// Waits for the exit (at most [`DEADLINE`]); the exit code, stdout and stderr.
    async fn exit(self) -> (Option<i32>, String, String) {
        let Running {
            mut child,
            stdout,
            stderr,
        } = self;
        let status = tokio::task::spawn_blocking(move || {
            let status = common::wait(&mut child.0, DEADLINE);
            (status, child)
        })
        .await
        .unwrap()
        .0
        .unwrap_or_else(|| panic!("no exit within {DEADLINE:?}:\n{}", stderr.text()));
        let out = String::from_utf8(stdout.finish()).unwrap();
        let err = String::from_utf8(stderr.finish()).unwrap();
        (status.code(), out, err)
    }
}

/// Polls the simulator (never a fixed sleep) until `applied` mutations were applied.
async fn until_applied(sim: &Simulator, applied: u64, run: &mut Running) {
    let end = tokio::time::Instant::now() + DEADLINE;
    while sim.stats().mutations_applied < applied {
        run.assert_running(&format!("{applied} rows were applied"));
        assert!(tokio::time::Instant::now() < end, "too slow");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls the run's checkpoint until at least one row is confirmed there.
async fn until_confirmed(job: &Job, run: &mut Running) {
    let end = tokio::time::Instant::now() + DEADLINE;
    while job.confirmed().await.is_empty() {
        run.assert_running("a row was confirmed");
        assert!(tokio::time::Instant::now() < end, "nothing confirmed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The counts of the line an interrupted run prints:
/// `interrupted: S succeeded, D dead-lettered, N cancelled or not sent, of T`.
fn interrupted_counts(stdout: &str) -> [u64; 4] {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("interrupted: "))
        .unwrap_or_else(|| panic!("no `interrupted:` line in:\n{stdout}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    numbers
        .try_into()
        .unwrap_or_else(|n| panic!("expected 4 numbers in `{line}`, got {n:?}"))
}

/// Runs `ferry run --resume` to its end; it must succeed.
async fn resume(job: &Job, sim: &Simulator) -> String {
    let cmd = job.ferry(sim, &["--resume"]);
    tokio::task::spawn_blocking(move || common::run_ok(cmd, DEADLINE))
        .await
        .unwrap()
}

fn applies(stats: &Stats, id: u64) -> u64 {
    stats.items.get(&id).map_or(0, |s| s.applies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_mid_run_reports_exits_130_and_resume_sends_only_unconfirmed_rows() {
    const ROWS: u64 = 3000;
    let job = Job::new("once", ROWS);
    // 2 slots, 20 ms + 2 ms per mutation: about 5 s for the whole job.
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
    let mut run = start(job.ferry(&sim, &[]));
    until_applied(&sim, 300, &mut run).await;
    run.sigint();
    let (code, stdout, stderr) = run.exit().await;
    assert_eq!(code, Some(130), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stderr.contains("interrupted: taking no new items"),
        "{stderr}"
    );
    // The end report, then the interruption's counts, which add up to the job's rows.
    assert!(stdout.contains("items: "), "no report:\n{stdout}");
    let [succeeded, dead, not_sent, total] = interrupted_counts(&stdout);
    assert_eq!(total, ROWS, "{stdout}");
    assert_eq!(dead, 0, "{stdout}");
    assert!((300..ROWS).contains(&succeeded), "{stdout}");
    assert_eq!(succeeded + not_sent, ROWS, "{stdout}");
    assert!(stdout.contains("--resume"), "{stdout}");

    // Graceful: the calls in flight were answered within the grace and recorded, so the
    // checkpoint holds exactly what the simulator applied, and nothing was applied twice.
    let before = sim.stats();
    let confirmed = job.confirmed().await;
    assert_eq!(confirmed.len() as u64, succeeded);
    assert_eq!(before.mutations_applied, succeeded, "applied = confirmed");
    for id in &job.ids {
        assert_eq!(
            applies(&before, *id),
            u64::from(confirmed.contains(&id.to_string())),
            "row {id}: applied iff confirmed"
        );
    }

    let log = resume(&job, &sim).await;
    let after = sim.stats();
    // The resume sent exactly the unconfirmed rows: the bound on re-sent in-flight rows is
    // 0 here, because the grace let every call in flight finish and be recorded.
    assert_eq!(
        after.mutations_applied - before.mutations_applied,
        ROWS - succeeded,
        "{log}"
    );
    assert!(
        log.contains(&format!("resumed: {succeeded} items skipped")),
        "{log}"
    );
    for id in &job.ids {
        assert_eq!(applies(&after, *id), 1, "row {id} applied exactly once");
    }
    println!(
        "interrupted after {succeeded} of {ROWS} rows; resume sent {}",
        ROWS - succeeded
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_sigint_exits_at_once_and_resume_completes_every_row() {
    const ROWS: u64 = 180;
    let job = Job::new("twice", ROWS);
    // Slow calls (800 ms each, 2 slots): a graceful stop would wait for them and then print
    // the report; the second Ctrl-C must not.
    let sim = ferry_sim::spawn(SimConfig {
        slots: 2,
        per_request: Duration::from_millis(800),
        per_mutation: Duration::ZERO,
        request_timeout: Duration::from_secs(5),
        rate_limit: 1000,
        poison_value: String::new(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut run = start(job.ferry(&sim, &[]));
    until_applied(&sim, 30, &mut run).await;
    // And some of them confirmed in the run's checkpoint: the rows applied may still be on
    // their way back (from 4 calls on 2 slots, two calls' answers land at once), and the
    // second Ctrl-C would then leave nothing confirmed to resume from.
    until_confirmed(&job, &mut run).await;
    run.sigint();
    // The second once the first was taken (two signals sent together may merge into one).
    loop {
        let line = run.stderr.next_line("the first interrupt to be taken");
        if line.contains("interrupted: taking no new items") {
            break;
        }
    }
    run.sigint();
    let (code, stdout, stderr) = run.exit().await;
    assert_eq!(code, Some(130), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stderr.contains("interrupted again: exiting at once"),
        "{stderr}"
    );
    assert!(
        !stdout.contains("interrupted: "),
        "exited at once, without waiting for the calls in flight to report:\n{stdout}"
    );

    // Let calls that were in flight at the exit finish at the server: the simulator applies
    // them although their client is gone. One may wait for a slot behind another, so the
    // count is settled when it stays put for longer than two calls take.
    let mut settled = sim.stats().mutations_applied;
    loop {
        tokio::time::sleep(2 * sim.config().per_request + Duration::from_millis(400)).await;
        let now = sim.stats().mutations_applied;
        if now == settled {
            break;
        }
        settled = now;
    }
    let before = sim.stats();
    let confirmed = job.confirmed().await;
    assert!(!confirmed.is_empty() && (confirmed.len() as u64) < ROWS);
    let log = resume(&job, &sim).await;
    let after = sim.stats();
    let mut repeats = 0;
    for id in &job.ids {
        let n = applies(&after, *id);
        assert!(n >= 1, "row {id} never applied");
        if confirmed.contains(&id.to_string()) {
            assert_eq!(n, applies(&before, *id), "confirmed row {id} sent again");
        }
        repeats += n - 1;
    }
    // Only rows of calls in flight at the exit can be applied twice (the checkpoint is
    // written per confirmed batch; the board-update mutation is idempotent), plus the
    // confirmed batches the checkpoint writer had not committed at that instant: those
    // answered since its last commit, at most one per call slot (the simulator's slots run
    // in step, so two calls are answered at the same instant: a CI run saw 5 batches, 3 in
    // flight and 2 answered together, against a bound of one answered batch).
    assert!(
        repeats <= 2 * CAP_CALLS * CAP_BATCH,
        "{repeats} rows applied twice\n{log}"
    );
    assert_eq!(
        after.mutations_applied - before.mutations_applied,
        ROWS - confirmed.len() as u64,
        "the resume sent exactly the rows the checkpoint did not hold\n{log}"
    );
    println!(
        "exited at once with {} of {ROWS} rows confirmed; {repeats} rows applied twice (bound {})",
        confirmed.len(),
        2 * CAP_CALLS * CAP_BATCH
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_stops_the_demo_with_its_report_and_130() {
    const ITEMS: u64 = 200_000;
    let dir = TempDir::new("interrupt-demo");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(["demo", "--slots", "2", "--base-ms", "50", "--items"])
        .arg(ITEMS.to_string())
        .arg("--dead-letters")
        .arg(dir.0.join("dead.jsonl"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut run = start(cmd);
    // Progress lines (stderr is not a terminal) say when items have succeeded.
    loop {
        let line = run.stderr.next_line("a progress line");
        if line.starts_with("progress: ") && !line.starts_with("progress: 0/") {
            break;
        }
    }
    run.assert_running("the interrupt");
    run.sigint();
    let (code, stdout, stderr) = run.exit().await;
    assert_eq!(code, Some(130), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("items: "), "no report:\n{stdout}");
    let [succeeded, dead, not_sent, total] = interrupted_counts(&stdout);
    assert_eq!(total, ITEMS);
    assert!(succeeded > 0 && succeeded < ITEMS, "{stdout}");
    assert_eq!(succeeded + dead + not_sent, ITEMS, "{stdout}");
}

#[test]
fn help_lists_the_exit_codes() {
    for args in [&["--help"][..], &["run", "--help"], &["demo", "--help"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(args)
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        for code in ["0 ", "1 ", "2 ", "3 ", "130 "] {
            assert!(
                help.lines().any(|l| l.trim_start().starts_with(code)),
                "`ferry {}` does not list exit code {code}:\n{help}",
                args.join(" ")
            );
        }
    }
    let help = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("--grace <DURATION>"));
}
