//! The KubeSentiment-compatible batch API's Prometheus metrics, under its names, beside the
//! engines' `ferry_*` metrics on `/metrics` (of `ferry serve` and of each `ferry worker`):
//!
//! | metric | type | what |
//! |---|---|---|
//! | `async_batch_jobs_total{priority}` | counter | batch jobs submitted (`POST /api/v1/batch/predict`) to this API process |
//! | `async_batch_jobs_active` | gauge | jobs this process's worker holds items of right now |
//! | `async_batch_processing_time_seconds{priority}` | summary | a finished job's `completed_at - started_at`, observed by the worker that recorded its last item |
//! | `async_batch_throughput_tps` | gauge | items this process's worker recorded per second, over the last 10 s |
//! | `async_batch_queue_size` | gauge | unfinished jobs in the store, every priority (read at each scrape) |
//! | `async_batch_priority_{high,medium,low}_limit` | gauge | the queue limits (read at each scrape), for `async_batch_queue_size / async_batch_priority_medium_limit` |
//!
//! Per-process figures add up across processes (`sum(async_batch_throughput_tps)`); the
//! store-wide ones (`queue_size`, the limits) are the same on every process.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use ferry_store::{JobRecord, Priority, Store};
use tokio::time::Instant;

/// `async_batch_jobs_total`.
pub const JOBS_TOTAL: &str = "async_batch_jobs_total";
/// `async_batch_jobs_active`.
pub const JOBS_ACTIVE: &str = "async_batch_jobs_active";
/// `async_batch_processing_time_seconds`.
pub const PROCESSING_TIME: &str = "async_batch_processing_time_seconds";
/// `async_batch_throughput_tps`.
pub const THROUGHPUT: &str = "async_batch_throughput_tps";
/// `async_batch_queue_size`.
pub const QUEUE_SIZE: &str = "async_batch_queue_size";

/// The window `async_batch_throughput_tps` averages over.
const WINDOW: Duration = Duration::from_secs(10);

fn limit_name(p: Priority) -> &'static str {
    match p {
        Priority::High => "async_batch_priority_high_limit",
        Priority::Medium => "async_batch_priority_medium_limit",
        Priority::Low => "async_batch_priority_low_limit",
    }
}

/// Describes every metric and sets the counters and gauges to 0, so each is present from
/// the first scrape. Call once after installing the Prometheus recorder.
pub fn describe() {
    metrics::describe_counter!(JOBS_TOTAL, "Batch jobs submitted, by priority");
    metrics::describe_gauge!(JOBS_ACTIVE, "Jobs this worker holds items of");
    metrics::describe_histogram!(
        PROCESSING_TIME,
        metrics::Unit::Seconds,
        "Finished jobs' processing time (first claim to last result), by priority"
    );
    metrics::describe_gauge!(THROUGHPUT, "Items recorded per second over the last 10 s");
    metrics::describe_gauge!(QUEUE_SIZE, "Unfinished jobs in the store");
    for p in Priority::DESCENDING {
        metrics::counter!(JOBS_TOTAL, "priority" => p.as_str()).absolute(0);
    }
    metrics::gauge!(JOBS_ACTIVE).set(0.0);
    metrics::gauge!(THROUGHPUT).set(0.0);
    metrics::gauge!(QUEUE_SIZE).set(0.0);
}

/// A batch job was submitted.
pub(crate) fn job_submitted(priority: Priority) {
    metrics::counter!(JOBS_TOTAL, "priority" => priority.as_str()).increment(1);
}

/// This worker holds items of `n` jobs.
pub(crate) fn set_active_jobs(n: usize) {
    metrics::gauge!(JOBS_ACTIVE).set(n as f64);
}

/// `job` finished: observes its processing time.
pub(crate) fn job_finished(job: &JobRecord) {
    if let (Some(start), Some(end)) = (job.started_at, job.completed_at) {
        metrics::histogram!(PROCESSING_TIME, "priority" => job.priority.as_str())
            .record((end - start).max(0.0));
    }
}

/// Reads the queues from the store into `async_batch_queue_size` and the limit gauges
/// (before each scrape). A store error leaves them as they were.
pub async fn refresh_queue(store: &dyn Store) {
    match store.queue_depths().await {
        Ok(depths) => {
            let unfinished: u64 = depths.iter().map(|d| d.unfinished_jobs).sum();
            metrics::gauge!(QUEUE_SIZE).set(unfinished as f64);
            for d in &depths {
                metrics::gauge!(limit_name(d.priority)).set(d.limit as f64);
            }
        }
        Err(e) => tracing::debug!(error = %e, "reading the queues for /metrics failed"),
    }
}

/// Items recorded per second over the last [`WINDOW`] (`async_batch_throughput_tps`).
#[derive(Debug)]
pub(crate) struct Throughput {
    started: Instant,
    samples: Mutex<VecDeque<(Instant, u64)>>,
}

impl Default for Throughput {
    fn default() -> Self {
        Throughput {
            started: Instant::now(),
            samples: Mutex::default(),
        }
    }
}

impl Throughput {
    /// `n` items were recorded now.
    pub(crate) fn record(&self, n: u64) {
        let now = Instant::now();
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        samples.push_back((now, n));
        while samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > WINDOW)
        {
            samples.pop_front();
        }
    }

    /// The rate now: items in the window over the window (or over the time since the meter
    /// started, when that is shorter).
    pub(crate) fn rate(&self) -> f64 {
        let now = Instant::now();
        let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        let items: u64 = samples
            .iter()
            .filter(|(t, _)| now.duration_since(*t) <= WINDOW)
            .map(|(_, n)| n)
            .sum();
        let span = now.duration_since(self.started).min(WINDOW).as_secs_f64();
        if span > 0.0 {
            items as f64 / span
        } else {
            0.0
        }
    }

    /// Sets `async_batch_throughput_tps` to [`rate`](Self::rate).
    pub(crate) fn publish(&self) {
        metrics::gauge!(THROUGHPUT).set(self.rate());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn throughput_averages_over_the_window() {
        let meter = Throughput::default();
        tokio::time::advance(Duration::from_secs(2)).await;
        meter.record(10);
        assert!((meter.rate() - 5.0).abs() < 1e-9, "{}", meter.rate());
        tokio::time::advance(Duration::from_secs(8)).await;
        meter.record(30);
        assert!((meter.rate() - 4.0).abs() < 1e-9, "{}", meter.rate());
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(meter.rate(), 0.0);
    }
}
