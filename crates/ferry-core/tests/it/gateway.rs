//! Queueing is not size, and abandoned work still holds the target: against a gateway in
//! front of a few slots that answers `504` to a request not done within its timeout of
//! arrival while the request goes on holding its place (queued, then served), the engine,
//! told nothing, learns the slots and a batch size that fits, loses nothing, and keeps the
//! timeouts to the learning. On tokio's paused clock.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_core::adaptive::ConcurrencyConfig;
use ferry_core::{
    Batch, BatchOutcome, BoxFuture, Concurrency, Engine, EngineConfig, FlushPolicy, Handler, Item,
};
use tokio::sync::{oneshot, Semaphore};
use tokio::time::Instant;

/// `slots` parallel slots behind a gateway: a request waits for a slot, takes
/// `per_request + per_item × n` there and applies its items; the gateway answers `504` at
/// `timeout` after arrival if it is not done, and the work goes on.
struct GatewayApi {
    slots: Arc<Semaphore>,
    per_request: Duration,
    per_item: Duration,
    timeout: Duration,
    state: Arc<Mutex<GatewayState>>,
}

#[derive(Default)]
struct GatewayState {
    applied: HashMap<u64, u32>,
    timeouts: u64,
    answered: u64,
}

impl Handler<u64, ()> for GatewayApi {
    fn call<'a>(&'a self, batch: &'a Batch<u64>) -> BoxFuture<'a, BatchOutcome<()>> {
        Box::pin(async move {
            let arrived = Instant::now();
            let ids: Vec<u64> = batch.items().iter().map(|i| *i.payload()).collect();
            let cost = self.per_request + self.per_item * ids.len() as u32;
            let (slots, state) = (Arc::clone(&self.slots), Arc::clone(&self.state));
            let (tx, rx) = oneshot::channel();
            // The backend's work runs on whether or not the gateway waits for it.
            tokio::spawn(async move {
                let Ok(_slot) = slots.acquire().await else {
                    return;
                };
                tokio::time::sleep(cost).await;
                let mut s = state.lock().unwrap();
                for id in ids {
                    *s.applied.entry(id).or_default() += 1;
                }
                let _ = tx.send(());
            });
            match tokio::time::timeout_at(arrived + self.timeout, rx).await {
                Ok(_) => {
                    self.state.lock().unwrap().answered += 1;
                    BatchOutcome::success(batch.len())
                }
                Err(_) => {
                    self.state.lock().unwrap().timeouts += 1;
                    BatchOutcome::too_large("HTTP 504: Gateway Timeout")
                }
            }
        })
    }
}

/// 8 slots, 80 ms + 60 ms an item, 1.5 s gateway timeout (the simulator's
/// `gateway-queue` profile): its ceiling is 8 × 23 / 1.46 s = 126 items/s.
#[tokio::test(start_paused = true)]
async fn a_gateway_queue_is_learned_without_losing_an_item() {
    let items = 6_000u64;
    let state = Arc::new(Mutex::new(GatewayState::default()));
    let api = GatewayApi {
        slots: Arc::new(Semaphore::new(8)),
        per_request: Duration::from_millis(80),
        per_item: Duration::from_millis(60),
        timeout: Duration::from_millis(1_500),
        state: Arc::clone(&state),
    };
    let mut config = EngineConfig::standard();
    config.flush = FlushPolicy::new().max_items(NonZeroUsize::new(100).unwrap());
    config.dispatch.concurrency = Concurrency::Adaptive(ConcurrencyConfig {
        max: 32,
        ..Default::default()
    });
    config.seed = Some(7);
    let report = Engine::new(config, api)
        .unwrap()
        .run_iter((0..items).map(|i| Item::new(i, i, i)))
        .await
        .unwrap();
    let s = state.lock().unwrap();
    assert_eq!(report.progress.dead_lettered, 0, "{report}");
    assert_eq!(report.progress.succeeded, items, "{report}");
    assert!(
        (0..items).all(|i| s.applied.contains_key(&i)),
        "an item never applied"
    );
    // Slow start overshoots by one round at most: it waits for a round's stragglers (the
    // calls queued behind the 8 slots) before growing or refilling, so the calls in flight
    // peak at twice the slots (per-call growth ran to 20-23 here). The limit then comes
    // down to near the slots. (On this clock, without jitter, it settles at 9-11 with
    // batches of 11-16 that each wait a little; on the simulator at 8-10.)
    assert!(
        report.peak_concurrency > 8
            && report.peak_concurrency <= 16
            && report.final_concurrency <= 12,
        "settled on {} (peak {}): {report}",
        report.final_concurrency,
        report.peak_concurrency
    );
    // Timeouts are the learning's (the slow-start overshoot, re-probes of the ceiling), not
    // a cascade behind abandoned work: a few in a hundred calls.
    let calls = s.answered + s.timeouts;
    assert!(
        s.timeouts * 100 <= calls * 6,
        "{} of {calls} calls timed out: {report}",
        s.timeouts
    );
    // Within a fifth of the ceiling, learning from four calls included (the fixed client
    // told the settings does 122 items/s, 0.97 of it, on the simulator; this gets 0.91,
    // 114 items/s, peak 15, settled at 9).
    assert!(
        report.items_per_sec >= 0.8 * 126.0,
        "{:.1} items/s: {report}",
        report.items_per_sec
    );
}
