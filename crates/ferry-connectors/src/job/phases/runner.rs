//! Running a phased job: the phases one after another in `after` order, each through the
//! engine (its groups are the items, its handler runs the stage and writes), each with its
//! own checkpoint and dead-letter file.
//!
//! A phase starts only once the one before it has committed everything and recorded itself
//! complete in its checkpoint. `--resume` skips phases recorded complete and, in the phase
//! that was interrupted, the groups its checkpoint records; `--restart` clears every phase's
//! checkpoint. A job whose phases all completed clears its checkpoints: there is nothing to
//! resume, and the next run (after new data) starts afresh, incremental through the stages'
//! stored state.

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use ferry_core::{Engine, Item, JsonlDeadLetters, Progress, Report};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::config::{Phase, PhasedJob};
use super::fold::BreadthFold;
use super::group::{self, RowsRead, Unit};
use super::handler::PhaseHandler;
use crate::error::Error;
use crate::job::{checkpoint_rows, Checkpoint, Status};

/// Groups that may wait in the engine's intake (the source holds 16 more, a batch up to
/// `phase.batch.max_items`).
const INTAKE_GROUPS: usize = 64;

/// The checkpoint key that records a phase as complete (no group key can be it).
const COMPLETE: &str = "\u{0}phase complete";

/// How to run a phased job.
#[derive(Debug, Clone, Default)]
pub struct PhaseOptions {
    /// Skip phases recorded complete, and groups the interrupted phase recorded.
    pub resume: bool,
    /// Clear every phase's checkpoint first.
    pub restart: bool,
    /// Cancelled to interrupt (Ctrl-C): the running phase stops reading, finishes what is
    /// in flight and checkpoints it; later phases do not start.
    pub shutdown: CancellationToken,
}

/// How a phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseState {
    /// It ran to the end and committed.
    Completed,
    /// A resumed run found it complete already.
    AlreadyComplete,
    /// Interrupted: `--resume` continues it.
    Interrupted,
    /// Not started (an earlier phase was interrupted).
    NotRun,
}

/// One phase's part of the end report.
#[derive(Debug, Clone)]
pub struct PhaseSummary {
    /// The phase.
    pub name: String,
    /// What a group is (`ticker`, `date`).
    pub group_by: String,
    /// How it ended.
    pub state: PhaseState,
    /// The engine's report (`None` if it did not run).
    pub report: Option<Report>,
    /// Rows written to the sink table.
    pub rows_written: u64,
    /// Groups skipped because the checkpoint records them (`--resume`).
    pub skipped: u64,
    /// Folded groups not written because the sink holds the same row already.
    pub unchanged: u64,
    /// Rows the phase's source read.
    pub rows_read: u64,
    /// The phase's dead letters.
    pub dead_letters: PathBuf,
}

/// Runs the phases in order. `on_start(phase, progress, rows)` is called as each phase
/// starts, with the engine's progress and the count of rows its source has read (a folded
/// phase's only progress until the end of its rows).
pub async fn run_phases<F, Fut>(
    job: &PhasedJob,
    opts: &PhaseOptions,
    mut on_start: F,
) -> Result<Vec<PhaseSummary>, Error>
where
    F: FnMut(&Phase, watch::Receiver<Progress>, RowsRead) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut checkpoints = Vec::with_capacity(job.phases.len());
    for p in &job.phases {
        let c = Checkpoint::open(&p.checkpoint).await?;
        if opts.restart {
            c.clear().await?;
        } else if !opts.resume {
            let n = c.len().await?;
            if n > 0 {
                return Err(Error::Config {
                    file: p.checkpoint.clone(),
                    line: 0,
                    key: "checkpoint".into(),
                    message: format!(
                        "phase `{}` holds {n} settled items from an earlier run: pass --resume to continue it or --restart to start over",
                        p.name
                    ),
                });
            }
        }
        checkpoints.push(c);
    }
    let mut out = Vec::with_capacity(job.phases.len());
    for (p, c) in job.phases.iter().zip(&checkpoints) {
        let not_run = |state| PhaseSummary {
            name: p.name.clone(),
            group_by: p.group_by.clone(),
            state,
            report: None,
            rows_written: 0,
            skipped: 0,
            unchanged: 0,
            rows_read: 0,
            dead_letters: p.dead_letters.clone(),
        };
        if opts.shutdown.is_cancelled() {
            out.push(not_run(PhaseState::NotRun));
            continue;
        }
        let done = c.settled_keys().await?;
        if done.contains(COMPLETE) {
            out.push(not_run(PhaseState::AlreadyComplete));
            continue;
        }
        let summary = run_phase(p, c, done, opts, &mut on_start).await?;
        if summary.state == PhaseState::Completed {
            c.record(&[(COMPLETE.to_owned(), Status::Succeeded, None)])
                .await?;
        }
        out.push(summary);
    }
    if out
        .iter()
        .all(|s| s.state != PhaseState::Interrupted && s.state != PhaseState::NotRun)
    {
        for c in &checkpoints {
            c.clear().await?;
        }
    }
    Ok(out)
}

async fn run_phase<F, Fut>(
    p: &Phase,
    checkpoint: &Checkpoint,
    done: HashSet<String>,
    opts: &PhaseOptions,
    on_start: &mut F,
) -> Result<PhaseSummary, Error>
where
    F: FnMut(&Phase, watch::Receiver<Progress>, RowsRead) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    // The handler first: it creates the stage's state table, which the source may read.
    let handler = PhaseHandler::open(p).await?;
    let written = handler.written();
    // A folded phase writes only the groups whose row differs from the sink's (or is new).
    let stored = match p.series {
        Some(_) => handler.stored_rows().await?,
        None => Default::default(),
    };
    let make_fold = |columns: &[String]| -> Result<Box<dyn group::Fold>, String> {
        let series = p.series.as_deref().unwrap_or_default();
        Ok(Box::new(BreadthFold::new(columns, series, &p.group_by)?))
    };
    let fold: Option<group::MakeFold<'_>> = p.series.as_ref().map(|_| &make_fold as _);
    let mut source = group::open(&p.source_url, &p.query, &p.group_by, &p.name, fold).await?;
    let missing: Vec<String> = match p.series {
        Some(_) => Vec::new(),
        None => p
            .stage
            .inputs()
            .into_iter()
            .filter(|c| !source.columns.contains(c))
            .collect(),
    };
    if !missing.is_empty() {
        return Err(Error::Config {
            file: PathBuf::new(),
            line: 0,
            key: format!("phase `{}` source.query", p.name),
            message: format!(
                "the stage reads column(s) {} that the query does not return; its columns: {}",
                missing.join(", "),
                source.columns.join(", ")
            ),
        });
    }
    let engine = Engine::new(p.engine.clone(), handler)?
        .dead_letters(JsonlDeadLetters::new(&p.dead_letters))
        .cancellation(opts.shutdown.clone())
        // A group can be thousands of rows: hold few of them waiting, not the default 1,024.
        .intake_capacity(INTAKE_GROUPS)
        .emit_settled(64);
    let mut running = engine.start();
    let rows_read = source.rows.clone();
    let progress_task = tokio::spawn(on_start(p, running.progress(), rows_read.clone()));
    let mut settled = running
        .take_settled()
        .ok_or_else(|| Error::Engine(ferry_core::Error::Closed))?;
    let writer_checkpoint = checkpoint.clone();
    let writer = tokio::spawn(async move {
        while let Some(batch) = settled.recv().await {
            let rows = checkpoint_rows(&batch);
            writer_checkpoint.record(&rows).await?;
        }
        Ok::<(), Error>(())
    });
    let intake = running.intake();
    let mut skipped = 0u64;
    let mut unchanged = 0u64;
    let mut index = 0u64;
    let mut source_error = None;
    loop {
        let next = tokio::select! {
            biased;
            () = opts.shutdown.cancelled() => break,
            next = source.groups.recv() => next,
        };
        match next {
            None => break,
            Some(Ok(g)) => {
                if done.contains(g.key()) {
                    skipped += 1;
                    continue;
                }
                if let Unit::Folded { key, row: Ok(row) } = g.as_ref() {
                    if stored.get(key) == Some(row) {
                        unchanged += 1;
                        continue;
                    }
                }
                let bytes = g.bytes();
                let item = Item::new(g.key().to_owned(), index, g).with_bytes(bytes);
                index += 1;
                if intake.push(item).await.is_err() {
                    break;
                }
            }
            Some(Err(e)) => {
                source_error = Some(e);
                break;
            }
        }
    }
    drop(intake);
    drop(source);
    let report = running.finish().await?;
    match writer.await {
        Ok(result) => result?,
        Err(e) => return Err(Error::Engine(ferry_core::Error::Task(e.to_string()))),
    }
    let _ = progress_task.await;
    if let Some(e) = source_error {
        return Err(e);
    }
    let state = if opts.shutdown.is_cancelled() {
        PhaseState::Interrupted
    } else {
        PhaseState::Completed
    };
    Ok(PhaseSummary {
        name: p.name.clone(),
        group_by: p.group_by.clone(),
        state,
        report: Some(report),
        rows_written: written.load(Ordering::Relaxed),
        skipped,
        unchanged,
        rows_read: rows_read.get(),
        dead_letters: p.dead_letters.clone(),
    })
}
