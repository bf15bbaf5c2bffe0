//! Back-pressure is not failure: against a token-bucket API of random rate and burst, whose
//! `429`s carry a `Retry-After` rounded in any of the ways real gateways round it (exact
//! fractional seconds, whole seconds up, whole seconds down — often `0` — or none at all),
//! the engine, told nothing, never dead-letters an item the API would accept, and every item
//! is applied exactly once. On tokio's paused clock.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_core::{
    Batch, BatchOutcome, BoxFuture, Engine, EngineConfig, FlushPolicy, Handler, Item,
};
use proptest::prelude::*;
use tokio::time::Instant;

use ferry_core::testing::TokenBucket;

/// How the API rounds the time to its next token into `Retry-After`.
#[derive(Debug, Clone, Copy)]
enum Rounding {
    /// Fractional seconds, as computed (`0.12`).
    Exact,
    /// Whole seconds, rounded up (`1`).
    Up,
    /// Whole seconds, rounded down (often `0`).
    Down,
    /// No `Retry-After` at all.
    Absent,
}

/// A token-bucket API: a call takes a token or is refused with 429 at once; an admitted
/// call takes `latency` and applies every item of its batch.
struct BucketApi {
    latency: Duration,
    rounding: Rounding,
    state: Mutex<BucketState>,
}

struct BucketState {
    bucket: TokenBucket,
    applied: HashMap<u64, u32>,
    /// Calls admitted and refused, in all and once the learning is over: from the 10th
    /// call admitted after the first refusal on (the client learns nothing before the
    /// target first says "too fast", and the calls already on their way when it does are
    /// refused with it).
    accepted: u64,
    refused: u64,
    /// Calls admitted since the first refusal, `None` before it.
    accepted_since_refusal: Option<u64>,
    steady_accepted: u64,
    steady_refused: u64,
}

impl BucketApi {
    fn take(&self) -> Result<(), Option<Duration>> {
        let mut s = self.state.lock().unwrap();
        let steady = s.accepted_since_refusal.is_some_and(|n| n >= 10);
        let taken = s.bucket.take(Instant::now());
        let Err(wait) = taken else {
            s.accepted += 1;
            if let Some(n) = s.accepted_since_refusal.as_mut() {
                *n += 1;
            }
            s.steady_accepted += u64::from(steady);
            return Ok(());
        };
        s.refused += 1;
        s.accepted_since_refusal.get_or_insert(0);
        s.steady_refused += u64::from(steady);
        let exact = wait;
        let wait = wait.as_secs_f64();
        Err(match self.rounding {
            Rounding::Exact => Some(exact),
            Rounding::Up => Some(Duration::from_secs_f64(wait.ceil())),
            Rounding::Down => Some(Duration::from_secs_f64(wait.floor())),
            Rounding::Absent => None,
        })
    }
}

/// The engine's handle on the shared API.
struct BucketHandler(Arc<BucketApi>);

impl Handler<u64, ()> for BucketHandler {
    fn call<'a>(&'a self, batch: &'a Batch<u64>) -> BoxFuture<'a, BatchOutcome<()>> {
        Box::pin(async move {
            if let Err(after) = self.0.take() {
                return BatchOutcome::throttled(after, "HTTP 429: Rate limit exceeded");
            }
            tokio::time::sleep(self.0.latency).await;
            let mut s = self.0.state.lock().unwrap();
            for item in batch.items() {
                *s.applied.entry(*item.payload()).or_default() += 1;
            }
            BatchOutcome::success(batch.len())
        })
    }
}

fn rounding() -> impl Strategy<Value = Rounding> {
    prop_oneof![
        Just(Rounding::Exact),
        Just(Rounding::Up),
        Just(Rounding::Down),
        Just(Rounding::Absent),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn a_token_bucket_never_costs_an_item(
        rate in 0.5f64..40.0,
        burst in 1u32..6,
        latency_ms in 5u64..400,
        rounding in rounding(),
        items in 200u64..1500,
        seed: u64,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let (report, api) = rt.block_on(async move {
            let api = Arc::new(BucketApi {
                latency: Duration::from_millis(latency_ms),
                rounding,
                state: Mutex::new(BucketState {
                    bucket: TokenBucket::new(rate, f64::from(burst)),
                    applied: HashMap::new(),
                    accepted: 0,
                    refused: 0,
                    accepted_since_refusal: None,
                    steady_accepted: 0,
                    steady_refused: 0,
                }),
            });
            let mut config = EngineConfig::standard();
            // Small batches, so that a run makes enough calls for the pace to matter.
            config.flush = FlushPolicy::new().max_items(NonZeroUsize::new(10).unwrap());
            config.seed = Some(seed);
            let report = Engine::new(config, BucketHandler(Arc::clone(&api)))
                .unwrap()
                .run_iter((0..items).map(|i| Item::new(i, i, i)))
                .await
                .unwrap();
            (report, api)
        });
        let s = api.state.lock().unwrap();
        prop_assert_eq!(report.progress.dead_lettered, 0, "{}", report);
        prop_assert_eq!(report.progress.succeeded, items);
        prop_assert_eq!(s.applied.len() as u64, items);
        prop_assert!(s.applied.values().all(|&n| n == 1), "an item applied twice");
        // Once learned, the pace keeps refusals to a small share of what the API accepts
        // (each probe upward may cost one).
        prop_assert!(
            s.steady_refused <= s.steady_accepted / 4 + 3,
            "after learning, {} refused against {} accepted ({} and {} in all): {}",
            s.steady_refused, s.steady_accepted, s.refused, s.accepted, report
        );
    }
}

/// An API that only ever answers 429: without a deadline the engine would wait for ever
/// (back-pressure costs time, never an item); with `dispatch.deadline` the items are
/// dead-lettered once it passes, with the API's reason, and not before.
#[tokio::test(start_paused = true)]
async fn the_deadline_ends_a_wait_that_never_ends() {
    use ferry_core::{handler_fn, MemoryDeadLetters};
    let handler = handler_fn(|_batch: &Batch<u64>| {
        Box::pin(async {
            BatchOutcome::<()>::throttled(Some(Duration::from_millis(300)), "HTTP 429: slow down")
        })
    });
    let mut config = EngineConfig::standard();
    config.dispatch.deadline = Some(Duration::from_secs(5));
    let dead = MemoryDeadLetters::new();
    let start = Instant::now();
    let run = Engine::new(config, handler)
        .unwrap()
        .dead_letters(dead.clone())
        .run_iter((0..20u64).map(|i| Item::new(i, i, i)));
    let report = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the deadline did not end the run")
        .unwrap();
    let took = start.elapsed();
    assert_eq!(report.progress.dead_lettered, 20, "{report}");
    assert!(
        took >= Duration::from_secs(5),
        "ended after {took:?}, before the deadline"
    );
    assert!(took < Duration::from_secs(7), "ended {took:?} after start");
    let letters = dead.snapshot();
    assert!(
        letters
            .iter()
            .all(|d| d.error.contains("HTTP 429: slow down")),
        "{letters:?}"
    );
    // Refused items were sent again: they waited, they were not given up. (How many
    // resends fit before the deadline depends on the pace the rate controller learned, so
    // a batch refused late may have had no second turn; the run's length above shows none
    // ended before the deadline.)
    assert!(letters.iter().any(|d| d.attempts >= 2), "{letters:?}");
}
