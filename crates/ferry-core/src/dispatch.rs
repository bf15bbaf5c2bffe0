//! Dispatch settings and the shared throttle: concurrency (fixed or adaptive), rate limits,
//! per-attempt timeout, and the `Retry-After` gate.
//!
//! Rate limits use `governor` (GCRA) on a clock read from tokio's, so they obey tokio's paused
//! clock in tests like everything else; the engine asks with `check`, never sleeps inside the
//! limiter, and waits on its own timer. A [`Throttle`] is shared (`Arc`) by every engine that
//! talks to the same target: a `Retry-After` from one batch pauses all of them, and the rate
//! learned from the target's refusals ([`RateController`]) paces all of them: after a pause
//! the waiting calls leave one by one, `1 / rate` apart, not all at the instant the gate
//! opens.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

use crate::adaptive::{ConcurrencyConfig, RateConfig, RateController};
use crate::error::Error;
use crate::split::SplitStrategy;

/// How many handler calls may be in flight.
#[derive(Debug, Clone, PartialEq)]
pub enum Concurrency {
    /// Exactly this many at most, always.
    Fixed(NonZeroUsize),
    /// Learned by AIMD under `max` (see [`ConcurrencyController`](crate::adaptive::ConcurrencyController)).
    Adaptive(ConcurrencyConfig),
}

impl Concurrency {
    /// The cap that is never exceeded.
    pub fn cap(&self) -> usize {
        match self {
            Concurrency::Fixed(n) => n.get(),
            Concurrency::Adaptive(c) => c.max,
        }
    }
}

/// Rate limits toward one target. `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimits {
    /// Handler calls per second.
    pub requests_per_sec: Option<NonZeroU32>,
    /// Items per second, summed over calls.
    pub items_per_sec: Option<NonZeroU32>,
}

/// Everything about how batches are sent.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchConfig {
    /// Concurrency mode (default adaptive, 1..=64).
    pub concurrency: Concurrency,
    /// Rate limits (default none).
    pub rate: RateLimits,
    /// Per-attempt timeout; a timed-out batch of several items is split, a single item is
    /// retried (default 30 s).
    pub timeout: Duration,
    /// How failed batches are cut (default bisection).
    pub split: SplitStrategy,
    /// A fixed pause between the starts of two calls, like the monday.com board-update
    /// job's "100 ms between batches" (default none). Prefer `rate.requests_per_sec`.
    pub pause: Option<Duration>,
    /// How long the run may keep items that the target keeps asking to wait (429s, budget
    /// errors, overload): past it, such items are dead-lettered instead of sent again
    /// (default none: back-pressure costs time, never an item).
    pub deadline: Option<Duration>,
    /// Learn the target's request rate from its rate-limit answers and pace calls at it
    /// (default on; see [`RateController`]).
    pub learn_rate: bool,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            concurrency: Concurrency::Adaptive(ConcurrencyConfig::default()),
            rate: RateLimits::default(),
            timeout: Duration::from_secs(30),
            split: SplitStrategy::default(),
            pause: None,
            deadline: None,
            learn_rate: true,
        }
    }
}

impl DispatchConfig {
    /// Checks the concurrency bounds and the timeout.
    pub fn validate(&self) -> Result<(), Error> {
        if let Concurrency::Adaptive(c) = &self.concurrency {
            c.validate()?;
        }
        if self.timeout.is_zero() {
            return Err(Error::config(
                "dispatch.timeout",
                "must be greater than zero",
            ));
        }
        Ok(())
    }
}

/// tokio's clock as a governor clock, so rate limits follow `tokio::time::pause`.
#[derive(Debug, Clone, Copy)]
struct TokioClock {
    origin: Instant,
}

impl Clock for TokioClock {
    type Instant = Nanos;
    fn now(&self) -> Nanos {
        Nanos::from(Instant::now().saturating_duration_since(self.origin))
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Nanos>>;

/// Rate limits, the `Retry-After` gate and the learned rate for one target, shareable
/// between engines.
#[derive(Debug)]
pub struct Throttle {
    clock: TokioClock,
    requests: Option<Limiter>,
    items: Option<(Limiter, u32)>,
    gate: Mutex<Option<Instant>>,
    learned: Option<Mutex<Learned>>,
}

/// The learned rate and the pacer that enforces it (rebuilt when the rate changes).
#[derive(Debug)]
struct Learned {
    controller: RateController,
    pacer: Option<Limiter>,
}

impl Learned {
    fn rebuild(&mut self, clock: TokioClock) {
        self.pacer = self.controller.rate().map(|rate| {
            let period = Duration::from_secs_f64(1.0 / rate.max(1e-3));
            let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
                .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX));
            let pacer = RateLimiter::direct_with_clock(quota, clock);
            // A fresh limiter holds one token; spend it, so the first call after a change
            // of rate leaves one period later, not at once (a refusal must not buy a send).
            let _ = pacer.check();
            pacer
        });
    }
}

impl Throttle {
    /// A throttle for `limits`. `max_batch` is the largest batch that will be asked for; the
    /// items limiter's burst is at least that, so a full batch can always pass.
    pub fn new(limits: RateLimits, max_batch: usize) -> Arc<Self> {
        let clock = TokioClock {
            origin: Instant::now(),
        };
        let requests = limits
            .requests_per_sec
            .map(|r| RateLimiter::direct_with_clock(Quota::per_second(r), clock));
        let items = limits.items_per_sec.map(|r| {
            let burst = r.max(
                NonZeroU32::new(max_batch.min(u32::MAX as usize) as u32).unwrap_or(NonZeroU32::MIN),
            );
            (
                RateLimiter::direct_with_clock(Quota::per_second(r).allow_burst(burst), clock),
                burst.get(),
            )
        });
        Arc::new(Throttle {
            clock,
            requests,
            items,
            gate: Mutex::new(None),
            learned: None,
        })
    }

    /// A throttle for `limits` that also learns the target's request rate from its
    /// rate-limit answers and paces calls at it (see [`RateController`]).
    pub fn learning(limits: RateLimits, max_batch: usize, config: RateConfig) -> Arc<Self> {
        let mut throttle = Arc::into_inner(Self::new(limits, max_batch))
            .unwrap_or_else(|| unreachable!("a new Arc has one owner"));
        throttle.learned = Some(Mutex::new(Learned {
            controller: RateController::new(config),
            pacer: None,
        }));
        Arc::new(throttle)
    }

    /// The learned rate in calls per second, if the target ever limited it.
    pub fn learned_rate(&self) -> Option<f64> {
        let learned = self.learned.as_ref()?;
        let learned = learned.lock().unwrap_or_else(|e| e.into_inner());
        learned.controller.rate()
    }

    /// The target accepted a call.
    pub(crate) fn accepted(&self, now: Instant) {
        if let Some(learned) = &self.learned {
            let mut learned = learned.lock().unwrap_or_else(|e| e.into_inner());
            if learned.controller.on_accepted(now) {
                learned.rebuild(self.clock);
                tracing::debug!(rate = learned.controller.rate(), "learned rate probed up");
            }
        }
    }

    /// The target refused a call sent at `sent_at` for its rate, asking for `retry_after`.
    pub(crate) fn limited(&self, sent_at: Instant, now: Instant, retry_after: Option<Duration>) {
        if let Some(learned) = &self.learned {
            let mut learned = learned.lock().unwrap_or_else(|e| e.into_inner());
            if learned.controller.on_limited(sent_at, now, retry_after) {
                learned.rebuild(self.clock);
                tracing::debug!(rate = learned.controller.rate(), "learned rate cut");
            }
        }
    }

    /// An unlimited throttle (only the `Retry-After` gate is active).
    pub fn unlimited() -> Arc<Self> {
        Self::new(RateLimits::default(), 1)
    }

    /// Closes the gate until `until` (keeps a later existing deadline).
    pub(crate) fn pause_until(&self, until: Instant) {
        let mut gate = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        if gate.is_none_or(|g| g < until) {
            *gate = Some(until);
        }
    }

    /// When the gate opens, if it is closed at `now`.
    pub(crate) fn gated_until(&self, now: Instant) -> Option<Instant> {
        let gate = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        gate.filter(|g| *g > now)
    }

    /// Takes permission for one call carrying `items` items, or says when to ask again.
    /// Items are checked first so that a refused call never spends a request token.
    pub(crate) fn acquire(&self, items: usize, now: Instant) -> Result<(), Instant> {
        if let Some(open) = self.gated_until(now) {
            return Err(open);
        }
        let clock_now = self.clock.now();
        if let Some((limiter, burst)) = &self.items {
            let n =
                NonZeroU32::new(items.clamp(1, *burst as usize) as u32).unwrap_or(NonZeroU32::MIN);
            match limiter.check_n(n) {
                Ok(Ok(())) => {}
                Ok(Err(not_until)) => return Err(now + not_until.wait_time_from(clock_now)),
                // Cannot happen: n is clamped to the burst.
                Err(_) => {}
            }
        }
        if let Some(learned) = &self.learned {
            let learned = learned.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(pacer) = &learned.pacer {
                // Checked before the configured request limit spends a token.
                if let Err(not_until) = pacer.check() {
                    return Err(now + not_until.wait_time_from(clock_now));
                }
            }
        }
        if let Some(limiter) = &self.requests {
            if let Err(not_until) = limiter.check() {
                return Err(now + not_until.wait_time_from(clock_now));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn request_rate_follows_the_paused_clock() {
        let t = Throttle::new(
            RateLimits {
                requests_per_sec: NonZeroU32::new(10),
                items_per_sec: None,
            },
            1,
        );
        let start = Instant::now();
        let mut granted = 0;
        while Instant::now() < start + Duration::from_secs(5) {
            match t.acquire(1, Instant::now()) {
                Ok(()) => granted += 1,
                Err(at) => tokio::time::sleep_until(at).await,
            }
        }
        // 10/s for 5 s plus the initial burst of 10.
        assert!((50..=61).contains(&granted), "granted {granted}");
    }

    #[tokio::test(start_paused = true)]
    async fn item_rate_counts_items() {
        let t = Throttle::new(
            RateLimits {
                requests_per_sec: None,
                items_per_sec: NonZeroU32::new(100),
            },
            50,
        );
        let start = Instant::now();
        let mut items = 0;
        while Instant::now() < start + Duration::from_secs(10) {
            match t.acquire(50, Instant::now()) {
                Ok(()) => items += 50,
                Err(at) => tokio::time::sleep_until(at).await,
            }
        }
        assert!((1000..=1150).contains(&items), "items {items}");
    }

    #[tokio::test(start_paused = true)]
    async fn gate_blocks_until_it_opens() {
        let t = Throttle::unlimited();
        let now = Instant::now();
        t.pause_until(now + Duration::from_secs(2));
        t.pause_until(now + Duration::from_secs(1));
        assert_eq!(t.acquire(1, now), Err(now + Duration::from_secs(2)));
        assert_eq!(t.acquire(1, now + Duration::from_secs(2)), Ok(()));
    }
}
