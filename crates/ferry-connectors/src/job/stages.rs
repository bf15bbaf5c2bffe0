//! The job's pipeline up to the handler: the source, measured ([`SourceMeter`]), then each
//! `[[stage]]` built from its spec and run on its own pool ([`run_stage`]); and the sampler
//! of queue depths for the profile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_core::Progress;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::sources::open_source;
use super::spec::{JobConfig, StageSpec};
use crate::error::Error;
use crate::source::{ItemStream, XmlStats};
use crate::stage::{
    run_stage, NodeProfile, Profile, QueueSample, SourceGate, SourceMeter, Stage, StageStats,
    XmlStage, MAX_SAMPLES,
};

/// Builds the running stage `spec` describes; `index` is its 0-based place in the file.
pub fn build_stage(spec: &StageSpec, index: usize) -> Arc<dyn Stage> {
    match spec {
        StageSpec::Xml { config, .. } => Arc::new(XmlStage::new(
            config.clone(),
            &format!("stage.{index}.columns"),
        )),
        StageSpec::Indicators { config, .. } => {
            Arc::new(crate::stage::IndicatorsStage(config.clone()))
        }
        StageSpec::Breadth { config, .. } => Arc::new(crate::stage::BreadthStage(config.clone())),
    }
}

/// The source and the stages, running.
pub(super) struct Pipeline {
    /// What the last stage (or the source) yields.
    pub(super) stream: ItemStream,
    /// An XML source's own counters.
    pub(super) xml_stats: Option<Arc<XmlStats>>,
    source: Arc<StageStats>,
    gate: SourceGate,
    stages: Vec<(Arc<StageStats>, Arc<dyn Stage>)>,
    /// Nanoseconds the run waited to hand items to the engine (the sink's back-pressure).
    pub(super) blocked: Duration,
}

impl Pipeline {
    /// Opens the job's source and starts its stages (inside a Tokio runtime).
    pub(super) async fn open(job: &JobConfig) -> Result<Pipeline, Error> {
        let (stream, xml_stats) = open_source(&job.source).await?;
        let source = StageStats::new("source");
        let gate = SourceGate::default();
        let mut stream = SourceMeter::wrap(stream, Arc::clone(&source), Arc::clone(&gate));
        let mut stages = Vec::with_capacity(job.stages.len());
        for (i, spec) in job.stages.iter().enumerate() {
            let stage = build_stage(spec, i);
            let stats = StageStats::new(spec.settings().name.clone());
            stream = run_stage(
                stream,
                Arc::clone(&stage),
                spec.settings(),
                Arc::clone(&stats),
            )?;
            stages.push((stats, stage));
        }
        Ok(Pipeline {
            stream,
            xml_stats,
            source,
            gate,
            stages,
            blocked: Duration::ZERO,
        })
    }

    /// The stages' warnings (mapping paths that matched nothing).
    pub(super) fn warnings(&self) -> Vec<String> {
        self.stages.iter().flat_map(|(_, s)| s.warnings()).collect()
    }

    /// Starts sampling queue depths (each stage's output, then the sink's waiting items)
    /// from now until `stop` is cancelled.
    pub(super) fn sampler(
        &self,
        progress: watch::Receiver<Progress>,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<Vec<QueueSample>> {
        if self.stages.is_empty() {
            // The source feeds the engine: its waits count only while the sink may starve.
            let _ = self.gate.set(progress.clone());
        }
        let stats: Vec<Arc<StageStats>> = self.stages.iter().map(|(s, _)| Arc::clone(s)).collect();
        tokio::spawn(async move {
            let started = Instant::now();
            let mut every = Duration::from_millis(100);
            let mut out: Vec<QueueSample> = Vec::new();
            loop {
                let mut depths: Vec<u64> = stats.iter().map(|s| s.queue_depth().0).collect();
                let p = progress.borrow().clone();
                depths.push(p.in_flight.saturating_sub(p.executing));
                out.push(QueueSample {
                    t_ms: started.elapsed().as_millis() as u64,
                    depths,
                });
                if out.len() > MAX_SAMPLES {
                    out = out.into_iter().step_by(2).collect();
                    every *= 2;
                }
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(every) => {}
                }
            }
            out
        })
    }

    /// The profile of the run that ended with `report`.
    pub(super) fn profile(
        &self,
        report: &ferry_core::Report,
        samples: Vec<QueueSample>,
    ) -> Profile {
        let wall = report.elapsed;
        let wall_s = wall.as_secs_f64().max(1e-9);
        let mut source = self.source.node(wall, (0.0, 0));
        source.kind = "source".into();
        source.waiting_share = None;
        source.blocked_share = None;
        source.items_in = source.items_out + source.errors;
        let mut nodes: Vec<NodeProfile> = vec![source];
        for (i, (stats, _)) in self.stages.iter().enumerate() {
            nodes.push(stats.node(wall, crate::stage::mean_max(&samples, i)));
        }
        if let Some(last) = nodes.last_mut() {
            if last.kind == "source" {
                last.blocked_share = Some((self.blocked.as_secs_f64() / wall_s).min(1.0));
            }
        }
        Profile::finish(nodes, report, samples)
    }
}
