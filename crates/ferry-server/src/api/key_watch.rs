//! [`KeyWatch`]: whether API keys became required while the service runs. A service that
//! started without keys asks the store again at most every [`RECHECK`] whether one exists;
//! once one does, keys stay required for good, even if every key is revoked later (the
//! service never opens up again without a restart).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_store::Store;

use super::clock::ApiClock;
use super::problem::Problem;

/// How often a service running without keys asks the store whether one was created.
pub const RECHECK: Duration = Duration::from_secs(2);

/// Whether a key has appeared in the store since the service started without one.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyWatch {
    seen: Arc<AtomicBool>,
    /// When the store was last asked, on the API's clock.
    checked: Arc<Mutex<Option<Duration>>>,
}

impl KeyWatch {
    /// `true` once the store holds a live key (asked at most every [`RECHECK`] by `clock`).
    pub(crate) async fn required(
        &self,
        store: &dyn Store,
        clock: &ApiClock,
    ) -> Result<bool, Problem> {
        if self.seen.load(Ordering::Acquire) {
            return Ok(true);
        }
        let now = clock.elapsed();
        {
            let Ok(mut checked) = self.checked.lock() else {
                return Ok(false);
            };
            if checked.is_some_and(|at| now.saturating_sub(at) < RECHECK) {
                return Ok(false);
            }
            *checked = Some(now);
        }
        let live = store
            .list_keys(None)
            .await?
            .iter()
            .any(|k| k.revoked_at.is_none());
        if live {
            tracing::info!("an API key exists now: every route but health requires one");
            self.seen.store(true, Ordering::Release);
        }
        Ok(live)
    }
}
