//! What each step of a pipeline did: [`StageStats`] count as a stage runs, [`SourceMeter`]
//! measures the source through its stream, and a [`Profile`] sums up the source, the stages
//! and the sink (from the engine's report) for the end report and `--profile FILE.json`.
//!
//! Shares are of the run's wall time: a stage's `busy` is its workers' working time over
//! `workers x wall`; `waiting` is the time its dispatcher waited for input; `blocked` the
//! time it waited for room downstream (back-pressure). The source's `busy` is the time the
//! pipeline waited for the source's next item (what a source does on its own threads ahead
//! of that is not seen). The sink's is the engine's: the share of time a call was in
//! flight. The bottleneck is the step with the largest busy share.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ferry_core::Item;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc::WeakSender;

use crate::error::Error;
use crate::source::ItemStream;

type Out = Result<Item<Value>, Error>;

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Counters of one running stage (shared with its tasks and workers).
#[derive(Debug)]
pub struct StageStats {
    name: String,
    workers: AtomicU64,
    items_in: AtomicU64,
    items_out: AtomicU64,
    errors: AtomicU64,
    busy_ns: AtomicU64,
    waiting_ns: AtomicU64,
    blocked_ns: AtomicU64,
    queue: Mutex<Option<WeakSender<Out>>>,
    queue_capacity: AtomicU64,
}

impl StageStats {
    /// Empty counters for the stage `name`.
    pub fn new(name: impl Into<String>) -> Arc<Self> {
        Arc::new(StageStats {
            name: name.into(),
            workers: AtomicU64::new(1),
            items_in: AtomicU64::new(0),
            items_out: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            waiting_ns: AtomicU64::new(0),
            blocked_ns: AtomicU64::new(0),
            queue: Mutex::new(None),
            queue_capacity: AtomicU64::new(0),
        })
    }

    /// The stage's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn set_workers(&self, n: usize) {
        self.workers.store(n as u64, Ordering::Relaxed);
    }

    pub(super) fn set_queue(&self, tx: WeakSender<Out>, capacity: usize) {
        self.queue_capacity
            .store(capacity as u64, Ordering::Relaxed);
        if let Ok(mut q) = self.queue.lock() {
            *q = Some(tx);
        }
    }

    /// Items waiting in the stage's output queue now, and its bound.
    pub fn queue_depth(&self) -> (u64, u64) {
        let Ok(q) = self.queue.lock() else {
            return (0, 0);
        };
        match q.as_ref().and_then(WeakSender::upgrade) {
            Some(tx) => (
                (tx.max_capacity() - tx.capacity()) as u64,
                tx.max_capacity() as u64,
            ),
            None => (0, 0),
        }
    }

    pub(super) fn count_in(&self) {
        self.items_in.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn count_out(&self, n: usize) {
        self.items_out.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(super) fn count_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn add_busy(&self, since: Instant) {
        self.busy_ns
            .fetch_add(nanos(since.elapsed()), Ordering::Relaxed);
    }

    pub(super) fn add_waiting(&self, since: Instant) {
        self.waiting_ns
            .fetch_add(nanos(since.elapsed()), Ordering::Relaxed);
    }

    pub(super) fn add_blocked(&self, since: Instant) {
        self.blocked_ns
            .fetch_add(nanos(since.elapsed()), Ordering::Relaxed);
    }

    /// The stage's line of the profile, over `wall`; `depth` the sampled depths of its
    /// output queue.
    pub fn node(&self, wall: Duration, depth: (f64, u64)) -> NodeProfile {
        let wall_ns = nanos(wall).max(1) as f64;
        let workers = self.workers.load(Ordering::Relaxed).max(1);
        let share = |c: &AtomicU64| (c.load(Ordering::Relaxed) as f64 / wall_ns).min(1.0);
        let busy =
            (self.busy_ns.load(Ordering::Relaxed) as f64 / (wall_ns * workers as f64)).min(1.0);
        NodeProfile {
            name: self.name.clone(),
            kind: "stage".into(),
            workers,
            busy_share: busy,
            idle_share: 1.0 - busy,
            waiting_share: Some(share(&self.waiting_ns)),
            blocked_share: Some(share(&self.blocked_ns)),
            items_in: self.items_in.load(Ordering::Relaxed),
            items_out: self.items_out.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            queue_capacity: Some(self.queue_capacity.load(Ordering::Relaxed)).filter(|c| *c > 0),
            mean_queue_depth: depth.0,
            max_queue_depth: depth.1,
            latency_ms: None,
        }
    }
}

/// Measures a source through its stream: how long the consumer waited for each next item,
/// and how many items and errors came.
pub struct SourceMeter {
    inner: ItemStream,
    stats: Arc<StageStats>,
    waiting_since: Option<Instant>,
}

impl SourceMeter {
    /// Wraps `inner`, counting into `stats` (`items_out`, `errors`, and `busy` as the
    /// consumer's waits).
    pub fn wrap(inner: ItemStream, stats: Arc<StageStats>) -> ItemStream {
        Box::pin(SourceMeter {
            inner,
            stats,
            waiting_since: None,
        })
    }
}

impl futures_core::Stream for SourceMeter {
    type Item = Out;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Out>> {
        let this = self.get_mut();
        match this.inner.as_mut().poll_next(cx) {
            Poll::Pending => {
                this.waiting_since.get_or_insert_with(Instant::now);
                Poll::Pending
            }
            Poll::Ready(next) => {
                if let Some(since) = this.waiting_since.take() {
                    this.stats.add_busy(since);
                }
                match &next {
                    Some(Ok(_)) => this.stats.count_out(1),
                    Some(Err(_)) => this.stats.count_error(),
                    None => {}
                }
                Poll::Ready(next)
            }
        }
    }
}

/// Queue depths at one moment: each stage's output queue, then the sink's (items accepted
/// by the engine and not yet in a call).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueSample {
    /// Milliseconds since the run started.
    pub t_ms: u64,
    /// Depths, in pipeline order (the stages', then the sink's).
    pub depths: Vec<u64>,
}

/// Sink latency percentiles, milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// One step of the pipeline in the profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeProfile {
    /// `source`, the stage's name, or `sink`.
    pub name: String,
    /// `source`, `stage` or `sink`.
    pub kind: String,
    /// Worker threads (a stage), concurrent calls at most (the sink), 1 (the source).
    pub workers: u64,
    /// Share of the wall time it worked (see the module docs).
    pub busy_share: f64,
    /// `1 - busy_share`.
    pub idle_share: f64,
    /// Share of the wall time it waited for input (stages).
    pub waiting_share: Option<f64>,
    /// Share of the wall time it waited for room downstream (stages, and the source: the
    /// time the pipeline's last step waited for the sink).
    pub blocked_share: Option<f64>,
    /// Items that came in.
    pub items_in: u64,
    /// Items that went out (the sink: items it wrote).
    pub items_out: u64,
    /// Items it refused (dead-lettered; the source: bad records).
    pub errors: u64,
    /// Its output queue's bound (the sink: none, its input is the engine's).
    pub queue_capacity: Option<u64>,
    /// Mean sampled depth of its output queue (the sink: of the items waiting for a call).
    pub mean_queue_depth: f64,
    /// Largest sampled depth.
    pub max_queue_depth: u64,
    /// Per-batch latency (the sink).
    pub latency_ms: Option<Latency>,
}

/// The whole pipeline's profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    /// Wall time of the run, seconds.
    pub elapsed_s: f64,
    /// Items the sink wrote per second.
    pub items_per_sec: f64,
    /// Source, stages, sink, in order.
    pub nodes: Vec<NodeProfile>,
    /// The name of the step with the largest busy share.
    pub bottleneck: String,
    /// Queue depths over time (sampled, at most [`MAX_SAMPLES`] kept).
    pub queue_samples: Vec<QueueSample>,
}

/// The most queue samples a profile keeps: past it, every other one is dropped and the
/// sampling interval doubles.
pub const MAX_SAMPLES: usize = 600;

impl Profile {
    /// Adds the sink's line and names the bottleneck: `nodes` are the source's and the
    /// stages' lines, `report` the engine's.
    pub fn finish(
        nodes: Vec<NodeProfile>,
        report: &ferry_core::Report,
        queue_samples: Vec<QueueSample>,
    ) -> Profile {
        let mut nodes = nodes;
        let d = &report.dispatch;
        let p = &report.progress;
        let sink_depth = mean_max(&queue_samples, nodes.len().saturating_sub(1));
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        nodes.push(NodeProfile {
            name: "sink".into(),
            kind: "sink".into(),
            workers: report.peak_concurrency as u64,
            busy_share: d.busy_share,
            idle_share: d.idle_share,
            waiting_share: None,
            blocked_share: None,
            items_in: p.accepted,
            items_out: p.succeeded,
            errors: p.dead_lettered,
            queue_capacity: None,
            mean_queue_depth: if sink_depth.1 > 0 {
                sink_depth.0
            } else {
                d.mean_queue_depth
            },
            max_queue_depth: sink_depth.1.max(d.max_queue_depth),
            latency_ms: Some(Latency {
                p50: ms(d.p50),
                p95: ms(d.p95),
                p99: ms(d.p99),
            }),
        });
        let bottleneck = nodes
            .iter()
            .max_by(|a, b| a.busy_share.total_cmp(&b.busy_share))
            .map(|n| n.name.clone())
            .unwrap_or_default();
        Profile {
            elapsed_s: report.elapsed.as_secs_f64(),
            items_per_sec: report.items_per_sec,
            nodes,
            bottleneck,
            queue_samples,
        }
    }

    /// The bottleneck's line: `bottleneck: sink (busy 97 %)`.
    pub fn bottleneck_line(&self) -> String {
        let busy = self
            .nodes
            .iter()
            .find(|n| n.name == self.bottleneck)
            .map_or(0.0, |n| n.busy_share);
        format!(
            "bottleneck: {} (busy {:.0} %)",
            self.bottleneck,
            busy * 100.0
        )
    }

    /// The sink's p95 batch latency, if known.
    pub fn sink_p95_ms(&self) -> Option<f64> {
        self.nodes
            .iter()
            .find_map(|n| n.latency_ms.as_ref().map(|l| l.p95))
    }
}

/// Mean and max of queue `i` over the samples.
pub(crate) fn mean_max(samples: &[QueueSample], i: usize) -> (f64, u64) {
    let depths: Vec<u64> = samples
        .iter()
        .filter_map(|s| s.depths.get(i).copied())
        .collect();
    if depths.is_empty() {
        return (0.0, 0);
    }
    let sum: u64 = depths.iter().sum();
    (
        sum as f64 / depths.len() as f64,
        depths.iter().copied().max().unwrap_or(0),
    )
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "profile: {:.2} s, {:.0} items/s (busy/idle: share of the run; waiting: for input; blocked: by the next step)",
            self.elapsed_s, self.items_per_sec
        )?;
        writeln!(
            f,
            "  {:<12} {:>7} {:>5} {:>5} {:>7} {:>7} {:>9} {:>9} {:>6}  queue mean/max",
            "step", "workers", "busy", "idle", "waiting", "blocked", "items in", "out", "errors"
        )?;
        let pct = |x: Option<f64>| x.map_or("-".to_owned(), |v| format!("{:.0}%", v * 100.0));
        for n in &self.nodes {
            let queue = match n.queue_capacity {
                Some(c) => format!(
                    "{:.0}/{} (bound {c})",
                    n.mean_queue_depth, n.max_queue_depth
                ),
                None => format!("{:.0}/{}", n.mean_queue_depth, n.max_queue_depth),
            };
            writeln!(
                f,
                "  {:<12} {:>7} {:>5} {:>5} {:>7} {:>7} {:>9} {:>9} {:>6}  {}",
                n.name,
                n.workers,
                pct(Some(n.busy_share)),
                pct(Some(n.idle_share)),
                pct(n.waiting_share),
                pct(n.blocked_share),
                n.items_in,
                n.items_out,
                n.errors,
                queue
            )?;
        }
        if let Some(l) = self.nodes.iter().find_map(|n| n.latency_ms.as_ref()) {
            writeln!(
                f,
                "  sink batch latency: p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms",
                l.p50, l.p95, l.p99
            )?;
        }
        write!(f, "{}", self.bottleneck_line())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_max_of_a_queue() {
        let s = |t, d: Vec<u64>| QueueSample { t_ms: t, depths: d };
        let samples = vec![s(0, vec![0, 4]), s(100, vec![2, 8]), s(200, vec![4, 0])];
        assert_eq!(mean_max(&samples, 0), (2.0, 4));
        assert_eq!(mean_max(&samples, 1), (4.0, 8));
        assert_eq!(mean_max(&samples, 2), (0.0, 0));
    }
}
