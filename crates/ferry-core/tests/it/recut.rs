//! A request is the scarce thing on a rate-limited API, so no call leaves carrying less than
//! the size known to go through while items wait: a probe that proves too large goes back to
//! be cut again at the confirmed size (not halved), and a probe refused for the rate goes
//! again in full batches (no short remainder of its own). Against a token-bucket API with a
//! hidden limit on the items per request, on tokio's paused clock.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_core::{
    Batch, BatchOutcome, BoxFuture, Engine, EngineConfig, FlushPolicy, Handler, Item,
};
use futures_util::StreamExt;
use tokio::time::Instant;

use ferry_core::testing::TokenBucket;

/// 8 requests a second with a burst of 2 (`429` with the exact fractional
/// `Retry-After` beyond), and at most `max_items` items a request (a larger one is refused
/// as too large after its latency); an admitted request takes 40 ms + 20 ms an item.
struct LimitedApi {
    max_items: usize,
    state: Arc<Mutex<ApiState>>,
}

struct ApiState {
    bucket: TokenBucket,
    /// Items of every request the API admitted, in order.
    admitted: Vec<usize>,
    applied: Vec<u32>,
}

impl Handler<u64, ()> for LimitedApi {
    fn call<'a>(&'a self, batch: &'a Batch<u64>) -> BoxFuture<'a, BatchOutcome<()>> {
        Box::pin(async move {
            {
                let mut s = self.state.lock().unwrap();
                if let Err(wait) = s.bucket.take(Instant::now()) {
                    return BatchOutcome::throttled(Some(wait), "HTTP 429: Rate limit exceeded");
                }
                s.admitted.push(batch.len());
            }
            let n = batch.len();
            tokio::time::sleep(Duration::from_millis(40 + 20 * n as u64)).await;
            if n > self.max_items {
                return BatchOutcome::too_large("HTTP 504: Gateway Timeout");
            }
            let mut s = self.state.lock().unwrap();
            for item in batch.items() {
                s.applied[*item.payload() as usize] += 1;
            }
            BatchOutcome::success(n)
        })
    }
}

#[tokio::test(start_paused = true)]
async fn no_call_carries_less_than_the_confirmed_size_while_items_wait() {
    let items = 3_000u64;
    let state = Arc::new(Mutex::new(ApiState {
        bucket: TokenBucket::new(8.0, 2.0),
        admitted: Vec::new(),
        applied: vec![0; items as usize],
    }));
    let api = LimitedApi {
        max_items: 20,
        state: Arc::clone(&state),
    };
    let mut config = EngineConfig::standard();
    config.flush = FlushPolicy::new().max_items(NonZeroUsize::new(100).unwrap());
    config.seed = Some(3);
    // Items arrive over 15 s, as from a source read while the run goes: probes stop once
    // input has ended.
    let source = futures_util::stream::iter(0..items).then(|i| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        Item::new(i, i, i)
    });
    let report = Engine::new(config, api).unwrap().run(source).await.unwrap();
    let s = state.lock().unwrap();
    assert_eq!(report.progress.succeeded, items, "{report}");
    assert_eq!(report.progress.dead_lettered, 0, "{report}");
    assert!(
        s.applied.iter().all(|&n| n == 1),
        "an item applied other than once"
    );
    // The size starts at 16 and only grows (the limit is 20): every admitted request but
    // the last few, cut from what was left once input ended, carries at least 16 items.
    let (body, tail) = s.admitted.split_at(s.admitted.len() - 2);
    let short: Vec<_> = body.iter().filter(|&&n| n < 16).collect();
    assert!(
        short.is_empty(),
        "requests of fewer than 16 items before the tail: {short:?} (tail {tail:?}); all: {:?}",
        s.admitted
    );
    // Some probe was over the limit and some was refused for the rate: both paths ran.
    assert!(
        s.admitted.iter().any(|&n| n > 20),
        "no probe over the limit: {:?}",
        s.admitted
    );
    assert!(
        report.progress.retries > 0,
        "no request refused for the rate: {report}"
    );
}
