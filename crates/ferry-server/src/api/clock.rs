//! [`ApiClock`]: where the API reads the time, for the two things it times itself: the
//! re-check for a first API key (`RECHECK`) and the tenants' rate limits. Monotonic
//! (`std::time::Instant`) in a service; a manual clock in tests, which moves only when told
//! to, so a test can step past a window without sleeping.

use std::time::{Duration, Instant};

use governor::clock::{Clock, FakeRelativeClock};
use governor::nanos::Nanos;

/// The API's clock: the system's monotonic clock, or a manual one (see the module docs).
/// Clones share the same time.
#[derive(Debug, Clone)]
pub struct ApiClock(Source);

#[derive(Debug, Clone)]
enum Source {
    System(Instant),
    Manual(FakeRelativeClock),
}

impl Default for ApiClock {
    fn default() -> Self {
        ApiClock::system()
    }
}

impl ApiClock {
    /// The system's monotonic clock; the default.
    pub fn system() -> Self {
        ApiClock(Source::System(Instant::now()))
    }

    /// A clock that stands still until [`advance`](Self::advance)d: for tests.
    pub fn manual() -> Self {
        ApiClock(Source::Manual(FakeRelativeClock::default()))
    }

    /// Moves a manual clock forward by `by` (every clone with it); the system clock is not
    /// moved.
    pub fn advance(&self, by: Duration) {
        if let Source::Manual(clock) = &self.0 {
            clock.advance(by);
        }
    }

    /// The time since the clock's origin.
    pub(crate) fn elapsed(&self) -> Duration {
        Duration::from(self.now())
    }
}

impl Clock for ApiClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        match &self.0 {
            Source::System(origin) => Nanos::from(origin.elapsed()),
            Source::Manual(clock) => clock.now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let clock = ApiClock::manual();
        let twin = clock.clone();
        assert_eq!(clock.elapsed(), Duration::ZERO);
        twin.advance(Duration::from_secs(3));
        assert_eq!(clock.elapsed(), Duration::from_secs(3));
        let system = ApiClock::system();
        system.advance(Duration::from_secs(3600));
        assert!(system.elapsed() < Duration::from_secs(3600));
    }
}
