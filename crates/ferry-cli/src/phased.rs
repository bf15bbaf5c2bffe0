//! `ferry run` and `ferry validate` for phased job files (`[[phase]]` blocks): progress per
//! phase with its groups per second (tickers/s), and an end report with a section per phase.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use ferry_connectors::job::phases::{self, PhaseOptions, PhaseState, PhasedJob, RowsRead};
use ferry_core::Progress;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::interrupt::{self, Exit};

/// Whether `path` is a phased job file (unreadable files are left to the usual loader).
pub(crate) fn is_phased(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| phases::is_phased(&t))
}

fn load(path: &Path) -> anyhow::Result<PhasedJob> {
    Ok(phases::load_phased(path, &|n| std::env::var(n).ok())?)
}

/// `ferry validate` of a phased file.
pub(crate) fn validate(path: &Path) -> anyhow::Result<()> {
    let job = load(path)?;
    let order: Vec<String> = job
        .phases
        .iter()
        .map(|p| match &p.series {
            Some(series) => format!(
                "{} (groups by {}, folded from rows by {series})",
                p.name, p.group_by
            ),
            None => format!("{} (groups by {})", p.name, p.group_by),
        })
        .collect();
    println!(
        "{}: valid (phased job `{}`: {})",
        path.display(),
        job.name,
        order.join(" -> ")
    );
    Ok(())
}

/// `ferry run` of a phased file.
pub(crate) async fn run(
    path: &Path,
    resume: bool,
    restart: bool,
    grace: Option<Duration>,
) -> anyhow::Result<Exit> {
    let job = load(path)?;
    let opts = PhaseOptions {
        resume,
        restart,
        shutdown: CancellationToken::new(),
    };
    let grace = grace.unwrap_or_else(|| job.phases[0].engine.shutdown_grace);
    interrupt::on_signals(opts.shutdown.clone(), grace)?;
    let summaries = phases::run_phases(&job, &opts, |phase, progress, rows| {
        follow(
            phase.name.clone(),
            format!("{}s", phase.group_by),
            progress,
            rows,
        )
    })
    .await?;
    let mut exit = Exit::Ok;
    for s in &summaries {
        let unit = format!("{}s", s.group_by);
        println!("== phase `{}`: {}", s.name, state(s.state));
        let Some(r) = &s.report else { continue };
        let p = &r.progress;
        println!(
            "{} {unit} computed, {} dead-lettered{}, {} rows written in {:.2?} ({:.0} {unit}/s)",
            p.succeeded,
            p.dead_lettered,
            if p.dead_lettered > 0 {
                format!(" (reasons in {})", s.dead_letters.display())
            } else {
                String::new()
            },
            s.rows_written,
            r.elapsed,
            r.items_per_sec
        );
        if s.skipped > 0 {
            println!(
                "resumed: {} {unit} skipped (already recorded in the checkpoint)",
                s.skipped
            );
        }
        if s.unchanged > 0 {
            println!(
                "unchanged: {} {unit} not written (the sink holds the same row)",
                s.unchanged
            );
        }
        println!(
            "batches: {} calls, {} retries, final batch {} {unit}, peak concurrency {}; {} source rows read",
            p.calls, p.retries, r.final_batch_size, r.peak_concurrency, s.rows_read
        );
        if p.dead_lettered > 0 && exit == Exit::Ok {
            exit = Exit::DeadLetters;
        }
    }
    if summaries.iter().any(|s| s.state == PhaseState::Interrupted) {
        println!("interrupted: run again with --resume to finish");
        exit = Exit::Interrupted;
    }
    Ok(exit)
}

fn state(s: PhaseState) -> &'static str {
    match s {
        PhaseState::Completed => "completed",
        PhaseState::AlreadyComplete => "already complete (checkpoint), skipped",
        PhaseState::Interrupted => "interrupted",
        PhaseState::NotRun => "not run",
    }
}

/// Prints a phase's progress to stderr (a line a second on a terminal, every 5 s otherwise)
/// and a last line as it ends. While no group has reached the engine yet (a folded phase
/// hands its groups on only at the end of its rows), the line counts the rows read.
async fn follow(
    name: String,
    unit: String,
    mut progress: watch::Receiver<Progress>,
    rows: RowsRead,
) {
    let every = if std::io::stderr().is_terminal() {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(5)
    };
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        let ticked = tokio::select! {
            _ = ticker.tick() => true,
            changed = progress.changed() => changed.is_err(),
        };
        let p = progress.borrow_and_update().clone();
        if ticked || p.finished {
            if p.finished || progress.has_changed().is_err() {
                // Over the whole phase, not the recent rate the running lines show.
                let rate =
                    (p.succeeded + p.dead_lettered) as f64 / p.elapsed.as_secs_f64().max(1e-9);
                eprintln!(
                    "phase {name}: {} {unit} done, {} dead-lettered in {:.1?} ({rate:.0} {unit}/s)",
                    p.succeeded, p.dead_lettered, p.elapsed
                );
                return;
            }
            if p.succeeded + p.dead_lettered + p.in_flight == 0 {
                let read = rows.get();
                let rate = read as f64 / p.elapsed.as_secs_f64().max(1e-9);
                eprintln!("phase {name}: reading the source, {read} rows read ({rate:.0} rows/s)");
                continue;
            }
            eprintln!(
                "phase {name}: {} {unit} done, {} in flight, {} dead-lettered ({:.0} {unit}/s)",
                p.succeeded, p.in_flight, p.dead_lettered, p.rate
            );
        }
    }
}
