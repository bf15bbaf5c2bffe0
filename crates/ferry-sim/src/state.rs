//! The simulator's shared state ([`SimState`]) and what it records ([`Stats`]). It owns a
//! request's life once the server has parsed it: admission (rate limit, complexity budget),
//! the fault draw, waiting for a slot, spending the cost, the gateway timeout, and applying
//! the mutations to the ledger (poison and column-type checks included). The wire format
//! lives in the server module; this one knows nothing of HTTP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::{oneshot, Semaphore};
use tokio::time::Instant;

use crate::columns::{self, ColumnType};
use crate::graphql::Mutation;
use crate::limits::{FixedWindow, TokenBucket};
use crate::{Error, SimConfig};

const WINDOW: Duration = Duration::from_secs(1);

/// What the simulator saw and did since it started or was last reset: the body of
/// `GET /stats` (which adds the `profile`: settings, plan and ceiling), and what
/// [`SimState::stats`] returns.
///
/// Every `POST /v2` counts in `requests` and then in at most one of the answer counters
/// (`unauthorized`, `parse_errors`, `rejected_429`, `budget_exhausted`, `column_queries`,
/// `gateway_timeouts`, `timeouts`, `errors_500`, `poisoned_requests`, `dropped`), except
/// that a request answered `504` by the gateway also counts in its backend outcome once its
/// work is done; the rest were answered `200` with data. `mutations_applied`,
/// `poison_rejected` and `value_rejected` count aliases, including those of dropped requests
/// and of requests the gateway gave up on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// `POST /v2` requests received.
    pub requests: u64,
    /// Aliases applied (an item applied twice counts twice).
    pub mutations_applied: u64,
    /// Requests answered `429` (over the rate limit).
    pub rejected_429: u64,
    /// Requests answered `COMPLEXITY_BUDGET_EXHAUSTED` (or, over the whole budget,
    /// `maxComplexityExceeded`), in a `200` body.
    pub budget_exhausted: u64,
    /// Requests answered `504` by the gateway (not done `gateway_timeout` after arrival).
    pub gateway_timeouts: u64,
    /// Requests answered `504` (cost over `request_timeout`).
    pub timeouts: u64,
    /// Requests answered `500` (the `error_rate` draw).
    pub errors_500: u64,
    /// Requests applied and then dropped without an answer (the `drop_rate` draw).
    pub dropped: u64,
    /// Aliases rejected for holding the poison value.
    pub poison_rejected: u64,
    /// Requests failed whole by a poisoned alias (`poison_unnamed`); nothing applied.
    pub poisoned_requests: u64,
    /// Aliases rejected for a value not shaped as its column's type takes it, or a column
    /// not on the board (`check_values`).
    pub value_rejected: u64,
    /// `boards { columns }` queries answered.
    pub column_queries: u64,
    /// Requests answered `401` (no `Authorization`).
    pub unauthorized: u64,
    /// Requests whose body or query could not be parsed.
    pub parse_errors: u64,
    /// Every item applied at least once, by item id (JSON object keys are the ids as strings).
    pub items: HashMap<u64, ItemStats>,
}

/// One item's record in [`Stats::items`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ItemStats {
    /// How many times a mutation of this item was applied; more than 1 means the client
    /// sent it again (a retry after a timeout, an error or a dropped connection).
    pub applies: u64,
    /// The latest value of every column ever set, column id -> value: each apply overwrites
    /// the columns it names and leaves the others, as `change_multiple_column_values` does.
    pub values: Map<String, Value>,
}

/// What happens to a processed request, drawn when it is admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    Answer,
    Fail,
    Drop,
}

/// The result of processing one request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// Cost over the timeout; nothing applied.
    TimedOut,
    /// Not done `gateway_timeout` after arrival; the work goes on.
    GatewayTimeout,
    /// An injected server error; nothing applied.
    Failed,
    /// A poisoned alias failed the whole request (`poison_unnamed`); nothing applied.
    Poisoned,
    /// Applied (except rejected aliases); answer with these.
    Applied(Vec<AliasResult>),
    /// Applied; drop the connection.
    Dropped,
}

/// One alias of an applied request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AliasResult {
    pub(crate) alias: String,
    pub(crate) item_id: u64,
    /// Why the alias was not applied, if it was not.
    pub(crate) rejected: Option<Rejection>,
}

/// Why an alias was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// The column holds the poison value.
    Poison { column: String },
    /// The value is not shaped as the column's type takes it.
    Value {
        column: String,
        kind: ColumnType,
        value: Value,
        message: String,
    },
    /// The column is not on the board.
    NoColumn { column: String },
}

/// A simulator's state: its settings, slots, limits, fault RNG and ledger. Clones share
/// one simulator; [`app`](crate::app) serves one.
#[derive(Debug, Clone)]
pub struct SimState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: SimConfig,
    slots: Semaphore,
    limits: Mutex<Limits>,
    rng: Mutex<SmallRng>,
    ledger: Mutex<Stats>,
}

#[derive(Debug, Default)]
struct Limits {
    window: FixedWindow,
    bucket: TokenBucket,
    budget: FixedWindow,
}

/// Locks `m`, carrying on after a panic elsewhere: every critical section leaves the data
/// consistent, so a poisoned lock holds nothing half-written.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SimState {
    /// A fresh simulator with `config`'s settings, validated.
    pub fn new(config: SimConfig) -> Result<Self, Error> {
        config.validate()?;
        Ok(SimState {
            inner: Arc::new(Inner {
                slots: Semaphore::new(config.slots),
                limits: Mutex::new(Limits::default()),
                rng: Mutex::new(SmallRng::seed_from_u64(config.seed)),
                ledger: Mutex::new(Stats::default()),
                config,
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &SimConfig {
        &self.inner.config
    }

    /// A copy of the ledger (a few milliseconds for tens of thousands of items).
    pub fn stats(&self) -> Stats {
        lock(&self.inner.ledger).clone()
    }

    /// Clears the ledger, restarts the rate-limit and budget windows and the token bucket,
    /// and reseeds the RNG, so the next run starts as the first did. Requests in flight
    /// carry on and are recorded afterwards.
    pub fn reset(&self) {
        *lock(&self.inner.ledger) = Stats::default();
        *lock(&self.inner.limits) = Limits::default();
        *lock(&self.inner.rng) = SmallRng::seed_from_u64(self.inner.config.seed);
    }

    /// The ledger and the profile (settings, plan, ceiling) as JSON, serialized in place
    /// rather than cloned first.
    pub(crate) fn stats_json(&self) -> serde_json::Result<Vec<u8>> {
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(flatten)]
            stats: &'a Stats,
            profile: Value,
        }
        let profile = self.inner.config.describe();
        serde_json::to_vec(&Body {
            stats: &lock(&self.inner.ledger),
            profile,
        })
    }

    /// Updates the ledger's counters.
    pub(crate) fn record(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut lock(&self.inner.ledger));
    }

    /// Admits a request under the rate limit (a one-second window, or the token bucket), or
    /// says how long until it would be.
    pub(crate) fn admit(&self) -> Result<(), Duration> {
        let cfg = &self.inner.config;
        let now = Instant::now();
        let mut limits = lock(&self.inner.limits);
        match cfg.token_bucket_burst {
            _ if cfg.rate_limit == u32::MAX => Ok(()),
            None => limits
                .window
                .take(now, WINDOW, u64::from(cfg.rate_limit), 1),
            Some(burst) => limits.bucket.take(now, f64::from(cfg.rate_limit), burst),
        }
    }

    /// Charges a request of `n` mutations to the complexity budget, or says how long until
    /// the window resets (and what it would have cost, and what is left).
    pub(crate) fn charge(&self, n: u64) -> Result<(), BudgetExhausted> {
        let Some(budget) = &self.inner.config.budget else {
            return Ok(());
        };
        let cost = budget.complexity(n);
        if cost > budget.points {
            // No window will ever take it: monday.com's per-query limit, no retry.
            return Err(BudgetExhausted {
                cost,
                left: 0,
                limit: budget.points,
                reset_in: None,
            });
        }
        let mut limits = lock(&self.inner.limits);
        limits
            .budget
            .take(Instant::now(), budget.window, budget.points, cost)
            .map_err(|reset_in| BudgetExhausted {
                cost,
                left: limits.budget.left(budget.points),
                limit: budget.points,
                reset_in: Some(reset_in),
            })
    }

    /// Draws a request's fate: two draws per request, whatever the rates, so the sequence
    /// of fates depends only on the seed and the order of arrival.
    pub(crate) fn draw(&self) -> Fate {
        let cfg = &self.inner.config;
        let mut rng = lock(&self.inner.rng);
        let fail = rng.gen::<f64>() < cfg.error_rate;
        let drop = rng.gen::<f64>() < cfg.drop_rate;
        match (fail, drop) {
            (true, _) => Fate::Fail,
            (false, true) => Fate::Drop,
            (false, false) => Fate::Answer,
        }
    }

    /// Processes an admitted, parsed request that `arrived` then: waits for a slot, spends
    /// its cost, applies. The work runs in its own task so that it completes, slot time and
    /// all, even if the caller (the client's connection, or the gateway) gives up.
    pub(crate) async fn process(
        &self,
        mutations: Vec<Mutation>,
        fate: Fate,
        arrived: Instant,
    ) -> Outcome {
        let (tx, rx) = oneshot::channel();
        let state = self.clone();
        tokio::spawn(async move {
            let _ = tx.send(state.work(mutations, fate).await);
        });
        // The task only fails to answer if it panicked: a server error.
        let Some(limit) = self.inner.config.gateway_timeout else {
            return rx.await.unwrap_or(Outcome::Failed);
        };
        match tokio::time::timeout_at(arrived + limit, rx).await {
            Ok(answer) => answer.unwrap_or(Outcome::Failed),
            Err(_) => {
                self.record(|s| s.gateway_timeouts += 1);
                Outcome::GatewayTimeout
            }
        }
    }

    async fn work(&self, mutations: Vec<Mutation>, fate: Fate) -> Outcome {
        let cfg = &self.inner.config;
        let Ok(_slot) = self.inner.slots.acquire().await else {
            // The semaphore is never closed.
            return Outcome::Failed;
        };
        let n = u64::try_from(mutations.len()).unwrap_or(u64::MAX);
        if cfg.times_out(n) {
            tokio::time::sleep(cfg.request_timeout).await;
            self.record(|s| s.timeouts += 1);
            return Outcome::TimedOut;
        }
        tokio::time::sleep(cfg.cost(n)).await;
        match fate {
            Fate::Fail => {
                self.record(|s| s.errors_500 += 1);
                Outcome::Failed
            }
            Fate::Drop => match self.apply(mutations, true) {
                None => Outcome::Poisoned,
                Some(_) => Outcome::Dropped,
            },
            Fate::Answer => self
                .apply(mutations, false)
                .map_or(Outcome::Poisoned, Outcome::Applied),
        }
    }

    /// Applies every alias that is not rejected, in order, under one lock; `None` if a
    /// poisoned alias failed the whole request (`poison_unnamed`) and nothing was applied.
    fn apply(&self, mutations: Vec<Mutation>, dropped: bool) -> Option<Vec<AliasResult>> {
        let cfg = &self.inner.config;
        let rejections: Vec<Option<Rejection>> =
            mutations.iter().map(|m| self.rejection(m)).collect();
        let mut guard = lock(&self.inner.ledger);
        let ledger = &mut *guard;
        let poisoned = |r: &Option<Rejection>| matches!(r, Some(Rejection::Poison { .. }));
        if cfg.poison_unnamed && rejections.iter().any(poisoned) {
            ledger.poisoned_requests += 1;
            ledger.poison_rejected += rejections.iter().filter(|r| poisoned(r)).count() as u64;
            return None;
        }
        if dropped {
            ledger.dropped += 1;
        }
        let results = mutations
            .into_iter()
            .zip(rejections)
            .map(|(m, rejected)| {
                match &rejected {
                    Some(Rejection::Poison { .. }) => ledger.poison_rejected += 1,
                    Some(_) => ledger.value_rejected += 1,
                    None => {
                        ledger.mutations_applied += 1;
                        let item = ledger.items.entry(m.item_id).or_default();
                        item.applies += 1;
                        item.values.extend(m.column_values);
                    }
                }
                AliasResult {
                    alias: m.alias,
                    item_id: m.item_id,
                    rejected,
                }
            })
            .collect();
        Some(results)
    }

    /// Why `m` is not applied: the first column holding the poison value, else (with
    /// `check_values`) the first column not on the board or wrongly shaped.
    fn rejection(&self, m: &Mutation) -> Option<Rejection> {
        let cfg = &self.inner.config;
        let poison = cfg.poison_value.as_str();
        if !poison.is_empty() {
            if let Some((column, _)) = m.column_values.iter().find(|(_, v)| holds(v, poison)) {
                return Some(Rejection::Poison {
                    column: column.clone(),
                });
            }
        }
        if !cfg.check_values {
            return None;
        }
        m.column_values.iter().find_map(|(id, value)| {
            let Some(col) = cfg.columns.iter().find(|c| &c.id == id) else {
                return Some(Rejection::NoColumn { column: id.clone() });
            };
            columns::check(col.kind, value)
                .err()
                .map(|message| Rejection::Value {
                    column: id.clone(),
                    kind: col.kind,
                    value: value.clone(),
                    message,
                })
        })
    }
}

/// A request the complexity budget turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BudgetExhausted {
    /// Its complexity.
    pub(crate) cost: u64,
    /// Points left in the window.
    pub(crate) left: u64,
    /// Points per window.
    pub(crate) limit: u64,
    /// Time until the window resets; `None` if the request is over the whole budget (it
    /// never fits).
    pub(crate) reset_in: Option<Duration>,
}

/// Whether `v` is the string `poison` or holds it anywhere inside.
fn holds(v: &Value, poison: &str) -> bool {
    match v {
        Value::String(s) => s == poison,
        Value::Array(a) => a.iter().any(|v| holds(v, poison)),
        Value::Object(o) => o.values().any(|v| holds(v, poison)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn state(config: SimConfig) -> SimState {
        SimState::new(config).unwrap()
    }

    fn mutation(alias: &str, item_id: u64, cols: Value) -> Mutation {
        Mutation {
            alias: alias.to_owned(),
            item_id,
            board_id: 1,
            column_values: cols.as_object().unwrap().clone(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn rate_windows_are_fixed_and_aligned_to_the_first_request() {
        let s = state(SimConfig {
            rate_limit: 2,
            ..SimConfig::default()
        });
        tokio::time::advance(Duration::from_millis(300)).await;
        assert_eq!(s.admit(), Ok(()));
        tokio::time::advance(Duration::from_millis(600)).await;
        assert_eq!(s.admit(), Ok(()));
        assert_eq!(s.admit(), Err(Duration::from_millis(400)));
        // 1.05 s after the first request: a new window.
        tokio::time::advance(Duration::from_millis(450)).await;
        assert_eq!(s.admit(), Ok(()));
        assert_eq!(s.admit(), Ok(()));
        assert_eq!(s.admit(), Err(Duration::from_millis(950)));
        // Skip several windows: still aligned to the first request.
        tokio::time::advance(Duration::from_millis(3_000)).await;
        assert_eq!(s.admit(), Ok(()));
        assert_eq!(s.admit(), Ok(()));
        assert_eq!(s.admit(), Err(Duration::from_millis(950)));
        s.reset();
        assert_eq!(s.admit(), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn slots_queue_requests_and_the_cost_is_spent_in_them() {
        let s = state(SimConfig {
            slots: 1,
            per_request: Duration::from_millis(10),
            per_mutation: Duration::from_millis(5),
            ..SimConfig::default()
        });
        let t0 = Instant::now();
        let one = || vec![mutation("a0", 1, json!({"c": "x"}))];
        let (a, b) = tokio::join!(
            s.process(one(), Fate::Answer, Instant::now()),
            s.process(one(), Fate::Answer, Instant::now())
        );
        assert!(matches!(a, Outcome::Applied(_)));
        assert!(matches!(b, Outcome::Applied(_)));
        // Two requests of 15 ms each, one after the other.
        assert_eq!(t0.elapsed(), Duration::from_millis(30));
        assert_eq!(s.stats().items[&1].applies, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn too_large_requests_hold_the_slot_for_the_timeout() {
        let s = state(SimConfig::default());
        let t0 = Instant::now();
        let many = (0..24)
            .map(|i| mutation(&format!("a{i}"), i, json!({})))
            .collect();
        assert_eq!(
            s.process(many, Fate::Answer, Instant::now()).await,
            Outcome::TimedOut
        );
        assert_eq!(t0.elapsed(), Duration::from_millis(500));
        let stats = s.stats();
        assert_eq!((stats.timeouts, stats.mutations_applied), (1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn poison_rejects_its_alias_only_and_values_merge() {
        let s = state(SimConfig::default());
        let out = s
            .process(
                vec![
                    mutation("a0", 1, json!({"date4": "2024-01-02", "country": "US"})),
                    mutation("a1", 2, json!({"country": {"countryCode": "INVALID"}})),
                    mutation("a2", 1, json!({"country": "FR"})),
                ],
                Fate::Answer,
                Instant::now(),
            )
            .await;
        let Outcome::Applied(results) = out else {
            panic!("{out:?}")
        };
        let poisoned: Vec<_> = results
            .iter()
            .map(|r| match &r.rejected {
                Some(Rejection::Poison { column }) => Some(column.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(poisoned, [None, Some("country"), None]);
        let stats = s.stats();
        assert_eq!((stats.mutations_applied, stats.poison_rejected), (2, 1));
        assert_eq!(stats.items[&1].applies, 2);
        assert_eq!(
            Value::Object(stats.items[&1].values.clone()),
            json!({"date4": "2024-01-02", "country": "FR"})
        );
        assert!(!stats.items.contains_key(&2));
    }

    #[test]
    fn fates_follow_the_seed() {
        let cfg = SimConfig {
            error_rate: 0.3,
            drop_rate: 0.3,
            seed: 7,
            ..SimConfig::default()
        };
        let s = state(cfg.clone());
        let first: Vec<Fate> = (0..50).map(|_| s.draw()).collect();
        assert!(
            first.contains(&Fate::Fail)
                && first.contains(&Fate::Drop)
                && first.contains(&Fate::Answer)
        );
        s.reset();
        let again: Vec<Fate> = (0..50).map(|_| s.draw()).collect();
        assert_eq!(first, again);
        let other = state(cfg);
        assert_eq!(first, (0..50).map(|_| other.draw()).collect::<Vec<_>>());
    }

    #[test]
    fn stats_json_uses_string_keys_and_round_trips() {
        let s = state(SimConfig::default());
        s.apply(vec![mutation("a0", 123, json!({"country": "US"}))], false);
        let v: Value = serde_json::from_slice(&s.stats_json().unwrap()).unwrap();
        assert_eq!(v["profile"]["name"], "default");
        assert_eq!(v["profile"]["ceiling_items_per_s"], 184.0);
        let bytes = s.stats_json().unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v["items"]["123"],
            json!({"applies": 1, "values": {"country": "US"}})
        );
        let back: Stats = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, s.stats());
    }
}
