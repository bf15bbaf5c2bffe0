//! `ferry tune`: runs a job on its first N items over a sweep of worker counts and batch
//! sizes, into a scratch target the user names, and prints a table and the best setting.
//!
//! Each setting is one run of the job file with `--set` overrides: the worker count goes to
//! every `[[stage]]`'s `workers` (and an XML source's `workers`), the batch size to
//! `batch.max_items` with `batch.adaptive = false` so each row measures that size. The
//! checkpoint is off and dead letters go to a scratch file. The target is the job's own
//! unless the user's `--set` names another (`--set handler.url=...`); `--reset SQL` runs on
//! the handler's database before each setting, so every run starts from the same state.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use ferry_connectors::job::{self, LoadOptions, RunOptions, SourceSpec};

/// Options of `ferry tune`.
#[derive(Debug, Args)]
pub(crate) struct TuneArgs {
    /// The job file.
    job: PathBuf,
    /// Items per setting: the first N items that reach the handler.
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    sample: u64,
    /// Override a job-file key in every run, e.g. the scratch target:
    /// `--set handler.url=postgres://.../scratch` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Worker counts to try, for every stage (and an XML source). Default: 1, 2, 4, ... up
    /// to the number of cores.
    #[arg(long, value_name = "N,N,...", value_delimiter = ',')]
    workers: Vec<usize>,
    /// Batch sizes to try (fixed, not adaptive).
    #[arg(long, value_name = "N,N,...", value_delimiter = ',', default_values_t = [500, 2000, 5000])]
    batch: Vec<usize>,
    /// SQL run on the handler's database (`handler.url`) before each setting, e.g.
    /// "TRUNCATE orders, order_lines", so each run starts from the same, empty, target.
    #[arg(long, value_name = "SQL")]
    reset: Option<String>,
}

/// One setting's result.
struct Trial {
    sets: Vec<String>,
    workers: Option<usize>,
    batch: usize,
    items_per_sec: f64,
    p95_ms: f64,
    bottleneck: String,
    failed: Option<String>,
}

pub(crate) async fn tune(args: TuneArgs) -> anyhow::Result<()> {
    let load = |sets: &[String]| {
        job::load(
            &args.job,
            &LoadOptions {
                sets: sets.to_vec(),
                ..Default::default()
            },
        )
    };
    let base = load(&args.sets)?;
    let mut worker_keys: Vec<String> = (0..base.stages.len())
        .map(|i| format!("stage.{i}.workers"))
        .collect();
    if matches!(base.source, SourceSpec::Xml { .. }) {
        worker_keys.push("source.workers".into());
    }
    let workers: Vec<Option<usize>> = if worker_keys.is_empty() {
        vec![None]
    } else if args.workers.is_empty() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut w: Vec<usize> = std::iter::successors(Some(1usize), |n| Some(n * 2))
            .take_while(|n| *n < cores)
            .collect();
        w.push(cores);
        w.into_iter().map(Some).collect()
    } else {
        args.workers.iter().map(|n| Some(*n)).collect()
    };
    let scratch =
        std::env::temp_dir().join(format!("ferry-tune-{}.dead.jsonl", std::process::id()));
    println!(
        "ferry tune: {} items per setting, {} settings{}",
        args.sample,
        workers.len() * args.batch.len(),
        match &args.reset {
            Some(sql) => format!(", `{sql}` before each"),
            None => String::new(),
        }
    );
    println!(
        "{:>8} {:>7} {:>10} {:>9}  bottleneck",
        "workers", "batch", "items/s", "p95 ms"
    );
    let mut trials = Vec::new();
    for w in &workers {
        for &b in &args.batch {
            let mut sets = Vec::new();
            if let Some(w) = w {
                sets.extend(worker_keys.iter().map(|k| format!("{k}={w}")));
            }
            sets.push(format!("batch.max_items={b}"));
            sets.push("batch.adaptive=false".into());
            let trial = run_one(&args, &load, &sets, &scratch, *w, b).await?;
            println!(
                "{:>8} {:>7} {:>10.0} {:>9.1}  {}",
                w.map_or("-".to_owned(), |w| w.to_string()),
                b,
                trial.items_per_sec,
                trial.p95_ms,
                trial.failed.as_deref().unwrap_or(&trial.bottleneck)
            );
            trials.push(trial);
        }
    }
    let _ = std::fs::remove_file(&scratch);
    let best = trials
        .iter()
        .filter(|t| t.failed.is_none())
        .max_by(|a, b| a.items_per_sec.total_cmp(&b.items_per_sec))
        .context("no setting ran to the end")?;
    println!(
        "best: {:.0} items/s with workers {}, batch {} (p95 {:.1} ms, {})",
        best.items_per_sec,
        best.workers.map_or("-".to_owned(), |w| w.to_string()),
        best.batch,
        best.p95_ms,
        best.bottleneck
    );
    println!(
        "{}",
        best.sets
            .iter()
            .map(|s| format!("--set {s}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(())
}

/// Runs the job once with `sets` over the user's.
async fn run_one(
    args: &TuneArgs,
    load: &dyn Fn(&[String]) -> Result<job::JobConfig, ferry_connectors::Error>,
    sets: &[String],
    scratch: &std::path::Path,
    workers: Option<usize>,
    batch: usize,
) -> anyhow::Result<Trial> {
    let mut all = args.sets.clone();
    all.extend(sets.iter().cloned());
    all.push("checkpoint.enabled=false".into());
    all.push(format!("dead_letters.path={}", toml_string(scratch)));
    let job = load(&all)?;
    if let Some(sql) = &args.reset {
        let url = job::handler_url(&job.handler)
            .context("--reset needs a handler with a database url (sql, postgres_copy)")?;
        ferry_connectors::sink::execute(url, sql)
            .await
            .with_context(|| format!("--reset `{sql}`"))?;
    }
    let opts = RunOptions {
        limit: Some(args.sample),
        ..Default::default()
    };
    let mut trial = Trial {
        sets: sets.to_vec(),
        workers,
        batch,
        items_per_sec: 0.0,
        p95_ms: 0.0,
        bottleneck: String::new(),
        failed: None,
    };
    match job::run(&job, &opts, |_| async {}).await {
        Ok(summary) => {
            trial.items_per_sec = summary.report.items_per_sec;
            trial.p95_ms = summary.profile.sink_p95_ms().unwrap_or(0.0);
            trial.bottleneck = summary.profile.bottleneck_line();
        }
        Err(e) => trial.failed = Some(format!("failed: {e}")),
    }
    Ok(trial)
}

/// `path` as a TOML string (`--set` values are read as TOML).
fn toml_string(path: &std::path::Path) -> String {
    format!("{:?}", path.display().to_string())
}
