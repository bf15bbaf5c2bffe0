//! Where the store reads the time. Every timestamp (creation, leases, retries, TTLs) is
//! computed here, in the process, and written as `f64` seconds since the Unix epoch, so
//! tests can drive leases and TTLs with a [`ManualClock`] instead of sleeping.
//!
//! With PostgreSQL the workers' clocks decide lease expiry, so their skew must stay well
//! below the lease (NTP keeps it to milliseconds; leases are seconds).

use std::fmt::Debug;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + Debug {
    /// Seconds since the Unix epoch.
    fn now(&self) -> f64;
}

/// The system clock; the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    }
}

/// A clock that moves only when told to: for tests of leases, retries and TTLs.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<f64>,
}

impl ManualClock {
    /// A clock reading `start` seconds since the epoch.
    pub fn new(start: f64) -> Self {
        ManualClock {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += by.as_secs_f64();
    }
}

impl Clock for ManualClock {
    fn now(&self) -> f64 {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}
