//! `ferry run` and `ferry validate`: job files.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use ferry_connectors::job::{self, LoadOptions, RunOptions};
use tokio_util::sync::CancellationToken;

use crate::interrupt::{self, Exit};

/// Options of `ferry run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The job file (Ferry's format, or the monday.com board-update format).
    job: PathBuf,
    /// Read, map, validate and print the first rendered requests; send nothing.
    #[arg(long, visible_alias = "dry_run", conflicts_with = "execute")]
    dry_run: bool,
    /// Send (the default; accepted for the board-update tool's command lines).
    #[arg(long)]
    execute: bool,
    /// Raise the concurrency cap to N (the adaptive controller works under it).
    #[arg(long, visible_alias = "max_concurrent", value_name = "N")]
    max_concurrent: Option<usize>,
    /// Override a job-file key, e.g. `--set dispatch.timeout=10s` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Skip items the checkpoint records as done (after a crash or a kill).
    #[arg(long, conflicts_with = "restart")]
    resume: bool,
    /// Clear the checkpoint and start from the first item.
    #[arg(long)]
    restart: bool,
    /// Print this many rendered requests in a dry run.
    #[arg(long, default_value_t = 3)]
    show: usize,
    /// After Ctrl-C or SIGTERM, how long calls in flight may finish before they are
    /// abandoned (default: `dispatch.shutdown_grace` in a Ferry job file, else 10s). The run
    /// then prints its report and exits 130; a second Ctrl-C exits at once.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    grace: Option<Duration>,
    /// Write the pipeline's profile (per step busy/idle share, items in and out, queue depth
    /// over time, the sink's batch latency p50/p95/p99, the bottleneck) to FILE as JSON; the
    /// end report prints it either way.
    #[arg(long, value_name = "FILE.json")]
    profile: Option<PathBuf>,
}

/// Options of `ferry validate`.
#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// The job file.
    job: PathBuf,
    /// Override a job-file key (repeatable), as `ferry run --set`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

pub(crate) async fn run(args: RunArgs) -> anyhow::Result<Exit> {
    if crate::phased::is_phased(&args.job) {
        anyhow::ensure!(!args.dry_run, "a phased job has no dry run");
        return crate::phased::run(&args.job, args.resume, args.restart, args.grace).await;
    }
    let opts = LoadOptions {
        sets: args.sets,
        max_concurrent: args.max_concurrent,
        dry_run: args.dry_run,
        env: None,
    };
    let mut job = job::load(&args.job, &opts)?;
    if let Some(grace) = args.grace {
        job.engine.shutdown_grace = grace;
    }
    let run_opts = RunOptions {
        dry_run: args.dry_run,
        resume: args.resume,
        restart: args.restart,
        show_requests: args.show,
        limit: None,
        shutdown: CancellationToken::new(),
    };
    if args.dry_run {
        let dry = job::dry_run(&job, &run_opts).await?;
        for (i, r) in dry.requests.iter().enumerate() {
            println!("--- request {} ---\n{r}", i + 1);
        }
        println!(
            "dry run: {} items read, {} cannot be rendered; nothing was sent",
            dry.items, dry.unrenderable_count
        );
        if dry.bad_records_count > 0 {
            println!(
                "{} source records cannot be read (a run dead-letters them):",
                dry.bad_records_count
            );
            for e in &dry.bad_records {
                println!("  {e}");
            }
        }
        for e in &dry.unrenderable {
            println!("  {e}");
        }
        anyhow::ensure!(
            dry.unrenderable_count == 0,
            "{} items cannot be rendered",
            dry.unrenderable_count
        );
        return Ok(Exit::Ok);
    }
    interrupt::on_signals(run_opts.shutdown.clone(), job.engine.shutdown_grace)?;
    let summary = job::run(&job, &run_opts, |progress| {
        crate::progress::follow(progress, None)
    })
    .await?;
    println!("{}", summary.report);
    if summary.skipped > 0 {
        println!(
            "resumed: {} items skipped (already recorded in the checkpoint)",
            summary.skipped
        );
    }
    println!(
        "ambiguous failures (request sent, no complete answer; a retry may repeat an apply): {}",
        summary.ambiguous
    );
    if let Some(p) = &summary.source_profile {
        println!("{p}");
    }
    println!("{}", summary.profile);
    if let Some(path) = &args.profile {
        let json = serde_json::to_string_pretty(&summary.profile)?;
        std::fs::write(path, json + "\n")
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        println!("profile written to {}", path.display());
    }
    for w in &summary.warnings {
        println!("warning: {w}");
    }
    if summary.bad_records > 0 {
        println!(
            "bad source records dead-lettered (position and reason in {}): {}",
            job.dead_letters.display(),
            summary.bad_records
        );
    }
    if let Some(c) = &summary.checkpoint {
        println!("checkpoint: {}", c.display());
    }
    if summary.interrupted {
        interrupt::print_summary(&summary.report);
        if summary.checkpoint.is_some() {
            println!("run again with --resume to send only the items not confirmed");
        }
    } else if let Some(e) = &summary.source_error {
        anyhow::bail!("reading the source stopped early: {e}\n(the items before it were processed; fix the data and run again with --resume)");
    }
    match Exit::of(&summary.report, summary.interrupted) {
        Exit::Ok if summary.bad_records > 0 => Ok(Exit::DeadLetters),
        exit => Ok(exit),
    }
}

pub(crate) fn validate(args: ValidateArgs) -> anyhow::Result<()> {
    if crate::phased::is_phased(&args.job) {
        return crate::phased::validate(&args.job);
    }
    let opts = LoadOptions {
        sets: args.sets,
        dry_run: true,
        ..Default::default()
    };
    let job = job::load(&args.job, &opts)?;
    let stages = match job.stages.len() {
        0 => String::new(),
        _ => format!(
            ", stages: {}",
            job.stages
                .iter()
                .map(|s| s.settings().name.clone())
                .collect::<Vec<_>>()
                .join(" -> ")
        ),
    };
    println!(
        "{}: valid ({} format, engine `{}`, batch cap {}, concurrency cap {}{stages})",
        args.job.display(),
        job.format,
        job.engine.name,
        job.engine.max_items(),
        job.engine.dispatch.concurrency.cap()
    );
    Ok(())
}
