//! Per-stage profile: busy/idle share, queue depth, and call latency percentiles.
//!
//! A stage records busy intervals (time with work in hand), queue-depth samples and call
//! latencies into an HDR histogram; [`StageReport`] is the summary `ferry run` prints and
//! `ferry tune` compares.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::time::Instant;

/// Live measurements of one stage.
#[derive(Debug)]
pub(crate) struct StageProfile {
    name: String,
    started: Instant,
    busy: Duration,
    busy_since: Option<Instant>,
    workers: usize,
    depth_sum: f64,
    depth_max: u64,
    depth_samples: u64,
    latency_us: Histogram<u64>,
    items: u64,
}

impl StageProfile {
    /// A profile for stage `name` with `workers` parallel workers (busy share is per worker).
    pub(crate) fn new(name: impl Into<String>, workers: usize) -> Self {
        StageProfile {
            name: name.into(),
            started: Instant::now(),
            busy: Duration::ZERO,
            busy_since: None,
            workers: workers.max(1),
            depth_sum: 0.0,
            depth_max: 0,
            depth_samples: 0,
            // 1 µs .. 1 hour, 3 significant digits; auto-resize covers anything longer.
            latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .map(|mut h| {
                    h.auto(true);
                    h
                })
                .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable_hist())),
            items: 0,
        }
    }

    /// Adds busy time directly (for stages that measure their own work, e.g. blocking
    /// workers).
    pub(crate) fn add_busy(&mut self, d: Duration) {
        self.busy += d;
    }

    /// Marks the stage busy (work in hand) or idle from `now` on.
    pub(crate) fn set_busy(&mut self, busy: bool, now: Instant) {
        match (busy, self.busy_since) {
            (true, None) => self.busy_since = Some(now),
            (false, Some(since)) => {
                self.busy += now.saturating_duration_since(since);
                self.busy_since = None;
            }
            _ => {}
        }
    }

    /// Samples the depth of the stage's input queue.
    pub(crate) fn sample_depth(&mut self, depth: u64) {
        self.depth_sum += depth as f64;
        self.depth_max = self.depth_max.max(depth);
        self.depth_samples += 1;
    }

    /// Records one call (or chunk) of `items` items that took `latency`.
    pub(crate) fn record(&mut self, latency: Duration, items: u64) {
        let us = (latency.as_micros() as u64).max(1);
        let _ = self.latency_us.record(us);
        self.items += items;
    }

    /// A summary as of `now`.
    pub(crate) fn report(&self, now: Instant) -> StageReport {
        let elapsed = now.saturating_duration_since(self.started);
        let busy = self.busy
            + self
                .busy_since
                .map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        let capacity = elapsed.as_secs_f64() * self.workers as f64;
        let busy_share = if capacity > 0.0 {
            (busy.as_secs_f64() / capacity).min(1.0)
        } else {
            0.0
        };
        let q = |p: f64| Duration::from_micros(self.latency_us.value_at_quantile(p));
        StageReport {
            name: self.name.clone(),
            items: self.items,
            calls: self.latency_us.len(),
            busy_share,
            idle_share: 1.0 - busy_share,
            mean_queue_depth: if self.depth_samples > 0 {
                self.depth_sum / self.depth_samples as f64
            } else {
                0.0
            },
            max_queue_depth: self.depth_max,
            p50: q(0.50),
            p95: q(0.95),
            p99: q(0.99),
        }
    }
}

fn unreachable_hist() -> Histogram<u64> {
    // `Histogram::new(3)` only fails for sigfig > 5; this path exists to avoid a panic path.
    Histogram::new(2).unwrap_or_else(|_| Histogram::new(1).unwrap_or_else(|_| unreachable_hist()))
}

/// A stage's summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageReport {
    /// Stage name.
    pub name: String,
    /// Items the stage processed.
    pub items: u64,
    /// Calls or chunks recorded in the latency histogram.
    pub calls: u64,
    /// Share of worker time spent working, in `[0, 1]`.
    pub busy_share: f64,
    /// `1 - busy_share`.
    pub idle_share: f64,
    /// Mean of the sampled input queue depth.
    pub mean_queue_depth: f64,
    /// Largest sampled input queue depth.
    pub max_queue_depth: u64,
    /// Median call latency.
    pub p50: Duration,
    /// 95th percentile call latency.
    pub p95: Duration,
    /// 99th percentile call latency.
    pub p99: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn busy_share_and_percentiles() {
        let mut p = StageProfile::new("dispatch", 1);
        p.set_busy(true, Instant::now());
        tokio::time::advance(Duration::from_secs(3)).await;
        p.set_busy(false, Instant::now());
        tokio::time::advance(Duration::from_secs(1)).await;
        for ms in 1..=100u64 {
            p.record(Duration::from_millis(ms), 10);
        }
        p.sample_depth(4);
        p.sample_depth(8);
        let r = p.report(Instant::now());
        assert!((r.busy_share - 0.75).abs() < 1e-9);
        assert_eq!(r.items, 1000);
        assert_eq!(r.max_queue_depth, 8);
        assert!((r.mean_queue_depth - 6.0).abs() < 1e-9);
        assert!(r.p50 >= Duration::from_millis(49) && r.p50 <= Duration::from_millis(51));
        assert!(r.p99 >= Duration::from_millis(98));
    }
}
