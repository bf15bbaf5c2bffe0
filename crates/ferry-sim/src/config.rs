//! The simulator's settings ([`SimConfig`]) and the cost model they define: what a request
//! of `n` mutations costs, the largest request that fits in the timeout, and the throughput
//! ceiling no client can beat. Kept apart from the server so benchmarks can compute the
//! ceiling without starting one.

use std::time::Duration;

use tokio::sync::Semaphore;

use crate::Error;

/// How the simulated API behaves. Every field is public; [`SimConfig::default`] is a
/// 1/60-scale model of the board seen by seed 000 (15 mutations per request work, 30 time
/// out, the timeout being 30 s there and 500 ms here).
///
/// # Request life cycle
///
/// 1. No non-empty `Authorization` header: `401`, at once.
/// 2. Over [`rate_limit`](Self::rate_limit) in the current one-second window: `429`, at once,
///    without a slot.
/// 3. Unparseable body or query: a GraphQL parse error (`200` with `errors`), at once.
/// 4. Wait for one of [`slots`](Self::slots) (first come, first served), then spend the
///    request's [`cost`](Self::cost) in it, or [`request_timeout`](Self::request_timeout) and
///    answer `504` if the cost is larger.
/// 5. With probability [`error_rate`](Self::error_rate): `500`, nothing applied.
/// 6. Otherwise apply every alias whose values hold no [`poison_value`](Self::poison_value);
///    then, with probability [`drop_rate`](Self::drop_rate), drop the connection without
///    answering; else answer `200` with `data` (and `errors` for poisoned aliases).
///
/// The work of step 4 onwards goes on even if the client hangs up, as on a real server.
///
/// # The ceiling
///
/// A request of `N` mutations holds a slot for `cost(N) = per_request + per_mutation × N`
/// and succeeds only if `cost(N) ≤ request_timeout`, i.e. `N ≤ L` with
/// `L = ⌊(request_timeout − per_request) / per_mutation⌋` ([`largest_batch`](Self::largest_batch)).
///
/// * **Slots.** A slot kept busy back to back with requests of `N` mutations applies
///   `N / cost(N) = 1 / (per_request / N + per_mutation)` items/s, which grows with `N`, so
///   the best is `N = L`: `slots × L / cost(L)` for all slots. Timed-out requests hold a slot
///   and apply nothing, so they can only lower this.
/// * **Rate.** At most `rate_limit` requests are admitted per second, each carrying at most
///   `L` mutations: `rate_limit × L`. (Fixed windows let up to twice that through around a
///   window boundary, but not on average over longer runs.)
///
/// Both bounds hold at once, and a client sending requests of `L` mutations with enough of
/// them in flight reaches the smaller one, so
/// `ceiling = min(slots × L / cost(L), rate_limit × L)` items/s ([`ceiling`](Self::ceiling)).
/// Faults lower what can be reached: `500`s apply nothing (about `× (1 − error_rate)`),
/// dropped requests apply but leave the client unsure, poisoned aliases are not applied.
///
/// With the defaults: `L = ⌊(500 − 40) / 20⌋ = 23`, `cost(23) = 500 ms`,
/// `min(4 × 23 / 0.5, 10 × 23) = min(184, 230) = 184` items/s.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Requests processed in parallel; further requests queue, first come first served.
    /// Default 4; must be at least 1.
    pub slots: usize,
    /// Fixed slot time of every processed request. Default 40 ms.
    pub per_request: Duration,
    /// Slot time per mutation (alias) in a request. Default 20 ms.
    pub per_mutation: Duration,
    /// A request whose cost is larger holds its slot this long, then gets `504` with nothing
    /// applied. Default 500 ms.
    pub request_timeout: Duration,
    /// Requests admitted per one-second window (windows are aligned to the first request);
    /// others get `429` with `Retry-After`. Default 10; must be at least 1 (`u32::MAX` for
    /// no limit).
    pub rate_limit: u32,
    /// Probability that a processed request gets `500` after its cost, with nothing
    /// applied. Default 0; must be in `[0, 1]`.
    pub error_rate: f64,
    /// Probability that a processed request is applied and then its connection dropped
    /// without an answer. Default 0; must be in `[0, 1]`.
    pub drop_rate: f64,
    /// Seed of the random draws behind `error_rate` and `drop_rate` (two draws per processed
    /// request, in arrival order), so faults repeat from run to run. Default 0.
    pub seed: u64,
    /// A column whose value is this string (or holds it anywhere inside, e.g.
    /// `{"countryCode":"INVALID"}`) is rejected, and with it that alias only. Default
    /// `"INVALID"`; an empty string disables poison.
    pub poison_value: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            slots: 4,
            per_request: Duration::from_millis(40),
            per_mutation: Duration::from_millis(20),
            request_timeout: Duration::from_millis(500),
            rate_limit: 10,
            error_rate: 0.0,
            drop_rate: 0.0,
            seed: 0,
            poison_value: "INVALID".to_owned(),
        }
    }
}

impl SimConfig {
    /// Slot time of a request of `n` mutations: `per_request + per_mutation × n`
    /// (saturating at [`Duration::MAX`]).
    pub fn cost(&self, n: u64) -> Duration {
        let nanos = self
            .per_mutation
            .as_nanos()
            .saturating_mul(u128::from(n))
            .saturating_add(self.per_request.as_nanos());
        u64::try_from(nanos).map_or(Duration::MAX, Duration::from_nanos)
    }

    /// Whether a request of `n` mutations times out (its cost exceeds `request_timeout`).
    pub fn times_out(&self, n: u64) -> bool {
        self.cost(n) > self.request_timeout
    }

    /// `L`, the largest number of mutations a request can carry without timing out: `0` if
    /// even `per_request` exceeds `request_timeout`, `None` if there is no largest (a zero
    /// `per_mutation`).
    pub fn largest_batch(&self) -> Option<u64> {
        if self.per_request > self.request_timeout {
            return Some(0);
        }
        if self.per_mutation.is_zero() {
            return None;
        }
        let room = (self.request_timeout - self.per_request).as_nanos();
        Some(u64::try_from(room / self.per_mutation.as_nanos()).unwrap_or(u64::MAX))
    }

    /// The best any client can do, in items per second:
    /// `min(slots × L / cost(L), rate_limit × L)` (derived in the [type's docs](Self)).
    /// `0` when no request fits, infinite when `per_mutation` is zero.
    pub fn ceiling(&self) -> f64 {
        let l = match self.largest_batch() {
            Some(0) => return 0.0,
            None => return f64::INFINITY,
            Some(l) => l,
        };
        // l > 0 implies per_mutation > 0, so cost(l) > 0.
        let per_call = self.cost(l).as_secs_f64();
        let l = l as f64;
        let slot_bound = self.slots as f64 * l / per_call;
        let rate_bound = f64::from(self.rate_limit) * l;
        slot_bound.min(rate_bound)
    }

    /// Checks the invariants the server relies on; the error names the field.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |key: &'static str, reason: String| Err(Error::InvalidConfig { key, reason });
        if self.slots == 0 {
            return invalid("slots", "must be at least 1".to_owned());
        }
        if self.slots > Semaphore::MAX_PERMITS {
            return invalid(
                "slots",
                format!("must be at most {}", Semaphore::MAX_PERMITS),
            );
        }
        if self.rate_limit == 0 {
            return invalid(
                "rate_limit",
                "must be at least 1 (use u32::MAX for no limit)".to_owned(),
            );
        }
        for (key, p) in [
            ("error_rate", self.error_rate),
            ("drop_rate", self.drop_rate),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return invalid(key, format!("must be a probability in [0, 1], not {p}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn default_ceiling_is_the_documented_184() {
        let c = SimConfig::default();
        assert_eq!(c.largest_batch(), Some(23));
        assert_eq!(c.cost(23), ms(500));
        assert!(!c.times_out(23));
        assert!(c.times_out(24));
        assert!((c.ceiling() - 184.0).abs() < 1e-9, "{}", c.ceiling());
    }

    #[test]
    fn ceiling_is_the_smaller_of_the_slot_and_rate_bounds() {
        // Slot bound: 2 × 10 / 0.1 s = 200/s; rate bound: 5 × 10 = 50/s.
        let c = SimConfig {
            slots: 2,
            per_request: ms(50),
            per_mutation: ms(5),
            request_timeout: ms(100),
            rate_limit: 5,
            ..SimConfig::default()
        };
        assert_eq!(c.largest_batch(), Some(10));
        assert!((c.ceiling() - 50.0).abs() < 1e-9);
        // Raise the rate limit: now the slots bind.
        let c = SimConfig {
            rate_limit: 1000,
            ..c
        };
        assert!((c.ceiling() - 200.0).abs() < 1e-9);
    }

    #[test]
    fn largest_batch_rounds_down_and_handles_edges() {
        let c = SimConfig {
            per_request: ms(10),
            per_mutation: ms(3),
            request_timeout: ms(20),
            ..SimConfig::default()
        };
        // (20 − 10) / 3 = 3.33 -> 3: cost(3) = 19 ms fits, cost(4) = 22 ms does not.
        assert_eq!(c.largest_batch(), Some(3));
        let slot_bound: f64 = 4.0 * 3.0 / 0.019;
        assert!((c.ceiling() - slot_bound.min(30.0)).abs() < 1e-9);

        let nothing_fits = SimConfig {
            per_request: ms(30),
            ..c.clone()
        };
        assert_eq!(nothing_fits.largest_batch(), Some(0));
        assert_eq!(nothing_fits.ceiling(), 0.0);

        let free_mutations = SimConfig {
            per_mutation: Duration::ZERO,
            ..c
        };
        assert_eq!(free_mutations.largest_batch(), None);
        assert!(free_mutations.ceiling().is_infinite());
    }

    #[test]
    fn cost_saturates() {
        let c = SimConfig {
            per_mutation: Duration::MAX,
            ..SimConfig::default()
        };
        assert_eq!(c.cost(2), Duration::MAX);
        assert!(c.times_out(1));
    }

    #[test]
    fn validate_names_the_key() {
        let bad = |c: SimConfig| match c.validate() {
            Err(Error::InvalidConfig { key, .. }) => key,
            Ok(()) => "ok",
        };
        assert_eq!(bad(SimConfig::default()), "ok");
        assert_eq!(
            bad(SimConfig {
                slots: 0,
                ..SimConfig::default()
            }),
            "slots"
        );
        assert_eq!(
            bad(SimConfig {
                rate_limit: 0,
                ..SimConfig::default()
            }),
            "rate_limit"
        );
        assert_eq!(
            bad(SimConfig {
                error_rate: 1.5,
                ..SimConfig::default()
            }),
            "error_rate"
        );
        assert_eq!(
            bad(SimConfig {
                drop_rate: f64::NAN,
                ..SimConfig::default()
            }),
            "drop_rate"
        );
    }
}
