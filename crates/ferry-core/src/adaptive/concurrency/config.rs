//! [`ConcurrencyConfig`]: the adaptive concurrency limit's settings and their checks.

use crate::error::Error;

/// Settings of the [`ConcurrencyController`](super::ConcurrencyController); see the module docs for the algorithm.
#[derive(Debug, Clone, PartialEq)]
pub struct ConcurrencyConfig {
    /// Starting limit (default 4; a start above `max` starts at `max`).
    pub initial: usize,
    /// Lowest limit (default 1).
    pub min: usize,
    /// Highest limit: a cap that is never exceeded (default 64).
    pub max: usize,
    /// Multiplier applied on back-pressure or queueing (default 0.9).
    pub decrease_ratio: f64,
    /// Latency above the no-load baseline that still counts as "not queueing" (default 0.1
    /// = 10 %); twice this triggers a decrease.
    pub queue_tolerance: f64,
    /// Waiting calls that still allow growth (default 1.0).
    pub queue_min: f64,
    /// Waiting calls beyond which the limit decreases (default 3.0).
    pub queue_max: f64,
    /// Double the limit per window until the first sign of queueing (default true).
    pub slow_start: bool,
}

impl Default for ConcurrencyConfig {
    fn default() -> Self {
        ConcurrencyConfig {
            initial: 4,
            min: 1,
            max: 64,
            decrease_ratio: 0.9,
            queue_tolerance: 0.1,
            queue_min: 1.0,
            queue_max: 3.0,
            slow_start: true,
        }
    }
}

impl ConcurrencyConfig {
    /// Checks `1 <= min <= initial` and `min <= max`, and the ratios. A start above the cap
    /// is not an error: the limit starts at the cap (the default start, 4, under a cap of
    /// 2 starts at 2).
    pub fn validate(&self) -> Result<(), Error> {
        crate::adaptive::bounds::validate_bounds(
            (self.min, self.initial.min(self.max), self.max),
            [
                "dispatch.min_concurrency",
                "dispatch.initial_concurrency",
                "dispatch.max_concurrency",
            ],
        )?;
        if !(self.decrease_ratio > 0.0 && self.decrease_ratio < 1.0) {
            return Err(Error::config(
                "dispatch.decrease_ratio",
                "must lie strictly between 0 and 1",
            ));
        }
        if self.queue_tolerance.is_nan() || self.queue_tolerance <= 0.0 {
            return Err(Error::config(
                "dispatch.queue_tolerance",
                "must be greater than 0",
            ));
        }
        Ok(())
    }
}
