//! When a batch leaves: the flush triggers, and the policy that holds their thresholds.
//!
//! A ferry leaves when it is full or when it is time. "Full" is any of: the target item
//! count, `max_bytes`, or memory pressure (buffered bytes over the high watermark). "Time" is
//! the oldest waiting item of any priority reaching that priority's `max_wait`. End of input
//! and shutdown drain whatever is left. Over the hard memory limit the engine stops taking
//! items, so producers wait: back-pressure, never a drop.
//!
//! Waits follow [`Priority`] by meaning: `high` leaves soonest (default 20 ms, the old
//! `urgent`), `medium` is the default item's wait (1 s, the old `normal`), `low` waits
//! longest (5 s). The invariant is `high ≤ medium ≤ low`; in a job file the keys are
//! `batch.max_wait_high`, `batch.max_wait` (medium) and `batch.max_wait_low`.

use std::num::NonZeroUsize;
use std::time::Duration;

use crate::error::Error;
use crate::item::Priority;

/// Why a batch left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum FlushReason {
    /// The target item count was reached.
    Full,
    /// `max_bytes` was reached.
    Bytes,
    /// The oldest item of this priority reached its `max_wait`.
    MaxWait(Priority),
    /// Buffered bytes went over the high watermark.
    MemoryPressure,
    /// Input ended or the engine is shutting down: everything buffered leaves.
    Drain,
}

/// Memory limits on what the engine holds (accepted, not yet settled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimits {
    /// Over this many held bytes, batches leave before they are full.
    pub high_watermark: usize,
    /// At this many held bytes, the engine takes no more items until some settle.
    pub hard_limit: usize,
}

/// The flush thresholds. Build with [`FlushPolicy::new`] and the setters, then the engine
/// checks it with [`validate`](FlushPolicy::validate).
#[derive(Debug, Clone, PartialEq)]
pub struct FlushPolicy {
    pub(crate) max_items: NonZeroUsize,
    pub(crate) max_bytes: NonZeroUsize,
    pub(crate) max_wait: [Duration; 3],
    pub(crate) memory: MemoryLimits,
}

impl Default for FlushPolicy {
    /// 500 items, 4 MiB, max wait high 20 ms / medium 1 s / low 5 s,
    /// memory high watermark 192 MiB, hard limit 256 MiB.
    fn default() -> Self {
        FlushPolicy {
            max_items: NonZeroUsize::new(500).unwrap_or(NonZeroUsize::MIN),
            max_bytes: NonZeroUsize::new(4 << 20).unwrap_or(NonZeroUsize::MIN),
            // Indexed by `Priority::index`: low, medium, high.
            max_wait: [
                Duration::from_secs(5),
                Duration::from_secs(1),
                Duration::from_millis(20),
            ],
            memory: MemoryLimits {
                high_watermark: 192 << 20,
                hard_limit: 256 << 20,
            },
        }
    }
}

impl FlushPolicy {
    /// The default policy; see [`Default`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Most items in one batch (default 500). With an adaptive batch size this is the cap.
    pub fn max_items(mut self, n: NonZeroUsize) -> Self {
        self.max_items = n;
        self
    }

    /// Most bytes in one batch (default 4 MiB). A single larger item still travels, alone.
    pub fn max_bytes(mut self, n: NonZeroUsize) -> Self {
        self.max_bytes = n;
        self
    }

    /// Longest an item of `priority` waits for its batch to fill while a dispatch slot is
    /// free (defaults: high 20 ms, medium 1 s, low 5 s).
    pub fn max_wait(mut self, priority: Priority, wait: Duration) -> Self {
        self.max_wait[priority.index()] = wait;
        self
    }

    /// Memory watermarks (defaults 192 MiB and 256 MiB).
    pub fn memory(mut self, limits: MemoryLimits) -> Self {
        self.memory = limits;
        self
    }

    /// The configured maximum wait of `priority`.
    pub fn wait_for(&self, priority: Priority) -> Duration {
        self.max_wait[priority.index()]
    }

    /// The configured item cap.
    pub fn items_cap(&self) -> usize {
        self.max_items.get()
    }

    /// The configured memory limits.
    pub fn memory_limits(&self) -> MemoryLimits {
        self.memory
    }

    /// Checks the invariants: high waits ≤ medium ≤ low, watermark ≤ hard limit,
    /// and the hard limit leaves room for at least one full batch.
    pub fn validate(&self) -> Result<(), Error> {
        let [low, medium, high] = self.max_wait;
        if high > medium {
            return Err(Error::config(
                "batch.max_wait_high",
                format!("must not exceed batch.max_wait ({medium:?}), got {high:?}"),
            ));
        }
        if medium > low {
            return Err(Error::config(
                "batch.max_wait_low",
                format!("must not be less than batch.max_wait ({medium:?}), got {low:?}"),
            ));
        }
        if self.memory.high_watermark > self.memory.hard_limit {
            return Err(Error::config(
                "memory.high_watermark",
                format!(
                    "must not exceed memory.hard_limit ({}), got {}",
                    self.memory.hard_limit, self.memory.high_watermark
                ),
            ));
        }
        if self.memory.hard_limit < self.max_bytes.get().min(1 << 20) {
            return Err(Error::config(
                "memory.hard_limit",
                "must be at least one batch's max_bytes (or 1 MiB)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        FlushPolicy::default().validate().unwrap();
    }

    #[test]
    fn default_waits_follow_priority() {
        let p = FlushPolicy::default();
        assert_eq!(p.wait_for(Priority::High), Duration::from_millis(20));
        assert_eq!(p.wait_for(Priority::Medium), Duration::from_secs(1));
        assert_eq!(p.wait_for(Priority::Low), Duration::from_secs(5));
    }

    #[test]
    fn inverted_waits_name_their_key() {
        let p = FlushPolicy::default().max_wait(Priority::High, Duration::from_secs(2));
        assert!(matches!(
            p.validate(),
            Err(Error::InvalidConfig {
                key: "batch.max_wait_high",
                ..
            })
        ));
        let p = FlushPolicy::default().max_wait(Priority::Low, Duration::from_millis(500));
        assert!(matches!(
            p.validate(),
            Err(Error::InvalidConfig {
                key: "batch.max_wait_low",
                ..
            })
        ));
        let p = FlushPolicy::default().memory(MemoryLimits {
            high_watermark: 10 << 20,
            hard_limit: 5 << 20,
        });
        assert!(matches!(
            p.validate(),
            Err(Error::InvalidConfig {
                key: "memory.high_watermark",
                ..
            })
        ));
    }
}
