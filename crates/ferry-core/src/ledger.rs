//! Per-item accounting: every accepted item ends exactly once.
//!
//! The engine moves items (they are owned values, so an item is in one place at a time) and
//! tells the ledger about each move. The ledger keeps the counts inside the progress `watch`
//! channel and changes them under its lock, so every published [`Progress`] satisfies
//! `accepted = succeeded + dead-lettered + cancelled + in-flight`; a move that would break the
//! identity (ending more items than are in flight) is a bug and panics in debug builds.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::progress::Progress;

/// Time constant of the rate estimate.
const RATE_TAU_SECS: f64 = 5.0;

/// The run's accounting; owns the sending side of the progress channel.
#[derive(Debug)]
pub(crate) struct Ledger {
    tx: watch::Sender<Progress>,
    started: Instant,
    last_rate_update: Instant,
}

impl Ledger {
    /// A ledger with all counts at zero, started now.
    pub(crate) fn new() -> Self {
        let now = Instant::now();
        let (tx, _) = watch::channel(Progress::default());
        Ledger {
            tx,
            started: now,
            last_rate_update: now,
        }
    }

    /// A receiver of progress snapshots.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Progress> {
        self.tx.subscribe()
    }

    /// The current snapshot.
    pub(crate) fn snapshot(&self) -> Progress {
        self.tx.borrow().clone()
    }

    /// When the ledger was created.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    fn apply(&self, f: impl FnOnce(&mut Progress)) {
        self.tx.send_modify(|p| {
            f(p);
            debug_assert!(p.balanced(), "ledger out of balance: {p:?}");
        });
    }

    /// `n` items were accepted.
    pub(crate) fn accept(&self, n: u64) {
        self.apply(|p| {
            p.accepted += n;
            p.in_flight += n;
        });
    }

    /// Sets the expected total.
    pub(crate) fn set_total(&self, total: Option<u64>) {
        self.apply(|p| p.total = total);
    }

    /// A call with `items` items started.
    pub(crate) fn call_started(&self, items: u64) {
        self.apply(|p| {
            p.calls += 1;
            p.calls_in_flight += 1;
            p.executing += items;
        });
    }

    /// A call with `items` items finished (its items are settled or rescheduled separately).
    pub(crate) fn call_finished(&self, items: u64, timed_out: bool) {
        self.apply(|p| {
            p.calls_in_flight -= 1;
            p.executing -= items;
            if timed_out {
                p.timeouts += 1;
            }
        });
    }

    /// Items ended: `succeeded`, `dead` and `cancelled` leave the in-flight count.
    pub(crate) fn settle(&mut self, succeeded: u64, dead: u64, cancelled: u64, now: Instant) {
        let n = succeeded + dead + cancelled;
        let (dt, elapsed) = self.advance(now);
        self.apply(|p| {
            assert!(
                p.in_flight >= n,
                "settling {n} items with only {} in flight",
                p.in_flight
            );
            p.in_flight -= n;
            p.succeeded += succeeded;
            p.dead_lettered += dead;
            p.cancelled += cancelled;
            // Exponential-kernel rate estimate for irregular events: each event adds n/tau
            // and the estimate decays with e^(-dt/tau).
            p.rate = p.rate * (-dt / RATE_TAU_SECS).exp() + (n as f64) / RATE_TAU_SECS;
            update_eta(p, elapsed);
        });
    }

    /// Records a retry or split decision.
    pub(crate) fn note(&self, retries: u64, splits: u64) {
        self.apply(|p| {
            p.retries += retries;
            p.splits += splits;
        });
    }

    /// Refreshes time-dependent fields and the controllers' settings.
    pub(crate) fn tick(&mut self, now: Instant, concurrency_limit: usize, batch_size: usize) {
        let (dt, elapsed) = self.advance(now);
        self.apply(|p| {
            p.rate *= (-dt / RATE_TAU_SECS).exp();
            p.concurrency_limit = concurrency_limit;
            p.batch_size = batch_size;
            update_eta(p, elapsed);
        });
    }

    /// Seconds since the last rate update, and time since the start; moves the rate clock.
    fn advance(&mut self, now: Instant) -> (f64, Duration) {
        let dt = now
            .saturating_duration_since(self.last_rate_update)
            .as_secs_f64();
        self.last_rate_update = now;
        (dt, now.saturating_duration_since(self.started))
    }

    /// Marks the last snapshot.
    pub(crate) fn finish(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.started);
        self.apply(|p| {
            p.elapsed = elapsed;
            p.eta = Some(Duration::ZERO);
            p.finished = true;
        });
    }
}

impl Default for Ledger {
    fn default() -> Self {
        Self::new()
    }
}

fn update_eta(p: &mut Progress, elapsed: Duration) {
    p.elapsed = elapsed;
    let remaining = match p.total {
        Some(t) => t.saturating_sub(p.ended()),
        None => p.in_flight,
    };
    // Early in a run the kernel estimate has not warmed up; the plain average is better.
    let rate = if elapsed.as_secs_f64() < RATE_TAU_SECS && elapsed > Duration::ZERO {
        p.ended() as f64 / elapsed.as_secs_f64()
    } else {
        p.rate
    };
    p.eta = (rate > 0.0).then(|| Duration::from_secs_f64((remaining as f64 / rate).min(1e9)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn counts_balance_and_rate_tracks_throughput() {
        let mut l = Ledger::new();
        let rx = l.subscribe();
        l.set_total(Some(1000));
        l.accept(1000);
        for _ in 0..100 {
            tokio::time::advance(Duration::from_millis(100)).await;
            l.settle(9, 1, 0, Instant::now());
            assert!(rx.borrow().balanced());
        }
        let p = rx.borrow().clone();
        assert_eq!(p.ended(), 1000);
        assert_eq!(p.in_flight, 0);
        // 100 items/s for 10 s: the estimate is close to it.
        assert!((p.rate - 100.0).abs() < 15.0, "rate {}", p.rate);
        assert_eq!(p.eta, Some(Duration::ZERO));
    }

    #[tokio::test(start_paused = true)]
    async fn eta_from_total() {
        let mut l = Ledger::new();
        l.set_total(Some(200));
        l.accept(200);
        tokio::time::advance(Duration::from_secs(1)).await;
        l.settle(50, 0, 0, Instant::now());
        let eta = l.snapshot().eta.unwrap();
        assert!((eta.as_secs_f64() - 3.0).abs() < 0.01, "eta {eta:?}");
    }

    #[test]
    #[should_panic(expected = "settling")]
    fn settling_more_than_in_flight_is_a_bug() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut l = Ledger::new();
            l.accept(1);
            l.settle(2, 0, 0, Instant::now());
        });
    }
}
