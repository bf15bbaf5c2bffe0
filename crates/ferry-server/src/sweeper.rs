//! The store's periodic chores: the result TTL (a task that deletes finished jobs, with
//! their items, results and dead letters, once they are older than the TTL, so the store
//! does not grow without bound) and the job deadline (`timeout_seconds`) check.

use std::sync::Arc;
use std::time::Duration;

use ferry_store::Store;
use tokio_util::sync::CancellationToken;

/// Every `ttl / 10` (at least every second, at most every 10 minutes) deletes the jobs that
/// finished more than `ttl` ago, until `shutdown`. Failures are logged and retried on the
/// next round: a store that is briefly unreachable must not stop the service. Any number of
/// processes may sweep the same store.
pub async fn sweep_results(store: Arc<dyn Store>, ttl: Duration, shutdown: CancellationToken) {
    let every = (ttl / 10).clamp(Duration::from_secs(1), Duration::from_secs(600));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match store.sweep_results(ttl).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(jobs = n, ttl = ?ttl, "deleted finished jobs past the result TTL")
            }
            Err(e) => tracing::warn!(error = %e, "result TTL sweep failed"),
        }
    }
}

/// Every `every` until `shutdown`, fails the jobs whose `timeout_seconds` ran out
/// ([`Store::expire_overdue`]): `ferry serve` runs it every 250 ms, so a job with
/// `timeout_seconds: 1` ends failed between 1 and 1.25 s after it was submitted. Failures are
/// logged and retried on the next round; any number of processes may run it.
pub async fn expire_jobs(store: Arc<dyn Store>, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = store.expire_overdue().await {
            tracing::warn!(error = %e, "the deadline check failed");
        }
    }
}
