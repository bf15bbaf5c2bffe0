//! The batch runner: source -> stages (`[[stage]]`, see `stages`) -> engine (handler) ->
//! checkpoint and dead letters, and the pipeline's profile at the end.
//!
//! A bad source record (a malformed line or element, a failed cast, a missing key) is
//! dead-lettered with its position and the reason, and reading goes on; with
//! `source.on_error = "stop"` reading stops at it instead (its error names file and line),
//! whatever was already accepted is still finished and checkpointed, so a `--resume` after
//! fixing the data picks up exactly where the run stopped. An I/O or query error always
//! stops reading.
//!
//! Interruption (Ctrl-C in the CLI) is the caller's [`RunOptions::shutdown`] token: reading
//! stops, the engine cancels what waits and gives calls in flight the engine's
//! `shutdown_grace` ([`DEFAULT_SHUTDOWN_GRACE`] for job files), and every batch the target
//! confirmed is in the checkpoint before `run` returns. The checkpoint is written per settled
//! batch as the run goes, so even a process that exits at once loses at most the batches in
//! flight (and any settled batch the writer had not committed yet): `--resume` re-sends
//! those, never a batch it recorded.

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use ferry_core::{Engine, Item, JsonlDeadLetters, Progress, Report};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::checkpoint::{checkpoint_rows, Checkpoint};
use super::handler::{describe, SpecHandler};
use super::sources::{count_source, BadRecords};
use super::spec::{HandlerSpec, JobConfig, OnError};
use super::stages::Pipeline;
use crate::error::Error;
use crate::graphql::GraphqlHandler;
use crate::http::HttpHandler;
use crate::stage::Profile;

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Read, map, validate and render; send nothing.
    pub dry_run: bool,
    /// Skip items the checkpoint already records.
    pub resume: bool,
    /// Clear the checkpoint first.
    pub restart: bool,
    /// How many requests a dry run prints (default 3 when 0).
    pub show_requests: usize,
    /// Send only the first N items that reach the handler, then finish as if the source
    /// had ended (`ferry tune --sample N`). `None`: all of them.
    pub limit: Option<u64>,
    /// Cancelled to interrupt the run (Ctrl-C): no new item is read, what waits is
    /// cancelled, calls in flight get the engine's `shutdown_grace`, the checkpoint keeps
    /// every confirmed item. Default: never cancelled.
    pub shutdown: CancellationToken,
}

/// How long calls in flight may finish after an interruption when the job file does not say
/// (`dispatch.shutdown_grace`): 10 s.
pub(crate) const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What a dry run found.
#[derive(Debug, Clone, Default)]
pub struct DryRun {
    /// Items read.
    pub items: u64,
    /// The first rendered requests, secrets masked.
    pub requests: Vec<String>,
    /// Items that cannot be rendered, with the error (the first 20).
    pub unrenderable: Vec<String>,
    /// How many items cannot be rendered.
    pub unrenderable_count: u64,
    /// Source records that cannot be read (dead-lettered in a run), with the error (the
    /// first 20).
    pub bad_records: Vec<String>,
    /// How many source records cannot be read.
    pub bad_records_count: u64,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The engine's report.
    pub report: Report,
    /// Items skipped because the checkpoint records them (`--resume`).
    pub skipped: u64,
    /// Calls that failed after the request was sent: the only possible source of a repeated
    /// apply at the target.
    pub ambiguous: u64,
    /// The checkpoint, if enabled.
    pub checkpoint: Option<PathBuf>,
    /// The error that stopped reading the source early, if any.
    pub source_error: Option<String>,
    /// Source records that could not be read and were dead-lettered (`source.on_error`),
    /// not counted in the engine's report.
    pub bad_records: u64,
    /// Warnings about the mapping (a path that matched nothing in any record).
    pub warnings: Vec<String>,
    /// The source's own stages, busy and idle, and the bottleneck (XML sources).
    pub source_profile: Option<String>,
    /// The pipeline's profile: source, stages and sink, busy and idle, items, queue depths,
    /// the sink's batch latency, and the bottleneck.
    pub profile: Profile,
    /// Whether [`RunOptions::shutdown`] interrupted the run: the report's cancelled items
    /// and the items never read were not confirmed, and `--resume` sends them.
    pub interrupted: bool,
}

/// Reads the whole source, renders every item, and returns the first requests: nothing is
/// sent.
pub async fn dry_run(job: &JobConfig, opts: &RunOptions) -> Result<DryRun, Error> {
    let show = if opts.show_requests == 0 {
        3
    } else {
        opts.show_requests
    };
    let mut stream = Pipeline::open(job).await?.stream;
    let batch_size = match &job.engine.sizing {
        ferry_core::BatchSizing::Adaptive(c) => c.initial.min(job.engine.max_items()),
        ferry_core::BatchSizing::Fixed => job.engine.max_items(),
    };
    let mut out = DryRun::default();
    let graphql = match &job.handler {
        HandlerSpec::Graphql(cfg) => {
            let mut h = GraphqlHandler::new(cfg.clone())?;
            // A dry run shows why the column types are unknown (`describe_columns`) and
            // renders the values as evaluated, rather than failing: it must work offline.
            if let Err(e) = h.ask_board().await {
                tracing::warn!(error = %e, "dry run without the board's column types");
            }
            Some(h)
        }
        _ => None,
    };
    let http = match &job.handler {
        HandlerSpec::Http(cfg) => Some(HttpHandler::new(cfg.clone())?),
        _ => None,
    };
    let mut pending: Vec<Item<Value>> = Vec::new();
    while let Some(item) = stream.next().await {
        let item = match item {
            Ok(item) => item,
            Err(e) if e.is_record_error() && job.on_error == OnError::DeadLetter => {
                out.bad_records_count += 1;
                if out.bad_records.len() < 20 {
                    out.bad_records.push(e.to_string());
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        out.items += 1;
        if let Some(h) = &graphql {
            if let Err(e) = h.render_field(&item) {
                out.unrenderable_count += 1;
                if out.unrenderable.len() < 20 {
                    out.unrenderable.push(e.to_string());
                }
            }
        }
        if out.requests.len() < show {
            pending.push(item);
            if pending.len() == batch_size {
                out.requests
                    .push(describe(job, graphql.as_ref(), http.as_ref(), &pending));
                pending.clear();
            }
        }
    }
    if !pending.is_empty() && out.requests.len() < show {
        out.requests
            .push(describe(job, graphql.as_ref(), http.as_ref(), &pending));
    }
    Ok(out)
}

/// Runs the job to the end. `on_start` receives the progress channel as soon as the engine
/// runs (the CLI draws its bar from it).
pub async fn run<F, Fut>(
    job: &JobConfig,
    opts: &RunOptions,
    on_start: F,
) -> Result<RunSummary, Error>
where
    F: FnOnce(watch::Receiver<Progress>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let checkpoint = match &job.checkpoint {
        Some(path) => {
            let c = Checkpoint::open(path).await?;
            let recorded = c.len().await?;
            if opts.restart {
                c.clear().await?;
            } else if recorded > 0 && !opts.resume {
                return Err(Error::Config {
                    file: path.clone(),
                    line: 0,
                    key: "checkpoint".into(),
                    message: format!(
                        "holds {recorded} settled items from an earlier run: pass --resume to continue it or --restart to start over"
                    ),
                });
            }
            Some(c)
        }
        None => None,
    };
    let done: HashSet<String> = match (&checkpoint, opts.resume) {
        (Some(c), true) => c.settled_keys().await?,
        _ => HashSet::new(),
    };
    let handler = SpecHandler::start(&job.handler).await?;
    let mut pipeline = Pipeline::open(job).await?;
    let counters = handler.counters();
    let mut engine = Engine::new(job.engine.clone(), handler)?
        .dead_letters(JsonlDeadLetters::new(&job.dead_letters))
        .cancellation(opts.shutdown.clone())
        .emit_settled(64);
    if let Some(n) = count_source(&job.source).await {
        // Keys the checkpoint already holds are skipped, not sent.
        engine = engine.total(n.saturating_sub(done.len() as u64));
    }
    let mut running = engine.start();
    let progress_task = tokio::spawn(on_start(running.progress()));
    let stop_sampling = CancellationToken::new();
    let sampler = pipeline.sampler(running.progress(), stop_sampling.clone());
    let mut settled = running
        .take_settled()
        .ok_or_else(|| Error::Engine(ferry_core::Error::Closed))?;
    let writer_checkpoint = checkpoint.clone();
    let writer = tokio::spawn(async move {
        while let Some(batch) = settled.recv().await {
            let rows = checkpoint_rows(&batch);
            if let Some(c) = &writer_checkpoint {
                c.record(&rows).await?;
            }
        }
        Ok::<(), Error>(())
    });

    let intake = running.intake();
    let mut bad = BadRecords::new(&job.dead_letters, checkpoint.clone());
    let mut skipped = 0u64;
    let mut source_error = None;
    let mut sent = 0u64;
    loop {
        if opts.limit.is_some_and(|n| sent >= n) {
            break;
        }
        let next = tokio::select! {
            biased;
            () = opts.shutdown.cancelled() => break,
            next = pipeline.stream.next() => next,
        };
        let Some(next) = next else { break };
        match next {
            Ok(item) => {
                if done.contains(item.key().as_str()) {
                    skipped += 1;
                    continue;
                }
                let t = std::time::Instant::now();
                if intake.push(item).await.is_err() {
                    break;
                }
                pipeline.blocked += t.elapsed();
                sent += 1;
            }
            Err(e) if e.is_record_error() && job.on_error == OnError::DeadLetter => {
                tracing::warn!(error = %e, "dead-lettered a bad source record");
                if !bad.write(&e, &done).await? {
                    skipped += 1;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "stopped reading the source");
                source_error = Some(e.to_string());
                break;
            }
        }
    }
    drop(intake);
    // Stops the source and the stages (an interrupted run reads no further).
    pipeline.stream = Box::pin(futures_util::stream::empty());
    let report = running.finish().await?;
    stop_sampling.cancel();
    let samples = sampler.await.unwrap_or_default();
    let profile = pipeline.profile(&report, samples);
    let xml_stats = pipeline.xml_stats.clone();
    let mut warnings: Vec<String> = xml_stats.as_ref().map(|s| s.warnings()).unwrap_or_default();
    warnings.extend(pipeline.warnings());
    drop(pipeline);
    match writer.await {
        Ok(result) => result?,
        Err(e) => return Err(Error::Engine(ferry_core::Error::Task(e.to_string()))),
    }
    let _ = progress_task.await;
    let source_profile = xml_stats
        .as_ref()
        .map(|s| s.profile(&report.dispatch, report.final_batch_size));
    Ok(RunSummary {
        report,
        skipped,
        ambiguous: counters.ambiguous(),
        checkpoint: checkpoint.map(|c| c.path().to_owned()),
        source_error,
        bad_records: bad.count(),
        warnings,
        source_profile,
        profile,
        interrupted: opts.shutdown.is_cancelled(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{load, LoadOptions};

    /// A job of `n` JSON Lines items written, one batch of 10 at a time every 20 ms, to
    /// `out.jsonl`: slow enough to be interrupted mid-run.
    fn slow_job(dir: &std::path::Path, n: u64) -> JobConfig {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let items: String = (0..n).map(|i| format!("{{\"id\": {i}}}\n")).collect();
        std::fs::write(dir.join("in.jsonl"), items).unwrap();
        let job = dir.join("job.toml");
        std::fs::write(
            &job,
            "[source]\ntype = \"jsonl\"\npath = \"in.jsonl\"\nkey = \"id\"\n\n\
             [handler]\ntype = \"jsonl\"\npath = \"out.jsonl\"\n\n\
             [batch]\nmax_items = 10\nadaptive = false\n\n\
             [dispatch]\nconcurrency = 1\npause = \"20ms\"\nshutdown_grace = \"5s\"\n",
        )
        .unwrap();
        load(&job, &LoadOptions::default()).unwrap()
    }

    fn written_keys(dir: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("out.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["key"].to_string())
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn interrupted_run_checkpoints_what_was_confirmed_and_resume_sends_the_rest() {
        let dir = std::env::temp_dir().join(format!("ferry-run-interrupt-{}", std::process::id()));
        let job = slow_job(&dir, 1000);
        assert_eq!(job.engine.shutdown_grace, Duration::from_secs(5));
        let opts = RunOptions::default();
        let shutdown = opts.shutdown.clone();
        // Interrupt once a batch is confirmed and more items wait in the engine than a call
        // holds.
        let summary = run(&job, &opts, |mut progress| async move {
            while progress.changed().await.is_ok() {
                let p = progress.borrow().clone();
                if p.succeeded > 0 && p.accepted >= p.succeeded + 50 {
                    shutdown.cancel();
                    return;
                }
            }
        })
        .await
        .unwrap();
        let p = &summary.report.progress;
        assert!(summary.interrupted);
        assert!(p.succeeded > 0 && p.succeeded < 1000, "{p:?}");
        assert_eq!(p.total, Some(1000));
        // What waited in the engine was cancelled, not sent.
        assert!(p.cancelled > 0, "{p:?}");
        // Every item written is confirmed and recorded: the call in flight was given its
        // grace, not abandoned.
        let recorded = Checkpoint::open(&job.checkpoint.clone().unwrap())
            .await
            .unwrap()
            .settled_keys()
            .await
            .unwrap();
        assert_eq!(recorded.len() as u64, p.succeeded);
        assert_eq!(written_keys(&dir).len() as u64, p.succeeded);

        let resumed = RunOptions {
            resume: true,
            ..RunOptions::default()
        };
        let summary = run(&job, &resumed, |_| async {}).await.unwrap();
        assert!(!summary.interrupted);
        assert_eq!(summary.skipped, recorded.len() as u64);
        let keys = written_keys(&dir);
        let unique: HashSet<&String> = keys.iter().collect();
        assert_eq!((keys.len(), unique.len()), (1000, 1000), "each item once");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ferry_jobs_default_to_a_10s_grace() {
        let dir = std::env::temp_dir().join(format!("ferry-run-grace-{}", std::process::id()));
        let job = slow_job(&dir, 1);
        std::fs::write(
            &job.path,
            "[source]\ntype = \"jsonl\"\npath = \"in.jsonl\"\n\n[handler]\ntype = \"jsonl\"\npath = \"out.jsonl\"\n",
        )
        .unwrap();
        let job = load(&job.path, &LoadOptions::default()).unwrap();
        assert_eq!(job.engine.shutdown_grace, DEFAULT_SHUTDOWN_GRACE);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
