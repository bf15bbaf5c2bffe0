//! Progress: counts, rate and ETA, published as one `watch` channel that the progress bar,
//! the service's event streams and metrics all read. This module owns the snapshot type and
//! its identity; the ledger owns the updates.

use std::time::Duration;

use serde::Serialize;

/// A consistent snapshot of a run. Every snapshot satisfies
/// `accepted == succeeded + dead_lettered + cancelled + in_flight`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Progress {
    /// Items taken in by the engine.
    pub accepted: u64,
    /// Items a handler completed.
    pub succeeded: u64,
    /// Items sent to the dead-letter sink.
    pub dead_lettered: u64,
    /// Items dropped by cancellation (never by anything else).
    pub cancelled: u64,
    /// Items accepted and not yet ended: waiting, in a handler call, or awaiting a retry.
    pub in_flight: u64,
    /// Of `in_flight`, the items inside a handler call right now.
    pub executing: u64,
    /// Handler calls in flight right now.
    pub calls_in_flight: u64,
    /// Handler calls made.
    pub calls: u64,
    /// Batches or items scheduled for another attempt.
    pub retries: u64,
    /// Batches split after failing.
    pub splits: u64,
    /// Calls that hit the per-attempt timeout.
    pub timeouts: u64,
    /// Expected number of items, when the source knows it.
    pub total: Option<u64>,
    /// Items ended per second, exponentially weighted (time constant 5 s).
    pub rate: f64,
    /// Time since the engine started.
    pub elapsed: Duration,
    /// Estimated time to finish: remaining items (of `total`, else `in_flight`) / `rate`.
    pub eta: Option<Duration>,
    /// The concurrency limit in force.
    pub concurrency_limit: usize,
    /// The batch size a fresh batch gets now.
    pub batch_size: usize,
    /// Set on the last snapshot of a run.
    pub finished: bool,
}

impl Progress {
    /// Items that ended (succeeded, dead-lettered or cancelled).
    pub fn ended(&self) -> u64 {
        self.succeeded + self.dead_lettered + self.cancelled
    }

    /// Whether the ledger identity holds (it does for every published snapshot).
    pub fn balanced(&self) -> bool {
        self.accepted == self.ended() + self.in_flight
    }

    /// Share done in `[0, 1]`, when `total` is known.
    pub fn fraction(&self) -> Option<f64> {
        self.total
            .filter(|t| *t > 0)
            .map(|t| (self.ended() as f64 / t as f64).min(1.0))
    }
}
