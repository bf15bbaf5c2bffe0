//! Adaptive concurrency: additive increase, multiplicative decrease on latency and
//! back-pressure.
//!
//! The algorithm, after Vector's adaptive request concurrency (ARC) and Netflix's
//! concurrency-limits:
//!
//! * Observations are gathered over a *window* one past-RTT long (the first window lasts one
//!   observed RTT). For each window the controller records the mean RTT of the calls that
//!   finished in it, whether any call signalled back-pressure (429, 5xx, timeout, connection
//!   loss), and whether the in-flight count actually reached the limit.
//! * At the end of a window:
//!   - back-pressure, or a window mean above `past_mean + deviation_scale * past_std_dev`,
//!     multiplies the limit by `decrease_ratio` (at least −1, never below `min`);
//!   - otherwise, if the limit was reached (the *app-limited guard*: a limit that was never
//!     used tells us nothing about whether more would help) and the window mean is no worse
//!     than `past_mean * (1 + increase_tolerance)`, the limit grows by one;
//!   - the window mean then feeds the long-term EWMA of RTT (weight `ewma_alpha`), except
//!     in back-pressured windows, whose latencies say more about the failure than the target.
//!
//! Knobs ([`ConcurrencyConfig`]): `initial` (1), `min` (1), `max` (cap, never exceeded),
//! `decrease_ratio` (0.9), `ewma_alpha` (0.4), `deviation_scale` (2.5),
//! `increase_tolerance` (0.05).

use std::time::Duration;

use tokio::time::Instant;

use super::ewma::MeanVar;
use crate::error::Error;

/// What a finished call says about the target's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The call completed (successfully or with item-level errors).
    Ok,
    /// The target pushed back: 429, 503 and other 5xx, timeouts, dropped connections.
    Backpressure,
    /// The call says nothing about load (e.g. a `Split` for a poison item); ignored.
    Neutral,
}

/// Settings of the [`ConcurrencyController`]; see the module docs for the algorithm.
#[derive(Debug, Clone, PartialEq)]
pub struct ConcurrencyConfig {
    /// Starting limit (default 1).
    pub initial: usize,
    /// Lowest limit (default 1).
    pub min: usize,
    /// Highest limit: a cap that is never exceeded (default 64).
    pub max: usize,
    /// Multiplier applied on back-pressure or a latency spike (default 0.9).
    pub decrease_ratio: f64,
    /// Weight of a window's mean RTT in the long-term average (default 0.4).
    pub ewma_alpha: f64,
    /// How many standard deviations above the mean count as a spike (default 2.5).
    pub deviation_scale: f64,
    /// How much slower than the long-term mean a window may be and still allow growth
    /// (default 0.05 = 5 %).
    pub increase_tolerance: f64,
}

impl Default for ConcurrencyConfig {
    fn default() -> Self {
        ConcurrencyConfig {
            initial: 1,
            min: 1,
            max: 64,
            decrease_ratio: 0.9,
            ewma_alpha: 0.4,
            deviation_scale: 2.5,
            increase_tolerance: 0.05,
        }
    }
}

impl ConcurrencyConfig {
    /// Checks `1 <= min <= initial <= max` and the ratios.
    pub fn validate(&self) -> Result<(), Error> {
        if self.min == 0 {
            return Err(Error::config(
                "dispatch.min_concurrency",
                "must be at least 1",
            ));
        }
        if self.max < self.min {
            return Err(Error::config(
                "dispatch.max_concurrency",
                format!(
                    "must be at least min_concurrency ({}), got {}",
                    self.min, self.max
                ),
            ));
        }
        if !(self.min..=self.max).contains(&self.initial) {
            return Err(Error::config(
                "dispatch.initial_concurrency",
                format!(
                    "must lie in [{}, {}], got {}",
                    self.min, self.max, self.initial
                ),
            ));
        }
        if !(self.decrease_ratio > 0.0 && self.decrease_ratio < 1.0) {
            return Err(Error::config(
                "dispatch.decrease_ratio",
                "must lie strictly between 0 and 1",
            ));
        }
        if !(self.ewma_alpha > 0.0 && self.ewma_alpha <= 1.0) {
            return Err(Error::config("dispatch.ewma_alpha", "must lie in (0, 1]"));
        }
        Ok(())
    }
}

/// The adaptive concurrency limit; see the module docs.
#[derive(Debug, Clone)]
pub struct ConcurrencyController {
    config: ConcurrencyConfig,
    limit: usize,
    past: MeanVar,
    window_start: Option<Instant>,
    window_sum: f64,
    window_count: u32,
    window_backpressure: bool,
    window_reached: bool,
}

impl ConcurrencyController {
    /// A controller starting at `config.initial`. Call [`ConcurrencyConfig::validate`] first.
    pub fn new(config: ConcurrencyConfig) -> Self {
        let limit = config.initial.clamp(config.min.max(1), config.max.max(1));
        ConcurrencyController {
            past: MeanVar::new(config.ewma_alpha),
            config,
            limit,
            window_start: None,
            window_sum: 0.0,
            window_count: 0,
            window_backpressure: false,
            window_reached: false,
        }
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Tells the controller how many calls are in flight right after a dispatch.
    pub fn on_dispatch(&mut self, in_flight: usize, now: Instant) {
        if self.window_start.is_none() {
            self.window_start = Some(now);
        }
        if in_flight >= self.limit {
            self.window_reached = true;
        }
    }

    /// Records a finished call.
    pub fn on_response(&mut self, rtt: Duration, signal: Signal, now: Instant) {
        match signal {
            Signal::Neutral => return,
            Signal::Backpressure => self.window_backpressure = true,
            Signal::Ok => {
                self.window_sum += rtt.as_secs_f64();
                self.window_count += 1;
            }
        }
        let start = *self.window_start.get_or_insert(now);
        let window_len = self
            .past
            .mean()
            .or_else(|| {
                (self.window_count > 0).then(|| self.window_sum / f64::from(self.window_count))
            })
            .unwrap_or(0.0);
        if now.duration_since(start).as_secs_f64() >= window_len {
            self.end_window(now);
        }
    }

    fn end_window(&mut self, now: Instant) {
        let current =
            (self.window_count > 0).then(|| self.window_sum / f64::from(self.window_count));
        let spike = match (current, self.past.mean()) {
            (Some(c), Some(p)) if self.past.samples() >= 2 => {
                c > p + self.config.deviation_scale * self.past.std_dev()
                    && c > p * (1.0 + self.config.increase_tolerance)
            }
            _ => false,
        };
        if self.window_backpressure || spike {
            let decreased = ((self.limit as f64) * self.config.decrease_ratio).floor() as usize;
            self.limit = decreased
                .min(self.limit.saturating_sub(1))
                .max(self.config.min);
        } else if self.window_reached && self.limit < self.config.max {
            let no_worse = match (current, self.past.mean()) {
                (Some(c), Some(p)) => c <= p * (1.0 + self.config.increase_tolerance),
                _ => true,
            };
            if no_worse {
                self.limit += 1;
            }
        }
        if !self.window_backpressure {
            if let Some(c) = current {
                self.past.update(c);
            }
        }
        self.window_start = Some(now);
        self.window_sum = 0.0;
        self.window_count = 0;
        self.window_backpressure = false;
        self.window_reached = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctl(max: usize) -> ConcurrencyController {
        ConcurrencyController::new(ConcurrencyConfig {
            max,
            ..Default::default()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn grows_only_when_the_limit_is_reached() {
        let mut c = ctl(10);
        let rtt = Duration::from_millis(100);
        // App-limited: one call at a time although the limit grows to 2 and beyond.
        for _ in 0..20 {
            c.on_dispatch(1, Instant::now());
            tokio::time::advance(rtt).await;
            c.on_response(rtt, Signal::Ok, Instant::now());
        }
        assert!(
            c.limit() <= 2,
            "limit {} grew without being used",
            c.limit()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn grows_to_the_cap_under_steady_latency_and_never_past_it() {
        let mut c = ctl(8);
        let rtt = Duration::from_millis(100);
        for _ in 0..200 {
            let l = c.limit();
            c.on_dispatch(l, Instant::now());
            tokio::time::advance(rtt).await;
            for _ in 0..l {
                c.on_response(rtt, Signal::Ok, Instant::now());
            }
            assert!(c.limit() <= 8);
        }
        assert_eq!(c.limit(), 8);
    }

    #[tokio::test(start_paused = true)]
    async fn backs_off_on_backpressure() {
        let mut c = ConcurrencyController::new(ConcurrencyConfig {
            initial: 20,
            max: 20,
            ..Default::default()
        });
        let rtt = Duration::from_millis(100);
        for _ in 0..5 {
            c.on_dispatch(20, Instant::now());
            tokio::time::advance(rtt).await;
            c.on_response(rtt, Signal::Ok, Instant::now());
        }
        let before = c.limit();
        tokio::time::advance(rtt).await;
        c.on_response(rtt, Signal::Backpressure, Instant::now());
        assert!(c.limit() < before);
    }

    #[tokio::test(start_paused = true)]
    async fn backs_off_on_a_latency_spike() {
        let mut c = ConcurrencyController::new(ConcurrencyConfig {
            initial: 10,
            max: 20,
            ..Default::default()
        });
        let rtt = Duration::from_millis(100);
        for _ in 0..10 {
            c.on_dispatch(5, Instant::now());
            tokio::time::advance(rtt).await;
            c.on_response(rtt, Signal::Ok, Instant::now());
        }
        let before = c.limit();
        tokio::time::advance(rtt * 3).await;
        c.on_response(rtt * 3, Signal::Ok, Instant::now());
        assert!(c.limit() < before);
    }

    #[test]
    fn validation_names_keys() {
        let bad = ConcurrencyConfig {
            min: 5,
            max: 2,
            ..Default::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(Error::InvalidConfig {
                key: "dispatch.max_concurrency",
                ..
            })
        ));
        let bad = ConcurrencyConfig {
            initial: 0,
            ..Default::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(Error::InvalidConfig {
                key: "dispatch.initial_concurrency",
                ..
            })
        ));
    }
}
