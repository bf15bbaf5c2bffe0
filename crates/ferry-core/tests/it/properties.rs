//! Acceptance 1: property tests over random item streams, handler latencies and failure
//! patterns, on tokio's paused clock (deterministic and fast).
//!
//! * every accepted item ends exactly once: succeeded or dead-lettered, never both, never lost;
//! * the number of calls in flight never exceeds the concurrency limit;
//! * a poison item (one that fails any batch it is in) is dead-lettered alone and its
//!   neighbours succeed;
//! * no item waits for a batch longer than its priority's `max_wait` plus one tick;
//! * every progress snapshot balances: accepted = succeeded + dead + cancelled + in flight.

use std::collections::{HashMap, HashSet};
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_core::adaptive::{BatchSizeConfig, ConcurrencyConfig};
use ferry_core::{
    Batch, BatchOutcome, BatchSizing, BoxFuture, Concurrency, Engine, EngineConfig, FlushPolicy,
    Handler, Item, MemoryDeadLetters, Priority, RetryPolicy, Settled, SplitStrategy,
};
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

/// How a poison item breaks the batches it is in.
#[derive(Debug, Clone, Copy)]
enum PoisonMode {
    /// The API answers with a batch-level error naming no item.
    Split,
    /// The API answers 5xx.
    Retry,
    /// The API never answers.
    Hang,
}

#[derive(Debug, Clone)]
struct Scenario {
    /// (gap before arrival in ms, priority index 0..3: low, medium, high)
    arrivals: Vec<(u64, u8)>,
    poison: HashSet<u64>,
    poison_mode: PoisonMode,
    /// Probability that a call fails transiently (5xx or Retry-After), while items are young.
    fault_rate: f64,
    /// Probability that a call hangs past the timeout, while items are young.
    hang_rate: f64,
    base_ms: u64,
    per_item_ms: u64,
    limit: usize,
    adaptive: bool,
    ladder: bool,
    seed: u64,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        proptest::collection::vec((0u64..30, 0u8..3), 1..300),
        proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
        prop_oneof![
            Just(PoisonMode::Split),
            Just(PoisonMode::Retry),
            Just(PoisonMode::Hang)
        ],
        0.0f64..0.3,
        0.0f64..0.1,
        (1u64..200, 0u64..10),
        1usize..12,
        any::<bool>(),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(
            |(
                arrivals,
                poison_idx,
                poison_mode,
                fault_rate,
                hang_rate,
                (base_ms, per_item_ms),
                limit,
                adaptive,
                ladder,
                seed,
            )| {
                let n = arrivals.len();
                let poison = poison_idx.iter().map(|i| i.index(n) as u64).collect();
                Scenario {
                    arrivals,
                    poison,
                    poison_mode,
                    fault_rate,
                    hang_rate,
                    base_ms,
                    per_item_ms,
                    limit,
                    adaptive,
                    ladder,
                    seed,
                }
            },
        )
}

const TIMEOUT: Duration = Duration::from_secs(5);
/// Transient faults only hit items that have been tried fewer times than this, so a
/// neighbour's charged failures stay below `MAX_ATTEMPTS` whatever the dice say.
const YOUNG: u32 = 3;
const MAX_ATTEMPTS: u32 = 8;

#[derive(Default)]
struct Log {
    /// Keys of every call, in start order.
    calls: Vec<Vec<u64>>,
    /// First time each key reached a handler.
    first_call: HashMap<u64, Instant>,
    /// Successful results returned per key.
    ok_results: HashMap<u64, u32>,
}

struct TestApi {
    s: Scenario,
    rng: Mutex<SmallRng>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    log: Arc<Mutex<Log>>,
}

struct InFlight(Arc<AtomicUsize>);
impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Handler<u64, u64> for TestApi {
    fn call<'a>(&'a self, batch: &'a Batch<u64>) -> BoxFuture<'a, BatchOutcome<u64>> {
        Box::pin(async move {
            let now = Instant::now();
            let n = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            let _guard = InFlight(Arc::clone(&self.in_flight));
            self.max_in_flight.fetch_max(n, Ordering::SeqCst);
            let keys: Vec<u64> = batch.payloads().copied().collect();
            {
                let mut log = self.log.lock().unwrap();
                for k in &keys {
                    log.first_call.entry(*k).or_insert(now);
                }
                log.calls.push(keys.clone());
            }
            let young = batch.items().iter().any(|i| i.attempts() <= YOUNG);
            let (fault, hang, jitter, after) = {
                let mut rng = self.rng.lock().unwrap();
                (
                    young && rng.gen_bool(self.s.fault_rate),
                    young && rng.gen_bool(self.s.hang_rate),
                    rng.gen_range(0..=self.s.base_ms),
                    rng.gen_bool(0.5)
                        .then(|| Duration::from_millis(rng.gen_range(1..500))),
                )
            };
            let has_poison = keys.iter().any(|k| self.s.poison.contains(k));
            if hang || (has_poison && matches!(self.s.poison_mode, PoisonMode::Hang)) {
                tokio::time::sleep(TIMEOUT * 10).await;
            }
            tokio::time::sleep(Duration::from_millis(
                self.s.base_ms + jitter + self.s.per_item_ms * keys.len() as u64,
            ))
            .await;
            if fault {
                return BatchOutcome::retry(after, "503 Service Unavailable");
            }
            if has_poison {
                return match self.s.poison_mode {
                    PoisonMode::Retry => BatchOutcome::retry(None, "500 Internal Server Error"),
                    _ => BatchOutcome::split("400: invalid column value somewhere in the batch"),
                };
            }
            let mut log = self.log.lock().unwrap();
            for k in &keys {
                *log.ok_results.entry(*k).or_default() += 1;
            }
            BatchOutcome::ok(keys.iter().map(|k| k * 2))
        })
    }
}

fn config(s: &Scenario) -> EngineConfig {
    let mut c = EngineConfig::standard();
    c.seed = Some(s.seed);
    c.flush = FlushPolicy::new().max_items(NonZeroUsize::new(40).unwrap());
    c.sizing = BatchSizing::Adaptive(BatchSizeConfig {
        initial: 4,
        ..Default::default()
    });
    c.dispatch.concurrency = if s.adaptive {
        Concurrency::Adaptive(ConcurrencyConfig {
            max: s.limit,
            ..Default::default()
        })
    } else {
        Concurrency::Fixed(NonZeroUsize::new(s.limit).unwrap())
    };
    c.dispatch.timeout = TIMEOUT;
    c.dispatch.split = if s.ladder {
        SplitStrategy::ladder(&[15, 5, 1]).unwrap()
    } else {
        SplitStrategy::Bisect
    };
    c.retry = RetryPolicy::new(
        NonZeroU32::new(MAX_ATTEMPTS).unwrap(),
        Duration::from_millis(50),
        Duration::from_secs(2),
    )
    .unwrap()
    .split_after(2);
    c
}

fn run_scenario(s: Scenario) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let log = Arc::new(Mutex::new(Log::default()));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let api = TestApi {
            s: s.clone(),
            rng: Mutex::new(SmallRng::seed_from_u64(s.seed)),
            in_flight: Arc::new(AtomicUsize::new(0)),
            max_in_flight: Arc::clone(&max_in_flight),
            log: Arc::clone(&log),
        };
        let dead = MemoryDeadLetters::new();
        let mut running = Engine::new(config(&s), api)
            .unwrap()
            .dead_letters(dead.clone())
            .emit_settled(16)
            .start();
        let mut settled_rx = running.take_settled().unwrap();
        let collector = tokio::spawn(async move {
            let mut all = Vec::new();
            while let Some(batch) = settled_rx.recv().await {
                all.extend(batch);
            }
            all
        });
        let mut progress = running.progress();
        let watcher = tokio::spawn(async move {
            let mut balanced = true;
            while progress.changed().await.is_ok() {
                balanced &= progress.borrow_and_update().balanced();
            }
            balanced
        });
        let intake = running.intake();
        let mut pushed_at = HashMap::new();
        let priorities = [Priority::Low, Priority::Medium, Priority::High];
        for (i, (gap, p)) in s.arrivals.iter().enumerate() {
            tokio::time::sleep(Duration::from_millis(*gap)).await;
            let priority = priorities[*p as usize];
            pushed_at.insert(i as u64, (Instant::now(), priority));
            intake
                .push(Item::new(i as u64, i as u64, i as u64).with_priority(priority))
                .await
                .unwrap();
        }
        drop(intake);
        let report = running.finish().await.unwrap();
        let settled = collector.await.unwrap();
        prop_assert!(
            watcher.await.unwrap(),
            "a progress snapshot did not balance"
        );

        let n = s.arrivals.len() as u64;
        // Exactly once: every key settles once, as success or dead letter, never cancelled.
        let mut seen = HashSet::new();
        let mut succeeded = HashSet::new();
        let mut dead_keys = HashSet::new();
        for o in &settled {
            match o {
                Settled::Succeeded { item, result } => {
                    prop_assert_eq!(*result, item.payload() * 2);
                    succeeded.insert(*item.payload());
                }
                Settled::DeadLettered(d) => {
                    dead_keys.insert(*d.item.payload());
                }
                Settled::Cancelled(item) => {
                    prop_assert!(false, "item {} cancelled", item.payload())
                }
            }
            let key: u64 = o.key().as_str().parse().unwrap();
            prop_assert!(seen.insert(key), "key {} settled twice", key);
        }
        prop_assert_eq!(seen.len() as u64, n, "lost items");
        prop_assert_eq!(report.progress.accepted, n);
        prop_assert_eq!(report.progress.succeeded + report.progress.dead_lettered, n);
        prop_assert_eq!(report.progress.in_flight, 0);
        prop_assert!(report.progress.balanced());

        // Poison items, and only they, are dead-lettered; each alone in its last call.
        prop_assert_eq!(
            &dead_keys,
            &s.poison,
            "dead letters must be exactly the poison items"
        );
        let dead_sink: HashSet<u64> = dead.snapshot().iter().map(|d| *d.item.payload()).collect();
        prop_assert_eq!(&dead_sink, &s.poison);
        let log = log.lock().unwrap();
        for p in &s.poison {
            let last = log.calls.iter().rev().find(|c| c.contains(p)).unwrap();
            prop_assert_eq!(
                last.len(),
                1,
                "poison {} was not alone in its last call: {:?}",
                p,
                last
            );
            prop_assert!(!log.ok_results.contains_key(p));
        }

        // Concurrency never exceeded its limit.
        prop_assert!(
            max_in_flight.load(Ordering::SeqCst) <= s.limit,
            "{} calls in flight, limit {}",
            max_in_flight.load(Ordering::SeqCst),
            s.limit
        );
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn every_item_ends_exactly_once_under_faults(s in scenario()) {
        run_scenario(s)?;
    }

    /// With a free dispatch slot, no item waits for its batch longer than its priority's
    /// `max_wait` plus one scheduling tick (1 ms).
    #[test]
    fn no_item_waits_past_its_max_wait(
        arrivals in proptest::collection::vec((0u64..120, 0u8..3), 1..400),
        latency_ms in 1u64..300,
        seed: u64,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        rt.block_on(async move {
            let flush = FlushPolicy::new()
                .max_items(NonZeroUsize::new(64).unwrap())
                .max_wait(Priority::Low, Duration::from_millis(500))
                .max_wait(Priority::Medium, Duration::from_millis(100))
                .max_wait(Priority::High, Duration::from_millis(10));
            let mut c = EngineConfig::standard();
            c.seed = Some(seed);
            c.flush = flush.clone();
            c.dispatch.concurrency = Concurrency::Fixed(NonZeroUsize::new(10_000).unwrap());
            let first_call: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
            let fc = Arc::clone(&first_call);
            let handler = ferry_core::handler_fn(move |batch: &Batch<u64>| {
                let now = Instant::now();
                {
                    let mut fc = fc.lock().unwrap();
                    for k in batch.payloads() {
                        fc.entry(*k).or_insert(now);
                    }
                }
                let n = batch.len();
                Box::pin(async move {
                    tokio::time::sleep(Duration::from_millis(latency_ms)).await;
                    BatchOutcome::success(n)
                })
            });
            let running = Engine::new(c, handler).unwrap().start();
            let intake = running.intake();
            let priorities = [Priority::Low, Priority::Medium, Priority::High];
            let mut pushed = Vec::new();
            for (i, (gap, p)) in arrivals.iter().enumerate() {
                tokio::time::sleep(Duration::from_millis(*gap)).await;
                let priority = priorities[*p as usize];
                pushed.push((i as u64, Instant::now(), priority));
                // Handler payloads are the keys, with a unit result.
                intake.push(Item::new(i as u64, i as u64, i as u64).with_priority(priority)).await.unwrap();
            }
            drop(intake);
            let report = running.finish().await.unwrap();
            prop_assert_eq!(report.progress.succeeded, arrivals.len() as u64);
            let fc = first_call.lock().unwrap();
            let tick = Duration::from_millis(1);
            for (k, at, p) in pushed {
                let waited = fc[&k] - at;
                prop_assert!(waited <= flush.wait_for(p) + tick, "item {} ({:?}) waited {:?}", k, p, waited);
            }
            Ok(())
        })?;
    }
}
