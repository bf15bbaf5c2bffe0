//! The end-of-run report: what a finished run did, as a value (serializable, for the
//! service and `ferry tune`) and as text (`Display`, what `ferry run` prints).

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::profile::StageReport;
use crate::progress::Progress;

/// What a finished run did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The final progress snapshot (counts, retries, splits, timeouts).
    pub progress: Progress,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Items ended per second over the whole run.
    pub items_per_sec: f64,
    /// The dispatch stage's profile: busy share, queue depth, call latency percentiles.
    pub dispatch: StageReport,
    /// The concurrency limit the controller settled on (or the fixed one).
    pub final_concurrency: usize,
    /// The batch size the controller settled on (or the fixed one).
    pub final_batch_size: usize,
    /// The request rate (calls per second) learned from the target's rate-limit answers,
    /// if it ever gave one.
    pub learned_rate: Option<f64>,
    /// The largest number of calls that were in flight at once.
    pub peak_concurrency: usize,
    /// Where dead letters went.
    pub dead_letters: String,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.progress;
        writeln!(
            f,
            "items: {} accepted, {} succeeded, {} dead-lettered, {} cancelled",
            p.accepted, p.succeeded, p.dead_lettered, p.cancelled
        )?;
        writeln!(
            f,
            "time: {:.2?} elapsed, {:.0} items/s, {} calls",
            self.elapsed, self.items_per_sec, p.calls
        )?;
        writeln!(
            f,
            "batch latency: p50 {:.1?}  p95 {:.1?}  p99 {:.1?}",
            self.dispatch.p50, self.dispatch.p95, self.dispatch.p99
        )?;
        write!(
            f,
            "settled on: concurrency limit {} (most calls in flight at once: {}), batch size {}",
            self.final_concurrency, self.peak_concurrency, self.final_batch_size
        )?;
        match self.learned_rate {
            Some(rate) => writeln!(f, ", rate {rate:.2} calls/s (learned from rate limits)")?,
            None => writeln!(f)?,
        }
        writeln!(
            f,
            "retries: {}, splits: {}, timeouts: {}",
            p.retries, p.splits, p.timeouts
        )?;
        writeln!(
            f,
            "dispatch: {:.0}% busy, queue depth mean {:.1} max {}",
            self.dispatch.busy_share * 100.0,
            self.dispatch.mean_queue_depth,
            self.dispatch.max_queue_depth
        )?;
        write!(
            f,
            "dead letters: {} -> {}",
            p.dead_lettered, self.dead_letters
        )
    }
}
