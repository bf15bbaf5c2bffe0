//! How a store is configured: queue limits, per-tenant quotas, the clock, the connection
//! pool size. One builder, one verb per setting, each documenting its default.

use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::types::{db_index, Priority};

/// Options shared by both backends.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub(crate) queue_limits: [NonZeroUsize; 3],
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) max_connections: NonZeroU32,
    pub(crate) tenant_max_queued: Option<NonZeroU64>,
    pub(crate) tenant_max_in_flight: Option<NonZeroU64>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions::new()
    }
}

impl StoreOptions {
    /// The defaults: queue limits 100 / 500 / 1000, no tenant quotas, the system clock, 10
    /// connections.
    pub fn new() -> Self {
        StoreOptions {
            queue_limits: [nz(100), nz(500), nz(1000)],
            clock: Arc::new(SystemClock),
            max_connections: NonZeroU32::MIN.saturating_add(9),
            tenant_max_queued: None,
            tenant_max_in_flight: None,
        }
    }

    /// The most unfinished (pending or processing) jobs a priority may hold; a job beyond
    /// it is refused with [`Error::QueueFull`](crate::Error::QueueFull). Default: high 100,
    /// medium 500, low 1000 (the seed's limits).
    pub fn queue_limit(mut self, priority: Priority, limit: NonZeroUsize) -> Self {
        self.queue_limits[db_index(priority)] = limit;
        self
    }

    /// The most queued items (waiting, not yet claimed) one tenant may have: a job that
    /// would take the tenant past it is refused with
    /// [`Error::TenantQuota`](crate::Error::TenantQuota) (a job larger than the quota on its
    /// own, with [`Error::InvalidJob`](crate::Error::InvalidJob)). Default: no limit.
    pub fn tenant_max_queued(mut self, items: NonZeroU64) -> Self {
        self.tenant_max_queued = Some(items);
        self
    }

    /// The most items one tenant may have in flight (leased to workers) at once: claims
    /// hand the tenant no more while it is there, and serve other tenants. Concurrent
    /// claims on PostgreSQL may overshoot it by the items they take at the same moment.
    /// With it set, recording results or dead letters also wakes waiting workers
    /// ([`Store::wait_for_work`](crate::Store::wait_for_work)), since a finished item may
    /// let its tenant have more. Default: no limit.
    pub fn tenant_max_in_flight(mut self, items: NonZeroU64) -> Self {
        self.tenant_max_in_flight = Some(items);
        self
    }

    /// Where the time comes from. Default: [`SystemClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Connections in the pool (SQLite: reader connections; it always has one writer).
    /// Default: 10.
    pub fn max_connections(mut self, n: NonZeroU32) -> Self {
        self.max_connections = n;
        self
    }

    pub(crate) fn limit(&self, priority: Priority) -> u64 {
        self.queue_limits[db_index(priority)].get() as u64
    }
}

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

/// Connections idle at least this long are checked (pinged) before a pool hands them out;
/// busier ones are not.
pub(crate) const PING_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// The pool settings both backends use: a connection is pinged before it is handed out
/// only when it sat idle for [`PING_IDLE`] (sqlx's default pings on every acquire: one more
/// round trip per statement, to a server or, on SQLite, to the connection's own thread); a
/// failed ping drops the connection and the pool opens another, as before.
pub(crate) fn pool_options<DB: sqlx::Database>() -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::new()
        .test_before_acquire(false)
        .before_acquire(ping_if_idle::<DB>)
}

fn ping_if_idle<DB: sqlx::Database>(
    conn: &mut DB::Connection,
    meta: sqlx::pool::PoolConnectionMetadata,
) -> ferry_core::BoxFuture<'_, Result<bool, sqlx::Error>> {
    use sqlx::Connection;
    Box::pin(async move {
        if meta.idle_for < PING_IDLE {
            return Ok(true);
        }
        Ok(conn.ping().await.is_ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seeds_limits() {
        let o = StoreOptions::new();
        assert_eq!(Priority::DESCENDING.map(|p| o.limit(p)), [100, 500, 1000]);
        assert_eq!(o.max_connections.get(), 10);
        let o = o.queue_limit(Priority::Low, NonZeroUsize::new(7).unwrap());
        assert_eq!(o.limit(Priority::Low), 7);
    }
}
