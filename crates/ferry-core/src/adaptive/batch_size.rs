//! Adaptive batch size: toward a target batch latency, below a learned ceiling.
//!
//! The algorithm:
//!
//! * Only *full* batches (at least `fullness` × the current size) teach the controller; a
//!   tail batch or a split part says nothing about whether the size is right.
//! * A full batch that succeeded faster than `target_latency` grows the size: ×`growth`
//!   (slow start) while no ceiling is known, else halfway to `ceiling − 1`. The new size is
//!   also capped at what the observed latency projects to reach the target (latency is
//!   assumed linear in size, the common case for APIs, databases and models).
//! * A full batch slower than the target shrinks the size in proportion
//!   (`size × target / latency`, at most halving).
//! * A batch that was *too large* (it timed out or the target answered `Split`) sets the
//!   ceiling to its size and drops the size to `ceiling × backoff`. After `probe_after` full
//!   successes just under the ceiling, the controller probes one step above it; a probe that
//!   fails doubles `probe_after`, so a fixed server limit costs a vanishing share of calls.
//!
//! Knobs ([`BatchSizeConfig`]): `initial`, `min`, `max` (a cap, never exceeded),
//! `target_latency` (2 s), `growth` (1.5), `backoff` (0.75), `fullness` (0.9),
//! `probe_after` (64).

use std::time::Duration;

use crate::error::Error;

/// Settings of the [`BatchSizeController`]; see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchSizeConfig {
    /// Starting size (default 16).
    pub initial: usize,
    /// Smallest size (default 1).
    pub min: usize,
    /// Largest size: a cap, never exceeded (default: the flush policy's `max_items`).
    pub max: usize,
    /// The batch latency the controller aims for (default 2 s).
    pub target_latency: Duration,
    /// Slow-start multiplier (default 1.5).
    pub growth: f64,
    /// Multiplier applied to a too-large size (default 0.75).
    pub backoff: f64,
    /// Share of the current size a batch must carry to count as full (default 0.9).
    pub fullness: f64,
    /// Full successes under the ceiling before probing above it (default 64).
    pub probe_after: u32,
}

impl Default for BatchSizeConfig {
    fn default() -> Self {
        BatchSizeConfig {
            initial: 16,
            min: 1,
            max: 500,
            target_latency: Duration::from_secs(2),
            growth: 1.5,
            backoff: 0.75,
            fullness: 0.9,
            probe_after: 64,
        }
    }
}

impl BatchSizeConfig {
    /// Checks `1 <= min <= initial <= max` and the ratios.
    pub fn validate(&self) -> Result<(), Error> {
        if self.min == 0 {
            return Err(Error::config("batch.min_items", "must be at least 1"));
        }
        if self.max < self.min {
            return Err(Error::config(
                "batch.max_items",
                format!(
                    "must be at least min_items ({}), got {}",
                    self.min, self.max
                ),
            ));
        }
        if !(self.min..=self.max).contains(&self.initial) {
            return Err(Error::config(
                "batch.initial_items",
                format!(
                    "must lie in [{}, {}], got {}",
                    self.min, self.max, self.initial
                ),
            ));
        }
        if self.target_latency.is_zero() {
            return Err(Error::config(
                "batch.target_latency",
                "must be greater than zero",
            ));
        }
        if self.growth <= 1.0 {
            return Err(Error::config("batch.growth", "must be greater than 1"));
        }
        if !(self.backoff > 0.0 && self.backoff < 1.0) {
            return Err(Error::config(
                "batch.backoff",
                "must lie strictly between 0 and 1",
            ));
        }
        Ok(())
    }
}

/// The adaptive batch size; see the module docs.
#[derive(Debug, Clone)]
pub struct BatchSizeController {
    config: BatchSizeConfig,
    size: usize,
    ceiling: Option<usize>,
    successes_under_ceiling: u32,
    probe_after: u32,
    probing: bool,
}

impl BatchSizeController {
    /// A controller starting at `config.initial`. Call [`BatchSizeConfig::validate`] first.
    pub fn new(config: BatchSizeConfig) -> Self {
        let size = config.initial.clamp(config.min.max(1), config.max.max(1));
        BatchSizeController {
            probe_after: config.probe_after.max(1),
            config,
            size,
            ceiling: None,
            successes_under_ceiling: 0,
            probing: false,
        }
    }

    /// The size the next fresh batch should have.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The smallest size known to be too large, if any.
    pub fn ceiling(&self) -> Option<usize> {
        self.ceiling
    }

    fn is_full(&self, len: usize) -> bool {
        (len as f64) >= (self.size as f64) * self.config.fullness
    }

    /// Records a call of `len` items that went through in `latency`.
    pub fn on_success(&mut self, len: usize, latency: Duration) {
        if !self.is_full(len) {
            return;
        }
        let target = self.config.target_latency.as_secs_f64();
        let observed = latency.as_secs_f64().max(1e-9);
        if observed > target {
            let factor = (target / observed).max(0.5);
            self.size = ((self.size as f64 * factor).floor() as usize).max(self.config.min);
            return;
        }
        if self.probing {
            // The probe went through: the ceiling was not where we thought.
            self.probing = false;
            self.ceiling = None;
            self.probe_after = self.config.probe_after.max(1);
        }
        // Never grow past what the observed latency projects to reach the target.
        let projected = ((len as f64) * target / observed).floor() as usize;
        let next = match self.ceiling {
            None => ((self.size as f64) * self.config.growth).ceil() as usize,
            Some(ceiling) => {
                let below = ceiling.saturating_sub(1).max(self.config.min);
                if self.size >= below {
                    self.successes_under_ceiling += 1;
                    if self.successes_under_ceiling >= self.probe_after {
                        self.successes_under_ceiling = 0;
                        self.probing = true;
                        ceiling + (ceiling / 10).max(1)
                    } else {
                        below
                    }
                } else {
                    self.size + (below - self.size).div_ceil(2)
                }
            }
        };
        self.size = next
            .min(projected.max(self.size))
            .clamp(self.config.min, self.config.max);
    }

    /// Records a call of `len` items that was too large: it timed out or the target answered
    /// `Split` without naming an item.
    pub fn on_too_large(&mut self, len: usize) {
        if len <= self.config.min {
            return;
        }
        if self.probing {
            self.probing = false;
            self.probe_after = self.probe_after.saturating_mul(2);
        }
        self.ceiling = Some(
            self.ceiling
                .map_or(len, |c| c.min(len))
                .max(self.config.min + 1),
        );
        let backed = ((len as f64) * self.config.backoff).floor() as usize;
        self.size = backed
            .min(self.size)
            .clamp(self.config.min, self.config.max);
        self.successes_under_ceiling = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A target that takes 10 ms + 1 ms/item and times out above `limit` items.
    fn drive(ctl: &mut BatchSizeController, limit: usize, calls: usize) -> Vec<usize> {
        let mut sizes = Vec::new();
        for _ in 0..calls {
            let n = ctl.size();
            sizes.push(n);
            if n > limit {
                ctl.on_too_large(n);
            } else {
                ctl.on_success(n, Duration::from_millis(10 + n as u64));
            }
        }
        sizes
    }

    #[test]
    fn settles_just_under_a_hidden_size_limit() {
        let mut ctl = BatchSizeController::new(BatchSizeConfig {
            max: 1000,
            ..Default::default()
        });
        let sizes = drive(&mut ctl, 137, 2000);
        let tail = &sizes[1000..];
        let failures = tail.iter().filter(|&&n| n > 137).count();
        let mean = tail.iter().sum::<usize>() as f64 / tail.len() as f64;
        assert!(
            failures <= 6,
            "{failures} probes over the limit in 1000 calls"
        );
        assert!(mean > 130.0, "mean size {mean}");
    }

    #[test]
    fn shrinks_toward_the_target_latency() {
        let cfg = BatchSizeConfig {
            initial: 400,
            max: 1000,
            target_latency: Duration::from_millis(100),
            ..Default::default()
        };
        let mut ctl = BatchSizeController::new(cfg);
        for _ in 0..50 {
            let n = ctl.size();
            ctl.on_success(n, Duration::from_millis(n as u64)); // 1 ms per item
        }
        assert!((80..=100).contains(&ctl.size()), "size {}", ctl.size());
    }

    proptest! {
        #[test]
        fn size_stays_within_bounds(min in 1usize..10, extra in 0usize..500, events in proptest::collection::vec((any::<bool>(), 1usize..1000, 0u64..5000), 1..200)) {
            let cfg = BatchSizeConfig { min, initial: min, max: min + extra, ..Default::default() };
            let mut ctl = BatchSizeController::new(cfg);
            for (ok, len, ms) in events {
                if ok { ctl.on_success(len, Duration::from_millis(ms)) } else { ctl.on_too_large(len) }
                prop_assert!(ctl.size() >= min && ctl.size() <= min + extra);
            }
        }
    }
}
