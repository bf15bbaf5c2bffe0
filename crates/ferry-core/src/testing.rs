//! Test and demo support, outside the engine's API: an in-process simulated remote API, and
//! the [`TokenBucket`] rate-limited test targets are built on.
//!
//! Nothing in the engine uses this module. It exists so that `ferry demo`, the `slow_api`
//! example, the benchmarks and the ceiling tests can run the engine against a target with
//! known, hidden limits and compare what Ferry reaches with what is possible, on tokio's
//! paused clock as well as in real time. (The HTTP simulator of the monday.com board-update
//! format is another thing: the `ferry-sim` crate and its `SimConfig`.)
//!
//! [`SimulatedApi`] behaves like this:
//!
//! * `slots` parallel processing slots, served first come first served; a request waits
//!   for a free slot;
//! * a request of `n` items costs `base + per_item × n` in its slot;
//! * a request of more than `size_limit` items times out: it holds its slot for
//!   `server_timeout` and then fails (the slot stays busy even if the client gave up, as on
//!   a real server);
//! * at most `rate_limit` requests are admitted per fixed one-second window (aligned to the
//!   first request); others are answered at once with 429 and `Retry-After` = the time left
//!   in the window;
//! * a request carrying a poison item (see `poison_every`) is rejected whole with a 400 that
//!   names no item, after its cost; nothing of it is applied.
//!
//! Its theoretical ceiling is `min(slots × L / (base + per_item × L), rate_limit × L)` items/s
//! with `L = size_limit`: every slot always busy with the largest request that fits, or every
//! admitted request carrying the largest batch that fits.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), ferry_core::Error> {
//! use std::time::Duration;
//! use ferry_core::testing::{SimulatedApi, SimulatedApiConfig, SimulatedApiHandler};
//! use ferry_core::{Engine, EngineConfig, Item};
//!
//! let api = SimulatedApi::new(SimulatedApiConfig {
//!     slots: 4,
//!     base: Duration::from_millis(50),
//!     per_item: Duration::from_millis(1),
//!     size_limit: 100,
//!     server_timeout: Duration::from_secs(5),
//!     rate_limit: 40,
//!     poison_every: None,
//! });
//! let report = Engine::new(EngineConfig::standard(), SimulatedApiHandler(api.clone()))?
//!     .run_iter((0..2_000u64).map(|i| Item::new(i, i, i)))
//!     .await?;
//! assert_eq!(report.progress.succeeded, 2_000);
//! assert_eq!(api.stats().items_applied, 2_000);
//! # Ok(()) }
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::item::Batch;
use crate::outcome::{BatchOutcome, BoxFuture, Handler};
use tokio::sync::{oneshot, Semaphore};
use tokio::time::Instant;

/// The simulated API's settings; see the module docs for what each one does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimulatedApiConfig {
    /// Requests processed in parallel.
    pub slots: usize,
    /// Fixed cost of a request.
    pub base: Duration,
    /// Cost per item in a request.
    pub per_item: Duration,
    /// Largest request that does not time out.
    pub size_limit: usize,
    /// How long a too-large request holds its slot before failing.
    pub server_timeout: Duration,
    /// Requests admitted per one-second window.
    pub rate_limit: u32,
    /// Every item whose key is a multiple of this (if set) is rejected: the request fails
    /// with a batch-level error that names no item, like an API rejecting one bad value.
    pub poison_every: Option<u64>,
}

impl SimulatedApiConfig {
    /// The best any client can do, in items per second (poison items aside).
    pub fn ceiling(&self) -> f64 {
        let l = self.size_limit as f64;
        let per_call = self.base.as_secs_f64() + self.per_item.as_secs_f64() * l;
        let slot_bound = self.slots as f64 * l / per_call;
        let rate_bound = f64::from(self.rate_limit) * l;
        slot_bound.min(rate_bound)
    }
}

/// What the simulated server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimulatedReply {
    /// Applied.
    Ok,
    /// Over the rate limit.
    TooManyRequests {
        /// Time left in the current window.
        retry_after: Duration,
    },
    /// Too large: it held a slot for the server timeout.
    GatewayTimeout,
    /// A poison item was in the request; nothing was applied.
    BadRequest,
}

#[derive(Debug, Default)]
struct Window {
    start: Option<Instant>,
    admitted: u32,
}

/// What the simulated API saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SimulatedApiStats {
    /// Requests received.
    pub requests: u64,
    /// Requests answered 429.
    pub rejected_429: u64,
    /// Requests that timed out for size.
    pub timeouts: u64,
    /// Requests rejected for a poison item.
    pub rejected_400: u64,
    /// Items applied (an item applied twice counts twice).
    pub items_applied: u64,
}

/// The simulated API; clones share one server.
#[derive(Debug, Clone)]
pub struct SimulatedApi {
    cfg: SimulatedApiConfig,
    slots: Arc<Semaphore>,
    window: Arc<Mutex<Window>>,
    stats: Arc<Mutex<SimulatedApiStats>>,
}

impl SimulatedApi {
    /// A server with `cfg`'s settings.
    pub fn new(cfg: SimulatedApiConfig) -> Self {
        SimulatedApi {
            cfg,
            slots: Arc::new(Semaphore::new(cfg.slots)),
            window: Arc::new(Mutex::new(Window::default())),
            stats: Arc::new(Mutex::new(SimulatedApiStats::default())),
        }
    }

    /// The settings.
    pub fn config(&self) -> SimulatedApiConfig {
        self.cfg
    }

    /// A copy of the counters.
    pub fn stats(&self) -> SimulatedApiStats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sends a request carrying the item keys `keys`; the server keeps working on it even if
    /// the caller drops the returned future.
    pub async fn request(&self, keys: &[u64]) -> SimulatedReply {
        let n = keys.len();
        let poisoned = self
            .cfg
            .poison_every
            .filter(|&p| p > 0)
            .is_some_and(|p| keys.iter().any(|k| k % p == 0));
        let now = Instant::now();
        {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            let start = *w.start.get_or_insert(now);
            let elapsed = now.duration_since(start);
            if elapsed >= Duration::from_secs(1) {
                // Windows are aligned to the first request.
                let k = elapsed.as_nanos() / 1_000_000_000;
                w.start = Some(start + Duration::from_secs(k as u64));
                w.admitted = 0;
            }
            let mut s = self.stats.lock().unwrap_or_else(|e| e.into_inner());
            s.requests += 1;
            if w.admitted >= self.cfg.rate_limit {
                s.rejected_429 += 1;
                let window_end = w.start.unwrap_or(now) + Duration::from_secs(1);
                return SimulatedReply::TooManyRequests {
                    retry_after: window_end - now,
                };
            }
            w.admitted += 1;
        }
        let (tx, rx) = oneshot::channel();
        let slots = Arc::clone(&self.slots);
        let stats = Arc::clone(&self.stats);
        let cfg = self.cfg;
        tokio::spawn(async move {
            let Ok(_permit) = slots.acquire_owned().await else {
                return;
            };
            if n > cfg.size_limit {
                tokio::time::sleep(cfg.server_timeout).await;
                stats.lock().unwrap_or_else(|e| e.into_inner()).timeouts += 1;
                let _ = tx.send(SimulatedReply::GatewayTimeout);
            } else {
                tokio::time::sleep(cfg.base + cfg.per_item * n as u32).await;
                let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
                if poisoned {
                    s.rejected_400 += 1;
                    let _ = tx.send(SimulatedReply::BadRequest);
                } else {
                    s.items_applied += n as u64;
                    let _ = tx.send(SimulatedReply::Ok);
                }
            }
        });
        rx.await.unwrap_or(SimulatedReply::GatewayTimeout)
    }
}

/// A token bucket, the limit of many real APIs: `rate` tokens a second, holding at most
/// `burst`, starting full. A request takes a token or is refused with the time to the next
/// one, the exact fractional `Retry-After` such APIs answer with. Driven by the caller's
/// clock (`now`), so it runs on tokio's paused clock in tests.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilling at `rate` a second.
    pub fn new(rate: f64, burst: f64) -> Self {
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            at: Instant::now(),
        }
    }

    /// Takes a token at `now`, or says how long until the next one.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

/// A Ferry handler for the simulator: maps its replies onto the engine's outcomes the way
/// an HTTP connector would (429 -> throttled, 504 -> too large, 400 naming no item -> split).
#[derive(Debug, Clone)]
pub struct SimulatedApiHandler(pub SimulatedApi);

impl Handler<u64, ()> for SimulatedApiHandler {
    fn call<'a>(&'a self, batch: &'a Batch<u64>) -> BoxFuture<'a, BatchOutcome<()>> {
        Box::pin(async move {
            let keys: Vec<u64> = batch.payloads().copied().collect();
            match self.0.request(&keys).await {
                SimulatedReply::Ok => BatchOutcome::success(batch.len()),
                SimulatedReply::TooManyRequests { retry_after } => {
                    BatchOutcome::throttled(Some(retry_after), "429 Too Many Requests")
                }
                SimulatedReply::GatewayTimeout => BatchOutcome::too_large("504 Gateway Timeout"),
                SimulatedReply::BadRequest => {
                    BatchOutcome::split("400 Bad Request: a column value was rejected")
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::Item;
    use futures_util::future::join_all;

    /// 2 slots, 100 ms + 10 ms/item, size limit 5 (3 s server timeout), 1,000 requests/s.
    fn config() -> SimulatedApiConfig {
        SimulatedApiConfig {
            slots: 2,
            base: Duration::from_millis(100),
            per_item: Duration::from_millis(10),
            size_limit: 5,
            server_timeout: Duration::from_secs(3),
            rate_limit: 1000,
            poison_every: None,
        }
    }

    /// Sends every request at once; returns each reply with the time it came back.
    async fn send_all(api: &SimulatedApi, requests: &[&[u64]]) -> Vec<(SimulatedReply, Duration)> {
        let start = Instant::now();
        join_all(requests.iter().map(|keys| async move {
            let reply = api.request(keys).await;
            (reply, start.elapsed())
        }))
        .await
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn requests_queue_for_the_slots_first_come_first_served() {
        let api = SimulatedApi::new(config());
        let replies = send_all(&api, &[&[1], &[2], &[3], &[4], &[5]]).await;
        let times: Vec<Duration> = replies.iter().map(|r| r.1).collect();
        // 110 ms each; two at a time.
        assert_eq!(times, vec![ms(110), ms(110), ms(220), ms(220), ms(330)]);
        assert!(replies.iter().all(|r| r.0 == SimulatedReply::Ok));
        assert_eq!(api.stats().items_applied, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_costs_base_plus_per_item() {
        let api = SimulatedApi::new(config());
        let replies = send_all(&api, &[&[1, 2, 3, 4, 5], &[6]]).await;
        assert_eq!(replies[0], (SimulatedReply::Ok, ms(150)));
        assert_eq!(replies[1], (SimulatedReply::Ok, ms(110)));
        let stats = api.stats();
        assert_eq!((stats.requests, stats.items_applied), (2, 6));
    }

    #[tokio::test(start_paused = true)]
    async fn over_the_size_limit_a_request_times_out_and_keeps_its_slot() {
        let api = SimulatedApi::new(SimulatedApiConfig {
            slots: 1,
            ..config()
        });
        let start = Instant::now();
        let big = api.request(&[1, 2, 3, 4, 5, 6]);
        // The client gives up after 1 s; the server keeps the slot for its full timeout.
        assert!(tokio::time::timeout(Duration::from_secs(1), big)
            .await
            .is_err());
        assert_eq!(api.request(&[7]).await, SimulatedReply::Ok);
        assert_eq!(start.elapsed(), Duration::from_secs(3) + ms(110));
        let waited = send_all(&api, &[&[1, 2, 3, 4, 5, 6]]).await;
        assert_eq!(
            waited,
            vec![(SimulatedReply::GatewayTimeout, Duration::from_secs(3))]
        );
        let stats = api.stats();
        assert_eq!((stats.timeouts, stats.items_applied), (2, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn over_the_rate_limit_a_request_gets_429_with_the_rest_of_the_window() {
        let api = SimulatedApi::new(SimulatedApiConfig {
            rate_limit: 2,
            slots: 4,
            ..config()
        });
        let start = Instant::now();
        let replies = send_all(&api, &[&[1], &[2], &[3]]).await;
        let refused = SimulatedReply::TooManyRequests {
            retry_after: Duration::from_secs(1),
        };
        // The refusal is immediate; the admitted two take their 110 ms.
        assert_eq!(replies[2], (refused, Duration::ZERO));
        assert_eq!(replies[0].0, SimulatedReply::Ok);
        tokio::time::sleep_until(start + ms(400)).await;
        assert_eq!(
            api.request(&[4]).await,
            SimulatedReply::TooManyRequests {
                retry_after: ms(600)
            }
        );
        // A new window opens one second after the first request.
        tokio::time::sleep_until(start + Duration::from_secs(1)).await;
        assert_eq!(api.request(&[5]).await, SimulatedReply::Ok);
        let stats = api.stats();
        assert_eq!((stats.requests, stats.rejected_429), (5, 2));
        assert_eq!(stats.items_applied, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_poison_item_fails_its_whole_request_after_its_cost() {
        let api = SimulatedApi::new(SimulatedApiConfig {
            poison_every: Some(10),
            ..config()
        });
        let replies = send_all(&api, &[&[9, 10, 11], &[11, 12]]).await;
        assert_eq!(replies[0], (SimulatedReply::BadRequest, ms(130)));
        assert_eq!(replies[1], (SimulatedReply::Ok, ms(120)));
        let stats = api.stats();
        assert_eq!((stats.rejected_400, stats.items_applied), (1, 2));
        // Zero means no poison (not "every key").
        let api = SimulatedApi::new(SimulatedApiConfig {
            poison_every: Some(0),
            ..config()
        });
        assert_eq!(api.request(&[0, 10]).await, SimulatedReply::Ok);
    }

    #[tokio::test(start_paused = true)]
    async fn the_handler_maps_replies_as_an_http_connector_would() {
        let api = SimulatedApi::new(SimulatedApiConfig {
            rate_limit: 1,
            poison_every: Some(3),
            ..config()
        });
        let handler = SimulatedApiHandler(api);
        let batch = |keys: &[u64]| Batch::new(keys.iter().map(|&k| Item::new(k, k, k)).collect());
        assert_eq!(
            handler.call(&batch(&[1, 2])).await,
            BatchOutcome::success(2)
        );
        assert!(matches!(
            handler.call(&batch(&[1])).await,
            BatchOutcome::Throttled { after: Some(after), .. } if after == ms(880)
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(matches!(
            handler.call(&batch(&[1, 3])).await,
            BatchOutcome::Split { .. }
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(matches!(
            handler.call(&batch(&[1, 2, 4, 5, 7, 8])).await,
            BatchOutcome::TooLarge { .. }
        ));
    }

    #[test]
    fn the_ceiling_is_the_tighter_of_the_slot_and_rate_bounds() {
        let slot_bound = SimulatedApiConfig {
            slots: 8,
            base: ms(200),
            per_item: ms(5),
            size_limit: 100,
            server_timeout: Duration::from_secs(30),
            rate_limit: 50,
            poison_every: None,
        };
        // 8 × 100 / 0.7 s; the rate bound would be 5,000.
        assert!((slot_bound.ceiling() - 8.0 * 100.0 / 0.7).abs() < 1e-9);
        let rate_bound = SimulatedApiConfig {
            rate_limit: 5,
            ..slot_bound
        };
        assert!((rate_bound.ceiling() - 500.0).abs() < 1e-9);
    }
}
