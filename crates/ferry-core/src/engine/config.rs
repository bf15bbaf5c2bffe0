//! Engine configuration and presets: this module owns [`EngineConfig`], the one value that
//! says how a run batches, dispatches and retries, and the checks that make its parts fit
//! together (`validate` runs when an engine is built, so a running engine never sees an
//! inconsistent configuration).

use std::num::NonZeroUsize;
use std::time::Duration;

use crate::adaptive::{BatchSizeConfig, ConcurrencyConfig};
use crate::dispatch::{Concurrency, DispatchConfig};
use crate::error::Error;
use crate::flush::{FlushPolicy, MemoryLimits};
use crate::item::Priority;
use crate::retry::RetryPolicy;

/// How big a fresh batch is.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchSizing {
    /// Always the flush policy's `max_items`.
    Fixed,
    /// Learned toward a target latency, capped by the flush policy's `max_items`.
    Adaptive(BatchSizeConfig),
}

/// Everything the engine needs to know. Start from [`EngineConfig::standard`] or another
/// preset and change fields; [`validate`](Self::validate) runs when the engine is built.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// A name for logs and metric labels (default `"ferry"`).
    pub name: String,
    /// When batches leave.
    pub flush: FlushPolicy,
    /// Fixed or adaptive batch size.
    pub sizing: BatchSizing,
    /// Concurrency, rate limits, timeout, split strategy.
    pub dispatch: DispatchConfig,
    /// Attempts and backoff.
    pub retry: RetryPolicy,
    /// On cancellation, how long in-flight calls may finish before they are abandoned and
    /// their items counted as cancelled (default 30 s).
    pub shutdown_grace: Duration,
    /// How often progress is refreshed and queue depth sampled (default 250 ms).
    pub progress_interval: Duration,
    /// Seed for backoff jitter; `None` seeds from the OS.
    pub seed: Option<u64>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self::standard()
    }
}

impl EngineConfig {
    /// Balanced defaults for remote APIs: adaptive batch size (16 → up to 500, target 2 s),
    /// adaptive concurrency (1 → up to 64), 30 s timeout, 6 attempts, bisection.
    pub fn standard() -> Self {
        EngineConfig {
            name: "ferry".to_owned(),
            flush: FlushPolicy::default(),
            sizing: BatchSizing::Adaptive(BatchSizeConfig::default()),
            dispatch: DispatchConfig::default(),
            retry: RetryPolicy::default(),
            shutdown_grace: Duration::from_secs(30),
            progress_interval: Duration::from_millis(250),
            seed: None,
        }
    }

    /// For cheap handlers and local sinks: large fixed batches (2,000 items), 16 concurrent
    /// calls, 5 s max wait, 1 GiB memory budget.
    pub fn high_throughput() -> Self {
        let mut c = Self::standard();
        c.flush = FlushPolicy::new()
            .max_items(NonZeroUsize::new(2000).unwrap_or(NonZeroUsize::MIN))
            .max_bytes(NonZeroUsize::new(64 << 20).unwrap_or(NonZeroUsize::MIN))
            .max_wait(Priority::Medium, Duration::from_secs(5))
            .memory(MemoryLimits {
                high_watermark: 768 << 20,
                hard_limit: 1 << 30,
            });
        c.sizing = BatchSizing::Fixed;
        c.dispatch.concurrency =
            Concurrency::Fixed(NonZeroUsize::new(16).unwrap_or(NonZeroUsize::MIN));
        c
    }

    /// For small machines: batches of at most 50 items and 1 MiB, at most 4 calls in
    /// flight, 16 MiB memory budget (producers wait beyond it).
    pub fn low_memory() -> Self {
        let mut c = Self::standard();
        c.flush = FlushPolicy::new()
            .max_items(NonZeroUsize::new(50).unwrap_or(NonZeroUsize::MIN))
            .max_bytes(NonZeroUsize::new(1 << 20).unwrap_or(NonZeroUsize::MIN))
            .memory(MemoryLimits {
                high_watermark: 12 << 20,
                hard_limit: 16 << 20,
            });
        c.sizing = BatchSizing::Adaptive(BatchSizeConfig {
            initial: 8,
            max: 50,
            ..Default::default()
        });
        c.dispatch.concurrency = Concurrency::Adaptive(ConcurrencyConfig {
            max: 4,
            ..Default::default()
        });
        c
    }

    /// Looks a preset up by name: `standard`, `high_throughput`, `low_memory`.
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "standard" => Some(Self::standard()),
            "high_throughput" => Some(Self::high_throughput()),
            "low_memory" => Some(Self::low_memory()),
            _ => None,
        }
    }

    /// Checks every part and how they fit together. With adaptive sizing, the size
    /// controller's `max` is lowered to the flush policy's `max_items` (the cap).
    pub fn validate(mut self) -> Result<Self, Error> {
        self.flush.validate()?;
        self.dispatch.validate()?;
        if let BatchSizing::Adaptive(s) = &mut self.sizing {
            let cap = self.flush.items_cap();
            s.max = s.max.min(cap);
            s.initial = s.initial.min(s.max);
            s.min = s.min.min(s.max);
            s.validate()?;
        }
        if self.progress_interval.is_zero() {
            return Err(Error::config(
                "progress_interval",
                "must be greater than zero",
            ));
        }
        Ok(self)
    }

    /// The batch-size cap.
    pub fn max_items(&self) -> usize {
        self.flush.items_cap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid() {
        for name in ["standard", "high_throughput", "low_memory"] {
            EngineConfig::preset(name).unwrap().validate().unwrap();
        }
        assert!(EngineConfig::preset("nope").is_none());
    }

    #[test]
    fn adaptive_size_is_capped_by_max_items() {
        let mut c = EngineConfig::standard();
        c.flush = c.flush.max_items(NonZeroUsize::new(15).unwrap());
        let c = c.validate().unwrap();
        match c.sizing {
            BatchSizing::Adaptive(s) => {
                assert_eq!(s.max, 15);
                assert!(s.initial <= 15);
            }
            BatchSizing::Fixed => panic!("expected adaptive"),
        }
    }
}
