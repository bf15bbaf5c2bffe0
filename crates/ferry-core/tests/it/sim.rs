//! A simulated remote API for tests on tokio's paused clock.
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

use ferry_core::{Batch, BatchOutcome, BoxFuture, Handler};
use tokio::sync::{oneshot, Semaphore};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub(crate) struct SimConfig {
    pub(crate) slots: usize,
    pub(crate) base: Duration,
    pub(crate) per_item: Duration,
    pub(crate) size_limit: usize,
    pub(crate) server_timeout: Duration,
    pub(crate) rate_limit: u32,
}

impl SimConfig {
    /// The best any client can do, in items per second.
    pub(crate) fn ceiling(&self) -> f64 {
        let l = self.size_limit as f64;
        let per_call = self.base.as_secs_f64() + self.per_item.as_secs_f64() * l;
        let slot_bound = self.slots as f64 * l / per_call;
        let rate_bound = f64::from(self.rate_limit) * l;
        slot_bound.min(rate_bound)
    }
}

/// What the simulated server answers.
#[derive(Debug)]
pub(crate) enum Reply {
    Ok,
    TooManyRequests { retry_after: Duration },
    GatewayTimeout,
}

#[derive(Debug, Default)]
struct Window {
    start: Option<Instant>,
    admitted: u32,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) requests: u64,
    pub(crate) rejected_429: u64,
    pub(crate) timeouts: u64,
    pub(crate) items_applied: u64,
}

#[derive(Clone)]
pub(crate) struct SimApi {
    cfg: SimConfig,
    slots: Arc<Semaphore>,
    window: Arc<Mutex<Window>>,
    pub(crate) stats: Arc<Mutex<Stats>>,
}

impl SimApi {
    pub(crate) fn new(cfg: SimConfig) -> Self {
        SimApi {
            cfg,
            slots: Arc::new(Semaphore::new(cfg.slots)),
            window: Arc::new(Mutex::new(Window::default())),
            stats: Arc::new(Mutex::new(Stats::default())),
        }
    }

    /// Sends a request of `n` items; the server keeps working on it even if the caller drops
    /// the returned future.
    pub(crate) async fn request(&self, n: usize) -> Reply {
        let now = Instant::now();
        {
            let mut w = self.window.lock().unwrap();
            let start = *w.start.get_or_insert(now);
            let elapsed = now.duration_since(start);
            if elapsed >= Duration::from_secs(1) {
                // Windows are aligned to the first request.
                let k = elapsed.as_nanos() / 1_000_000_000;
                w.start = Some(start + Duration::from_secs(k as u64));
                w.admitted = 0;
            }
            let mut s = self.stats.lock().unwrap();
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
                stats.lock().unwrap().timeouts += 1;
                let _ = tx.send(Reply::GatewayTimeout);
            } else {
                tokio::time::sleep(cfg.base + cfg.per_item * n as u32).await;
                stats.lock().unwrap().items_applied += n as u64;
                let _ = tx.send(Reply::Ok);
            }
        });
        rx.await.unwrap_or(Reply::GatewayTimeout)
    }
}

/// A Ferry handler for the simulator: maps its replies onto the engine's outcomes the way
/// an HTTP connector would (429 -> retry after, 504 -> split).
pub(crate) struct SimHandler(pub(crate) SimApi);

impl Handler<u64, ()> for SimHandler {
    fn call<'a>(&'a self, batch: &'a Batch<u64>) -> BoxFuture<'a, BatchOutcome<()>> {
        Box::pin(async move {
            match self.0.request(batch.len()).await {
                Reply::Ok => BatchOutcome::success(batch.len()),
                Reply::TooManyRequests { retry_after } => {
                    BatchOutcome::retry(Some(retry_after), "429 Too Many Requests")
                }
                Reply::GatewayTimeout => BatchOutcome::split("504 Gateway Timeout"),
            }
        })
    }
}
