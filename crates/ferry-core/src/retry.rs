//! Retry as a policy, not a loop: how many failures an item may take, how long to back off,
//! and when a failing batch is split instead of retried.
//!
//! Backoff is exponential with full jitter (`delay = rand(0, min(max, base * 2^n))`, the AWS
//! architecture blog's variant), computed statelessly from the failure count because items
//! are re-batched between attempts and carry their own counts. A server's `Retry-After`
//! overrides the computed delay when it is longer.

use std::num::NonZeroU32;
use std::time::Duration;

use rand::Rng;

use crate::error::Error;

/// Retry settings. Build with [`RetryPolicy::new`] or take [`RetryPolicy::default`].
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    max_attempts: NonZeroU32,
    base: Duration,
    max_delay: Duration,
    split_after: u32,
}

impl Default for RetryPolicy {
    /// 6 attempts, 100 ms base, 30 s cap, split a multi-item batch after 2 failed calls.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: NonZeroU32::new(6).unwrap_or(NonZeroU32::MIN),
            base: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            split_after: 2,
        }
    }
}

impl RetryPolicy {
    /// A policy allowing `max_attempts` charged failures per item, backing off from `base`
    /// up to `max_delay`. Fails if `base` is zero or greater than `max_delay`.
    pub fn new(
        max_attempts: NonZeroU32,
        base: Duration,
        max_delay: Duration,
    ) -> Result<Self, Error> {
        if base.is_zero() {
            return Err(Error::config(
                "retry.backoff_base",
                "must be greater than zero",
            ));
        }
        if base > max_delay {
            return Err(Error::config(
                "retry.backoff_max",
                format!("must be at least backoff_base ({base:?}), got {max_delay:?}"),
            ));
        }
        Ok(RetryPolicy {
            max_attempts,
            base,
            max_delay,
            split_after: 2,
        })
    }

    /// After this many retryable failures without a `Retry-After`, a multi-item batch is split
    /// rather than retried whole (default 2; 0 splits at the first failure). The failures are
    /// refunded to the items, so an item that shared a batch with a poison item is not
    /// charged for it.
    pub fn split_after(mut self, failures: u32) -> Self {
        self.split_after = failures;
        self
    }

    /// Failures an item may take before it is dead-lettered.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts.get()
    }

    /// See [`split_after`](Self::split_after).
    pub fn split_after_failures(&self) -> u32 {
        self.split_after
    }

    /// The delay before the next attempt of something that has failed `failures` times
    /// (1 for the first failure): full jitter over `min(max, base * 2^(failures-1))`,
    /// and never less than the server's `retry_after`.
    pub(crate) fn delay<G: Rng>(
        &self,
        failures: u32,
        retry_after: Option<Duration>,
        rng: &mut G,
    ) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        let ceiling = self
            .base
            .checked_mul(1u32 << exp)
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        let jittered = Duration::from_nanos(rng.gen_range(0..=ceiling.as_nanos() as u64));
        match retry_after {
            Some(after) => after.max(jittered),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    #[test]
    fn rejects_inverted_bounds() {
        let err = RetryPolicy::new(
            NonZeroU32::MIN,
            Duration::from_secs(2),
            Duration::from_secs(1),
        );
        assert!(matches!(
            err,
            Err(Error::InvalidConfig {
                key: "retry.backoff_max",
                ..
            })
        ));
        let err = RetryPolicy::new(NonZeroU32::MIN, Duration::ZERO, Duration::from_secs(1));
        assert!(matches!(
            err,
            Err(Error::InvalidConfig {
                key: "retry.backoff_base",
                ..
            })
        ));
    }

    #[test]
    fn retry_after_is_a_floor() {
        let p = RetryPolicy::default();
        let mut rng = SmallRng::seed_from_u64(1);
        for f in 1..10 {
            assert!(p.delay(f, Some(Duration::from_secs(40)), &mut rng) >= Duration::from_secs(40));
        }
    }

    /// `min(max, base * 2^(failures-1))`: the top of the full-jitter range.
    fn ceiling(base: Duration, max: Duration, failures: u32) -> Duration {
        base.saturating_mul(1u32 << (failures - 1).min(30)).min(max)
    }

    #[test]
    fn full_jitter_spreads_delays_over_the_whole_range() {
        // Uniform over [0, ceiling]: mean ceiling / 2, draws near both ends. A delay that is
        // always zero, or never jittered, fails here.
        let p = RetryPolicy::default();
        let mut rng = SmallRng::seed_from_u64(42);
        for failures in 1..=12 {
            let top = ceiling(
                Duration::from_millis(100),
                Duration::from_secs(30),
                failures,
            );
            let draws: Vec<Duration> = (0..4000)
                .map(|_| p.delay(failures, None, &mut rng))
                .collect();
            let mean = draws.iter().sum::<Duration>().as_secs_f64() / draws.len() as f64;
            let share = mean / top.as_secs_f64();
            assert!(
                (0.45..=0.55).contains(&share),
                "failures {failures}: mean {share:.3} of the ceiling"
            );
            let (lo, hi) = (draws.iter().min().unwrap(), draws.iter().max().unwrap());
            assert!(
                *lo <= top / 20 && *hi >= top * 19 / 20,
                "failures {failures}: {lo:?}..{hi:?} of {top:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn delay_stays_within_exponential_ceiling(failures in 1u32..64, seed: u64, base_ms in 1u64..1000, extra_ms in 0u64..60_000) {
            let base = Duration::from_millis(base_ms);
            let max = base + Duration::from_millis(extra_ms);
            let p = RetryPolicy::new(NonZeroU32::MIN, base, max).unwrap();
            let mut rng = SmallRng::seed_from_u64(seed);
            let d = p.delay(failures, None, &mut rng);
            prop_assert!(d <= ceiling(base, max, failures));
        }

        #[test]
        fn delays_average_half_the_ceiling(failures in 1u32..40, seed: u64, base_ms in 1u64..1000, extra_ms in 0u64..60_000) {
            let base = Duration::from_millis(base_ms);
            let max = base + Duration::from_millis(extra_ms);
            let p = RetryPolicy::new(NonZeroU32::MIN, base, max).unwrap();
            let mut rng = SmallRng::seed_from_u64(seed);
            let total: Duration = (0..1000).map(|_| p.delay(failures, None, &mut rng)).sum();
            let share = total.as_secs_f64() / 1000.0 / ceiling(base, max, failures).as_secs_f64();
            prop_assert!((0.4..=0.6).contains(&share), "mean {share:.3} of the ceiling");
        }
    }
}
