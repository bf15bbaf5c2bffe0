//! The simulator's settings ([`SimConfig`]) and the cost model they define: what a request
//! of `n` mutations costs, the largest request that fits in the timeout, the throughput
//! ceiling no client can beat, and the [`Plan`] a client told the settings should follow.
//! Kept apart from the server so benchmarks can compute the ceiling without starting one.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::columns::{default_board, Column};
use crate::Error;

/// How the simulated API behaves. Every field is public; [`SimConfig::default`] is a
/// 1/60-scale model of the board seen by the monday.com board updater (15 mutations per
/// request work, 30 time out, the timeout being 30 s there and 500 ms here). The
/// [`Profile`](crate::Profile)s set these fields to model other gateways.
///
/// # Request life cycle
///
/// 1. No non-empty `Authorization` header: `401`, at once.
/// 2. Over [`rate_limit`](Self::rate_limit): `429`, at once, without a slot. The limit is a
///    fixed one-second window, or a token bucket when
///    [`token_bucket_burst`](Self::token_bucket_burst) is set (then `Retry-After` is the
///    fractional time to the next token, e.g. `0.12`).
/// 3. Unparseable body or query: a GraphQL parse error (`200` with `errors`), at once. A
///    `boards(ids: ...) { columns { ... } }` query is answered at once from
///    [`columns`](Self::columns).
/// 4. With a [`budget`](Self::budget): a request whose complexity would exceed what is left
///    of the window's points gets `200` with a `COMPLEXITY_BUDGET_EXHAUSTED` error, at once,
///    nothing applied.
/// 5. Wait for one of [`slots`](Self::slots) (first come, first served), then spend the
///    request's [`cost`](Self::cost) in it, or [`request_timeout`](Self::request_timeout) and
///    answer `504` if the cost is larger. With a [`gateway_timeout`](Self::gateway_timeout),
///    a request not finished that long after it arrived (queueing included) is answered
///    `504` then, while its work goes on: it keeps (or later takes) its slot for its whole
///    cost and is applied, as behind a real gateway.
/// 6. With probability [`error_rate`](Self::error_rate): `500`, nothing applied.
/// 7. Otherwise apply every alias whose values hold no [`poison_value`](Self::poison_value)
///    and, with [`check_values`](Self::check_values), are shaped as their column's type
///    takes them; then, with probability [`drop_rate`](Self::drop_rate), drop the
///    connection without answering; else answer `200` with `data` (and `errors` for
///    rejected aliases). With [`poison_unnamed`](Self::poison_unnamed), one poisoned alias
///    fails the whole request instead, with an error that names no alias.
///
/// The work of step 5 onwards goes on even if the client hangs up, as on a real server.
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
///   window boundary, a token bucket its burst, but not on average over longer runs.)
/// * **Budget.** A window of `points` admits `⌊points / c(L)⌋` requests of complexity
///   `c(L) = per_request + per_mutation × L` points: `⌊points / c(L)⌋ × L / window`.
///
/// All bounds hold at once, and a client sending requests of `L` mutations with enough of
/// them in flight, paced at the rate of the binding limit ([`plan`](Self::plan)), reaches
/// the smallest, so the ceiling is the smallest ([`ceiling`](Self::ceiling)). Faults lower
/// what can be reached: `500`s apply nothing (about `× (1 − error_rate)`), dropped requests
/// apply but leave the client unsure, poisoned aliases are not applied.
///
/// With the defaults: `L = ⌊(500 − 40) / 20⌋ = 23`, `cost(23) = 500 ms`,
/// `min(4 × 23 / 0.5, 10 × 23) = min(184, 230) = 184` items/s.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// The profile's name, shown at start and in `GET /stats`. Default `"default"`.
    pub profile: String,
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
    /// Counted from a request's arrival, queueing included: a request not answered by then
    /// gets `504`, but its work goes on (it holds its slot for its whole cost, and is
    /// applied). Default `None` (requests wait for a slot as long as it takes).
    pub gateway_timeout: Option<Duration>,
    /// Requests admitted per second; others get `429` with `Retry-After`. Default 10; must
    /// be at least 1 (`u32::MAX` for no limit).
    pub rate_limit: u32,
    /// `None` (the default): `rate_limit` counts requests in fixed one-second windows,
    /// aligned to the first request, and `Retry-After` is whole seconds. `Some(burst)`: a
    /// token bucket of `burst` tokens refilled at `rate_limit` per second, and `Retry-After`
    /// is the time to the next token in fractional seconds (e.g. `0.12`). Must be at least 1.
    pub token_bucket_burst: Option<u32>,
    /// A monday.com-style complexity budget. Default `None`.
    pub budget: Option<Budget>,
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
    /// `false` (the default): a poisoned alias gets a GraphQL error whose `path` names it,
    /// and the others are applied. `true`: one poisoned alias fails the whole request with
    /// a GraphQL error naming no alias, and nothing is applied.
    pub poison_unnamed: bool,
    /// The board's columns, answered to `boards(ids: ...) { columns { id type title } }`.
    /// Default: [`default_board`](crate::default_board).
    pub columns: Vec<Column>,
    /// Whether values must be shaped as their column's type takes them (see
    /// [`ColumnType`](crate::ColumnType)), and name a column of the board. Default `false`:
    /// every value is taken as text, as before columns had types.
    pub check_values: bool,
}

/// A monday.com-style complexity budget: every request costs
/// `per_request + per_mutation × N` points out of `points` per `window`; windows are fixed
/// and aligned to the first request. A request that would overdraw the window is answered
/// `200` with a `COMPLEXITY_BUDGET_EXHAUSTED` error and `retry_in_seconds` (whole seconds
/// to the next window), costs nothing, and applies nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Points per window; must be at least 1.
    pub points: u64,
    /// The window's length (monday.com: 60 s); must not be zero.
    pub window: Duration,
    /// Points every request costs.
    pub per_request: u64,
    /// Points every mutation (alias) costs.
    pub per_mutation: u64,
}

impl Budget {
    /// The complexity of a request of `n` mutations.
    pub fn complexity(&self, n: u64) -> u64 {
        self.per_mutation
            .saturating_mul(n)
            .saturating_add(self.per_request)
    }
}

/// What a client told the settings should do to reach the [ceiling](SimConfig::ceiling):
/// requests of `batch` mutations, `concurrency` of them in flight, started at most `rate`
/// per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Mutations per request (`L`).
    pub batch: usize,
    /// Requests in flight (the slots).
    pub concurrency: usize,
    /// Requests started per second, if a rate limit or budget binds.
    pub rate: Option<f64>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            profile: "default".to_owned(),
            slots: 4,
            per_request: Duration::from_millis(40),
            per_mutation: Duration::from_millis(20),
            request_timeout: Duration::from_millis(500),
            gateway_timeout: None,
            rate_limit: 10,
            token_bucket_burst: None,
            budget: None,
            error_rate: 0.0,
            drop_rate: 0.0,
            seed: 0,
            poison_value: "INVALID".to_owned(),
            poison_unnamed: false,
            columns: default_board(),
            check_values: false,
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

    /// Requests per second the rate limit and the budget let through with requests of `l`
    /// mutations (the smaller), `None` if neither binds.
    fn request_rate(&self, l: u64) -> Option<f64> {
        let limit = (self.rate_limit != u32::MAX).then_some(f64::from(self.rate_limit));
        let budget = self
            .budget
            .as_ref()
            .map(|b| (b.points / b.complexity(l).max(1)) as f64 / b.window.as_secs_f64());
        match (limit, budget) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The best any client can do, in items per second: the smallest of the slot, rate and
    /// budget bounds (derived in the [type's docs](Self)). `0` when no request fits,
    /// infinite when `per_mutation` is zero.
    pub fn ceiling(&self) -> f64 {
        let l = match self.largest_batch() {
            Some(0) => return 0.0,
            None => return f64::INFINITY,
            Some(l) => l,
        };
        // l > 0 implies per_mutation > 0, so cost(l) > 0.
        let per_call = self.cost(l).as_secs_f64();
        let slot_bound = self.slots as f64 * l as f64 / per_call;
        let rate_bound = self.request_rate(l).map_or(f64::INFINITY, |r| r * l as f64);
        slot_bound.min(rate_bound)
    }

    /// The settings a fixed client needs to reach the ceiling: batches of `L` (100 when
    /// unbounded), one request per slot, paced at the binding rate limit or budget.
    pub fn plan(&self) -> Plan {
        let l = self.largest_batch().unwrap_or(100).max(1);
        Plan {
            batch: usize::try_from(l).unwrap_or(usize::MAX),
            concurrency: self.slots,
            rate: self.request_rate(l),
        }
    }

    /// The settings, the plan and the ceiling as JSON (the `profile` of `GET /stats`).
    pub fn describe(&self) -> Value {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let plan = self.plan();
        json!({
            "name": self.profile,
            "ceiling_items_per_s": finite(self.ceiling()),
            "plan": {"batch": plan.batch, "concurrency": plan.concurrency, "rate_per_s": plan.rate},
            "slots": self.slots,
            "per_request_ms": ms(self.per_request),
            "per_mutation_ms": ms(self.per_mutation),
            "request_timeout_ms": ms(self.request_timeout),
            "gateway_timeout_ms": self.gateway_timeout.map(ms),
            "rate_limit_per_s": (self.rate_limit != u32::MAX).then_some(self.rate_limit),
            "token_bucket_burst": self.token_bucket_burst,
            "budget": self.budget.as_ref().map(|b| json!({
                "points": b.points, "window_ms": ms(b.window),
                "per_request": b.per_request, "per_mutation": b.per_mutation,
            })),
            "error_rate": self.error_rate,
            "drop_rate": self.drop_rate,
            "poison_value": self.poison_value,
            "poison_unnamed": self.poison_unnamed,
            "check_values": self.check_values,
        })
    }

    /// One line per setting, for a terminal: what [`describe`](Self::describe) holds.
    pub fn summary(&self) -> String {
        let plan = self.plan();
        let mut out = format!(
            "profile {}: {} slots, cost {:?} + {:?} per mutation, backend timeout {:?}",
            self.profile, self.slots, self.per_request, self.per_mutation, self.request_timeout
        );
        if let Some(g) = self.gateway_timeout {
            out += &format!(", gateway timeout {g:?} from arrival (the slot stays held)");
        }
        match (self.rate_limit, self.token_bucket_burst) {
            (u32::MAX, _) => {}
            (r, None) => out += &format!(", {r} requests per 1 s window"),
            (r, Some(b)) => out += &format!(", token bucket {r} requests/s burst {b}"),
        }
        if let Some(b) = &self.budget {
            out += &format!(
                ", complexity budget {} points per {:?} ({} per request + {} per mutation)",
                b.points, b.window, b.per_request, b.per_mutation
            );
        }
        if !self.poison_value.is_empty() {
            let how = if self.poison_unnamed {
                "fails the request, unnamed"
            } else {
                "fails its alias"
            };
            out += &format!(", poison {:?} {how}", self.poison_value);
        }
        if self.check_values {
            out += ", values checked per column type";
        }
        out += &format!(
            ", faults {}% 500s {}% dropped\n  plan: batch {}, concurrency {}, rate {}",
            self.error_rate * 100.0,
            self.drop_rate * 100.0,
            plan.batch,
            plan.concurrency,
            plan.rate
                .map_or_else(|| "unlimited".to_owned(), |r| format!("{r:.2}/s")),
        );
        out
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
        if self.token_bucket_burst == Some(0) {
            return invalid("token_bucket_burst", "must be at least 1".to_owned());
        }
        if let Some(b) = &self.budget {
            if b.points == 0 || b.window.is_zero() {
                return invalid("budget", "needs points and a window above zero".to_owned());
            }
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

/// `x`, or `null` in JSON when it is not finite.
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
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
