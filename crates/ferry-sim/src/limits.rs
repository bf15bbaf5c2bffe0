//! The admission limits the simulator applies before a request gets a slot, as plain state
//! machines over [`tokio::time::Instant`] (so tests drive them on a paused clock):
//! [`FixedWindow`] (the default `rate_limit`, and the complexity budget's window) and
//! [`TokenBucket`] (the `token-bucket` profile). Each either admits or says how long until
//! it would, which the server turns into `Retry-After` or `retry_in_seconds`.

use std::time::Duration;

use tokio::time::Instant;

/// Fixed windows of `length`, aligned to the first request since start or reset, each
/// holding `capacity` units (requests, or complexity points).
#[derive(Debug, Default)]
pub(crate) struct FixedWindow {
    start: Option<Instant>,
    used: u64,
}

impl FixedWindow {
    /// Takes `amount` units out of the current window, or says how long until the next
    /// window starts. An `amount` over `capacity` never fits.
    pub(crate) fn take(
        &mut self,
        now: Instant,
        length: Duration,
        capacity: u64,
        amount: u64,
    ) -> Result<(), Duration> {
        let mut start = *self.start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= length {
            let whole = elapsed.as_nanos() / length.as_nanos().max(1);
            let skip = length.as_nanos().saturating_mul(whole);
            start += Duration::from_nanos(u64::try_from(skip).unwrap_or(u64::MAX));
            *self = FixedWindow {
                start: Some(start),
                used: 0,
            };
        }
        if self.used.saturating_add(amount) > capacity {
            return Err((start + length).saturating_duration_since(now));
        }
        self.used += amount;
        Ok(())
    }

    /// Units left in the current window (as of the last [`take`](Self::take)).
    pub(crate) fn left(&self, capacity: u64) -> u64 {
        capacity.saturating_sub(self.used)
    }
}

/// A token bucket of `burst` tokens refilled at `rate` per second, full at first: a request
/// takes one token, or learns the time until the next.
#[derive(Debug, Default)]
pub(crate) struct TokenBucket {
    /// Tokens and when they were counted; `None` until the first request (a full bucket).
    state: Option<(f64, Instant)>,
}

impl TokenBucket {
    /// Takes a token, or says how long until there is one.
    pub(crate) fn take(&mut self, now: Instant, rate: f64, burst: u32) -> Result<(), Duration> {
        let burst = f64::from(burst);
        let (tokens, then) = self.state.unwrap_or((burst, now));
        let elapsed = now.saturating_duration_since(then).as_secs_f64();
        let tokens = (tokens + elapsed * rate).min(burst);
        if tokens >= 1.0 {
            self.state = Some((tokens - 1.0, now));
            Ok(())
        } else {
            self.state = Some((tokens, now));
            Err(Duration::from_secs_f64((1.0 - tokens) / rate))
        }
    }
}

/// Whole seconds, rounded up, at least 1 (`Retry-After: 1`, "reset in N seconds").
pub(crate) fn whole_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// Fractional seconds, rounded up to the hundredth, at least 0.01 (`Retry-After: 0.12`).
pub(crate) fn hundredths(wait: Duration) -> f64 {
    let h = wait.as_nanos().div_ceil(10_000_000).max(1);
    u32::try_from(h).map_or(f64::MAX, |h| f64::from(h) / 100.0)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn a_budget_window_counts_points_and_says_when_it_resets() {
        let mut w = FixedWindow::default();
        let t0 = Instant::now();
        assert_eq!(w.take(t0, ms(10_000), 500, 240), Ok(()));
        assert_eq!(w.take(t0 + ms(1_000), ms(10_000), 500, 240), Ok(()));
        assert_eq!(w.take(t0 + ms(2_500), ms(10_000), 500, 240), Err(ms(7_500)));
        // A smaller request still fits in what is left.
        assert_eq!(w.take(t0 + ms(2_500), ms(10_000), 500, 20), Ok(()));
        // The next window, and one three windows later, aligned to the first.
        assert_eq!(w.take(t0 + ms(10_000), ms(10_000), 500, 500), Ok(()));
        assert_eq!(w.take(t0 + ms(41_000), ms(10_000), 500, 240), Ok(()));
        assert_eq!(
            w.take(t0 + ms(41_000), ms(10_000), 500, 300),
            Err(ms(9_000))
        );
        assert!(w.take(t0 + ms(50_000), ms(10_000), 500, 501).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_bucket_admits_its_burst_then_one_per_token() {
        let mut b = TokenBucket::default();
        let t0 = Instant::now();
        assert_eq!(b.take(t0, 8.0, 2), Ok(()));
        assert_eq!(b.take(t0, 8.0, 2), Ok(()));
        // Empty: the next token comes in 1/8 s.
        assert_eq!(b.take(t0, 8.0, 2), Err(ms(125)));
        assert_eq!(b.take(t0 + ms(5), 8.0, 2), Err(ms(120)));
        assert_eq!(b.take(t0 + ms(125), 8.0, 2), Ok(()));
        // A long pause refills only up to the burst.
        let later = t0 + ms(10_000);
        assert_eq!(b.take(later, 8.0, 2), Ok(()));
        assert_eq!(b.take(later, 8.0, 2), Ok(()));
        assert!(b.take(later, 8.0, 2).is_err());
        // Over 10 s it admits the rate, whatever the pattern of tries.
        let mut b = TokenBucket::default();
        let admitted = (0..10_000)
            .filter(|i| b.take(t0 + ms(*i), 8.0, 2).is_ok())
            .count();
        assert!((80..=82).contains(&admitted), "{admitted}");
    }

    #[test]
    fn waits_round_up() {
        assert_eq!(whole_seconds(ms(1)), 1);
        assert_eq!(whole_seconds(ms(1_000)), 1);
        assert_eq!(whole_seconds(ms(1_001)), 2);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(hundredths(ms(120)), 0.12);
        assert_eq!(hundredths(ms(111)), 0.12);
        assert_eq!(hundredths(Duration::ZERO), 0.01);
    }

    proptest! {
        /// Whatever the pattern of tries, a token bucket admits at most `burst + rate × T`
        /// in any stretch of length `T`; over the `D` of it where tries come at least every 10 ms,
        /// it admits at least `rate × D − 2` per stretch (a bucket of 2 or more never fills
        /// up between tries), or with a bucket of one token, which loses what accrues while
        /// it is full, one token per `1 / rate + 10 ms`: it neither leaks nor starves. And
        /// the wait it announces is exact.
        #[test]
        fn a_token_bucket_admits_its_rate_whatever_the_tries(
            rate in 1u32..50,
            burst in 1u32..5,
            gaps in proptest::collection::vec(prop_oneof![30 => 0u64..10, 1 => 100u64..3_000], 200..600),
        ) {
            let t0 = Instant::now();
            let mut b = TokenBucket::default();
            let mut at = t0;
            let mut admitted = 0u32;
            let mut times = Vec::new();
            let (mut dense, mut stretches) = (Duration::ZERO, 1.0);
            for gap in gaps {
                at += ms(gap);
                if gap < 10 {
                    dense += ms(gap);
                } else {
                    stretches += 1.0;
                }
                if let Err(wait) = b.take(at, f64::from(rate), burst) {
                    // The wait it announces is exact: a try then succeeds.
                    let mut probe = TokenBucket { state: b.state };
                    prop_assert!(probe.take(at + wait + Duration::from_micros(1), f64::from(rate), burst).is_ok());
                } else {
                    admitted += 1;
                    times.push(at.saturating_duration_since(t0).as_secs_f64());
                }
            }
            for (i, a) in times.iter().enumerate() {
                for (j, b) in times.iter().enumerate().skip(i) {
                    let most = f64::from(burst) + f64::from(rate) * (b - a);
                    prop_assert!((j - i + 1) as f64 <= most + 1e-6, "{} in {} s", j - i + 1, b - a);
                }
            }
            let secs = at.saturating_duration_since(t0).as_secs_f64();
            let most = f64::from(burst) + f64::from(rate) * secs;
            prop_assert!(f64::from(admitted) <= most + 1e-9, "{admitted} > {most}");
            let dense = dense.as_secs_f64();
            let least = if burst >= 2 {
                f64::from(rate) * dense - 2.0 * stretches
            } else {
                dense / (1.0 / f64::from(rate) + 0.010) - stretches
            };
            prop_assert!(f64::from(admitted) >= least, "{admitted} in {secs} s");
        }

        /// A fixed window never lets more than its capacity through in one window.
        #[test]
        fn a_fixed_window_never_overdraws(
            capacity in 1u64..20,
            tries in proptest::collection::vec((0u64..300, 1u64..5), 1..300),
        ) {
            let t0 = Instant::now();
            let mut w = FixedWindow::default();
            let mut at = t0;
            let mut per_window = std::collections::HashMap::<u128, u64>::new();
            let mut first = None;
            for (gap, amount) in tries {
                at += ms(gap);
                // Windows are aligned to the first try.
                let first = *first.get_or_insert(at);
                if w.take(at, ms(1_000), capacity, amount).is_ok() {
                    let window = at.saturating_duration_since(first).as_millis() / 1_000;
                    *per_window.entry(window).or_default() += amount;
                }
            }
            prop_assert!(per_window.values().all(|&used| used <= capacity), "{per_window:?}");
        }
    }
}
