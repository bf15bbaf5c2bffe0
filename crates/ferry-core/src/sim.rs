//! A simulated remote API, for examples, demos, benchmarks and tests (it works on tokio's
//! paused clock as well as in real time).
//!
//! * `slots` parallel processing slots, served first come first served; a request waits
//!   for a free slot;
//! * a request of `n` items costs `base + per_item × n` in its slot;
//! * a request of more than `size_limit` items times out: it holds its slot for
//!   `server_timeout` and then fails (the slot stays busy even if the client gave up, as on
//!   a real server);
//! * at most `rate_limit` requests are admitted per fixed one-second window; others are
//!   answered at once with 429 and `Retry-After` = the time left in the window.
//!
//! Its theoretical ceiling is `min(slots × L / (base + per_item × L), rate_limit × L)` items/s
//! with `L = size_limit`: every slot always busy with the largest request that fits, or every
//! admitted request carrying the largest batch that fits.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{Batch, BatchOutcome, BoxFuture, Handler};
use tokio::sync::{oneshot, Semaphore};
use tokio::time::Instant;

/// The simulated API's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimConfig {
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

impl SimConfig {
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
pub enum Reply {
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
pub struct Stats {
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
pub struct SimApi {
    cfg: SimConfig,
    slots: Arc<Semaphore>,
    window: Arc<Mutex<Window>>,
    stats: Arc<Mutex<Stats>>,
}

impl SimApi {
    /// A server with `cfg`'s settings.
    pub fn new(cfg: SimConfig) -> Self {
        SimApi {
            cfg,
            slots: Arc::new(Semaphore::new(cfg.slots)),
            window: Arc::new(Mutex::new(Window::default())),
            stats: Arc::new(Mutex::new(Stats::default())),
        }
    }

    /// The settings.
    pub fn config(&self) -> SimConfig {
        self.cfg
    }

    /// A copy of the counters.
    pub fn stats(&self) -> Stats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sends a request carrying the item keys `keys`; the server keeps working on it even if
    /// the caller drops the returned future.
    pub async fn request(&self, keys: &[u64]) -> Reply {
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
                return Reply::TooManyRequests {
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
                let _ = tx.send(Reply::GatewayTimeout);
            } else {
                tokio::time::sleep(cfg.base + cfg.per_item * n as u32).await;
                let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
                if poisoned {
                    s.rejected_400 += 1;
                    let _ = tx.send(Reply::BadRequest);
                } else {
                    s.items_applied += n as u64;
                    let _ = tx.send(Reply::Ok);
                }
            }
        });
        rx.await.unwrap_or(Reply::GatewayTimeout)
    }
}

/// A Ferry handler for the simulator: maps its replies onto the engine's outcomes the way
/// an HTTP connector would (429 -> retry after, 504 -> too large, 400 naming no item -> split).
#[derive(Debug, Clone)]
pub struct SimHandler(pub SimApi);

impl Handler<u64, ()> for SimHandler {
    fn call<'a>(&'a self, batch: &'a Batch<u64>) -> BoxFuture<'a, BatchOutcome<()>> {
        Box::pin(async move {
            let keys: Vec<u64> = batch.payloads().copied().collect();
            match self.0.request(&keys).await {
                Reply::Ok => BatchOutcome::success(batch.len()),
                Reply::TooManyRequests { retry_after } => {
                    BatchOutcome::retry(Some(retry_after), "429 Too Many Requests")
                }
                Reply::GatewayTimeout => BatchOutcome::too_large("504 Gateway Timeout"),
                Reply::BadRequest => {
                    BatchOutcome::split("400 Bad Request: a column value was rejected")
                }
            }
        })
    }
}
