//! `estimated_completion_seconds` of the KubeSentiment-compatible batch API, from measured
//! rates rather than a constant:
//!
//! * at submission: the items queued or in flight at the job's priority and above (its own
//!   included) over the service's measured throughput ([`Store::throughput`] over the jobs
//!   finished in the last 5 minutes, read at most every 2 s);
//! * while it runs: its remaining items over its own rate so far (items ended since its
//!   first claim), or the service's before any of its items ended;
//! * once finished: how long it took, `completed_at - created_at`.
//!
//! Always whole seconds, at least 1. Until anything has been measured (a fresh store), the
//! rate assumed is [`PRIOR_RATE`].

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ferry_store::{JobRecord, Store};
use tokio::time::Instant;

/// Texts per second assumed before any rate was measured.
pub(crate) const PRIOR_RATE: f64 = 5000.0;
/// Finished jobs within this window give the service's rate.
const WINDOW: Duration = Duration::from_secs(300);
/// How long a measured service rate is reused.
const REFRESH: Duration = Duration::from_secs(2);

/// When the rate was measured, and what it was.
type Measured = Option<(Instant, Option<f64>)>;

/// The service's measured rate, cached for [`REFRESH`].
#[derive(Debug, Clone, Default)]
pub(crate) struct RateCache {
    last: Arc<Mutex<Measured>>,
}

impl RateCache {
    /// Items per second the service finished recently; `None` before anything finished.
    pub(crate) async fn rate(&self, store: &dyn Store) -> Option<f64> {
        if let Some((at, rate)) = *self.last.lock().unwrap_or_else(PoisonError::into_inner) {
            if at.elapsed() < REFRESH {
                return rate;
            }
        }
        let rate = match store.throughput(WINDOW).await {
            Ok(rate) => rate,
            Err(e) => {
                tracing::debug!(error = %e, "measuring throughput failed");
                None
            }
        };
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), rate));
        rate
    }
}

/// Seconds since the Unix epoch, now.
pub(crate) fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Seconds `items` take at `rate` (or [`PRIOR_RATE`]), at least 1.
pub(crate) fn seconds(items: u64, rate: Option<f64>) -> u64 {
    let rate = rate.filter(|r| *r > 0.0).unwrap_or(PRIOR_RATE);
    ((items as f64 / rate).ceil() as u64).max(1)
}

/// A job's estimate at `now` (seconds since the epoch), given the service's rate.
pub(crate) fn for_job(job: &JobRecord, service_rate: Option<f64>, now: f64) -> u64 {
    if let (true, Some(done)) = (job.status.is_finished(), job.completed_at) {
        return ((done - job.created_at).ceil().max(1.0)) as u64;
    }
    let ended = job.succeeded + job.failed + job.cancelled;
    let own = job.started_at.and_then(|start| {
        let elapsed = now - start;
        (ended > 0 && elapsed > 0.0).then(|| ended as f64 / elapsed)
    });
    seconds(job.total.saturating_sub(ended), own.or(service_rate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_store::{JobId, JobLimits, JobStatus, Priority};

    fn job(status: JobStatus, ended: u64, started: Option<f64>, done: Option<f64>) -> JobRecord {
        JobRecord {
            id: JobId::new(),
            tenant: String::new(),
            handler: "sentiment".into(),
            params: serde_json::Value::Null,
            priority: Priority::Medium,
            status,
            total: 1000,
            succeeded: ended,
            failed: 0,
            cancelled: 0,
            created_at: 100.0,
            started_at: started,
            completed_at: done,
            error: None,
            limits: JobLimits::default(),
        }
    }

    #[test]
    fn estimates_follow_the_measured_rates() {
        // Pending, 1,000 texts, the service does 100/s: 10 s.
        assert_eq!(
            for_job(&job(JobStatus::Pending, 0, None, None), Some(100.0), 100.0),
            10
        );
        // Nothing measured: the prior, at least 1 s.
        assert_eq!(
            for_job(&job(JobStatus::Pending, 0, None, None), None, 100.0),
            1
        );
        // Running: 250 ended in 5 s (50/s), 750 left: 15 s, whatever the service's rate.
        let running = job(JobStatus::Processing, 250, Some(101.0), None);
        assert_eq!(for_job(&running, Some(1e6), 106.0), 15);
        // Finished after 2.2 s: 3.
        let done = job(JobStatus::Completed, 1000, Some(100.5), Some(102.2));
        assert_eq!(for_job(&done, Some(1.0), 500.0), 3);
        assert_eq!(seconds(0, Some(10.0)), 1);
    }
}
