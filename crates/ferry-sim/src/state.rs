//! The simulator's shared state ([`SimState`]) and what it records ([`Stats`]). It owns a
//! request's life once the server has parsed it: rate-limit admission, the fault draw,
//! waiting for a slot, spending the cost, and applying the mutations to the ledger. The wire
//! format lives in the server module; this one knows nothing of HTTP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::{oneshot, Semaphore};
use tokio::time::Instant;

use crate::graphql::Mutation;
use crate::{Error, SimConfig};

const WINDOW: Duration = Duration::from_secs(1);

/// What the simulator saw and did since it started or was last reset: the body of
/// `GET /stats`, and what [`SimState::stats`] returns.
///
/// Every `POST /v2` counts in `requests` and then in at most one of the outcome counters
/// (`unauthorized`, `parse_errors`, `rejected_429`, `timeouts`, `errors_500`, `dropped`);
/// the rest were answered `200` with data. `mutations_applied` and `poison_rejected` count
/// aliases, including those of dropped requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// `POST /v2` requests received.
    pub requests: u64,
    /// Aliases applied (an item applied twice counts twice).
    pub mutations_applied: u64,
    /// Requests answered `429` (over the rate limit).
    pub rejected_429: u64,
    /// Requests answered `504` (cost over `request_timeout`).
    pub timeouts: u64,
    /// Requests answered `500` (the `error_rate` draw).
    pub errors_500: u64,
    /// Requests applied and then dropped without an answer (the `drop_rate` draw).
    pub dropped: u64,
    /// Aliases rejected for holding the poison value.
    pub poison_rejected: u64,
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
    /// An injected server error; nothing applied.
    Failed,
    /// Applied (except poisoned aliases); answer with these.
    Applied(Vec<AliasResult>),
    /// Applied; drop the connection.
    Dropped,
}

/// One alias of an applied request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AliasResult {
    pub(crate) alias: String,
    pub(crate) item_id: u64,
    /// The first column holding the poison value, if any: then the alias was not applied.
    pub(crate) poisoned_column: Option<String>,
}

#[derive(Debug, Default)]
struct Window {
    start: Option<Instant>,
    admitted: u32,
}

/// A simulator's state: its settings, slots, rate window, fault RNG and ledger. Clones share
/// one simulator; [`app`](crate::app) serves one.
#[derive(Debug, Clone)]
pub struct SimState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: SimConfig,
    slots: Semaphore,
    window: Mutex<Window>,
    rng: Mutex<SmallRng>,
    ledger: Mutex<Stats>,
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
                window: Mutex::new(Window::default()),
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

    /// Clears the ledger, restarts the rate-limit windows and reseeds the RNG, so the next
    /// run starts as the first did. Requests in flight carry on and are recorded afterwards.
    pub fn reset(&self) {
        *lock(&self.inner.ledger) = Stats::default();
        *lock(&self.inner.window) = Window::default();
        *lock(&self.inner.rng) = SmallRng::seed_from_u64(self.inner.config.seed);
    }

    /// The ledger as JSON, serialized in place rather than cloned first.
    pub(crate) fn stats_json(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(&*lock(&self.inner.ledger))
    }

    /// Updates the ledger's counters.
    pub(crate) fn record(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut lock(&self.inner.ledger));
    }

    /// Admits a request into the current one-second window, or says how long until the
    /// next one. Windows are aligned to the first request since start or reset.
    pub(crate) fn admit(&self) -> Result<(), Duration> {
        let now = Instant::now();
        let mut w = lock(&self.inner.window);
        let mut start = *w.start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= WINDOW {
            start += Duration::from_secs(elapsed.as_secs());
            *w = Window {
                start: Some(start),
                admitted: 0,
            };
        }
        if w.admitted >= self.inner.config.rate_limit {
            return Err((start + WINDOW).saturating_duration_since(now));
        }
        w.admitted += 1;
        Ok(())
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

    /// Processes an admitted, parsed request: waits for a slot, spends its cost, applies.
    /// The work runs in its own task so that it completes, slot time and all, even if the
    /// caller (the client's connection) goes away.
    pub(crate) async fn process(&self, mutations: Vec<Mutation>, fate: Fate) -> Outcome {
        let (tx, rx) = oneshot::channel();
        let state = self.clone();
        tokio::spawn(async move {
            let _ = tx.send(state.work(mutations, fate).await);
        });
        // The task only fails to answer if it panicked: a server error.
        rx.await.unwrap_or(Outcome::Failed)
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
            Fate::Drop => {
                self.apply(mutations, true);
                Outcome::Dropped
            }
            Fate::Answer => Outcome::Applied(self.apply(mutations, false)),
        }
    }

    /// Applies every alias without poison, in order, under one lock.
    fn apply(&self, mutations: Vec<Mutation>, dropped: bool) -> Vec<AliasResult> {
        let poison = self.inner.config.poison_value.as_str();
        let mut guard = lock(&self.inner.ledger);
        let ledger = &mut *guard;
        if dropped {
            ledger.dropped += 1;
        }
        mutations
            .into_iter()
            .map(|m| {
                let poisoned_column = if poison.is_empty() {
                    None
                } else {
                    m.column_values
                        .iter()
                        .find(|(_, v)| holds(v, poison))
                        .map(|(k, _)| k.clone())
                };
                if poisoned_column.is_some() {
                    ledger.poison_rejected += 1;
                } else {
                    ledger.mutations_applied += 1;
                    let item = ledger.items.entry(m.item_id).or_default();
                    item.applies += 1;
                    item.values.extend(m.column_values);
                }
                AliasResult {
                    alias: m.alias,
                    item_id: m.item_id,
                    poisoned_column,
                }
            })
            .collect()
    }
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
            s.process(one(), Fate::Answer),
            s.process(one(), Fate::Answer)
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
        assert_eq!(s.process(many, Fate::Answer).await, Outcome::TimedOut);
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
            )
            .await;
        let Outcome::Applied(results) = out else {
            panic!("{out:?}")
        };
        let poisoned: Vec<_> = results
            .iter()
            .map(|r| r.poisoned_column.as_deref())
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
