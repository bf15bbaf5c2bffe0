//! Riding out a store that goes away and comes back (a PostgreSQL restart, a terminated
//! backend, a network blip): [`transient`] retries an operation that failed with a
//! transient error ([`ferry_store::Error::is_transient`]) with exponential backoff, 50 ms
//! doubling to 5 s, until it succeeds. The connection pool reconnects on the next attempt;
//! the `LISTEN` connection reconnects by itself. Nothing is lost meanwhile: a result that
//! could not be recorded is retried, and if the outage outlasts the lease, another worker
//! (or this one) rescues the item and the late result is refused by the lease check.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// First wait after a transient failure.
const FIRST: Duration = Duration::from_millis(50);
/// Longest wait between attempts.
const MOST: Duration = Duration::from_secs(5);

/// Runs `op` until it succeeds or fails with an error that is not transient; after
/// `stop` is cancelled, a transient failure is returned rather than retried (the shutdown
/// must not wait for a database that is gone; leases lapse and the items are rescued).
pub(crate) async fn transient<T, F, Fut>(
    what: &str,
    stop: &CancellationToken,
    mut op: F,
) -> Result<T, ferry_store::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ferry_store::Error>>,
{
    let mut wait = FIRST;
    let mut failures = 0u32;
    loop {
        match op().await {
            Ok(value) => {
                if failures > 0 {
                    tracing::info!(what, failures, "the store answers again");
                }
                return Ok(value);
            }
            Err(e) if e.is_transient() && !stop.is_cancelled() => {
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(what, error = %e, failures, retry_in = ?wait, "store unavailable; retrying");
                }
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(MOST);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Attempts of an operation at shutdown (see [`at_shutdown`]).
const SHUTDOWN_ATTEMPTS: u32 = 3;

/// Runs `op` once the worker is stopping: a transient failure is tried again twice, 50 ms
/// and 100 ms later (a pooled connection that the database terminated fails its first use
/// and is replaced on the next), then returned; the shutdown never waits longer for a
/// database that is gone.
pub(crate) async fn at_shutdown<T, F, Fut>(what: &str, mut op: F) -> Result<T, ferry_store::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ferry_store::Error>>,
{
    let mut wait = FIRST;
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if e.is_transient() && attempt < SHUTDOWN_ATTEMPTS => {
                tracing::debug!(what, error = %e, attempt, "store unavailable at shutdown; trying again");
                tokio::time::sleep(wait).await;
                wait *= 2;
                attempt += 1;
            }
            done => return done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn lost() -> ferry_store::Error {
        ferry_store::Error::Sql {
            context: "claiming items".into(),
            source: sqlx_io(),
        }
    }

    fn sqlx_io() -> sqlx::Error {
        sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_with_backoff() {
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let stop = CancellationToken::new();
        let got = transient("claiming", &stop, || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 4 {
                Err(lost())
            } else {
                Ok(7)
            }
        })
        .await
        .unwrap();
        assert_eq!(got, 7);
        // 50 + 100 + 200 + 400 ms of backoff.
        assert_eq!(started.elapsed(), Duration::from_millis(750));
    }

    #[tokio::test(start_paused = true)]
    async fn other_errors_and_shutdown_end_the_retries() {
        let stop = CancellationToken::new();
        let err = transient("x", &stop, || async {
            Err::<(), _>(ferry_store::Error::Corrupt {
                message: "bad".into(),
            })
        })
        .await
        .unwrap_err();
        assert!(!err.is_transient());
        stop.cancel();
        let err = transient("x", &stop, || async { Err::<(), _>(lost()) })
            .await
            .unwrap_err();
        assert!(err.is_transient());
    }

    #[tokio::test(start_paused = true)]
    async fn at_shutdown_a_dropped_connection_is_tried_again_then_given_up() {
        // The first use of a terminated connection fails; the next attempt succeeds.
        let calls = AtomicU32::new(0);
        let got = at_shutdown("releasing", || async {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(lost())
            } else {
                Ok(3)
            }
        })
        .await
        .unwrap();
        assert_eq!(got, 3);
        // A database that stays away: three attempts, 150 ms, then the error.
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let err = at_shutdown("releasing", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(lost())
        })
        .await
        .unwrap_err();
        assert!(err.is_transient());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(started.elapsed(), Duration::from_millis(150));
    }
}
