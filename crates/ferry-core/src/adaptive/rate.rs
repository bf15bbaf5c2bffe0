//! Learning a target's sustainable request rate from its rate-limit answers.
//!
//! Many APIs limit requests per unit of time rather than requests in flight: a token bucket
//! that answers `429` with the time to its next token, a budget of points per window that
//! answers "exhausted, reset in N seconds" inside a `200` body. Concurrency control cannot
//! see such a limit (latency stays low while the requests are refused), and honouring each
//! `Retry-After` alone is not enough: every call that waited at the shared gate would be
//! released at the same instant, one would take the token and the others would be refused
//! again. So the engine learns a *rate* and paces calls at it.
//!
//! The algorithm, AIMD on a rate (as TCP's congestion avoidance is AIMD on a window):
//!
//! * **Unlimited at first.** Until the target says "too fast" for the first time, the
//!   controller sets no rate: a target without a rate limit is never slowed down. A
//!   refusal before any call got through (a bucket another client emptied) sets none
//!   either: with nothing to measure, only its `Retry-After` holds the calls.
//! * **Start from what got through.** On a rate-limit signal the controller measures the
//!   rate at which the target *accepted* calls over the last `window` (default 2 s, and at
//!   least `probe_calls` calls' worth of time at the current rate), not counting the part
//!   of a `Retry-After` pause beyond one interval of the rate in force (a fixed window's
//!   `Retry-After: 1`, whole seconds, holds every call up to a second: counted, it would
//!   halve the estimate of a window that takes ten calls a second; up to one interval, a
//!   pause is the target's own pace, a token bucket's next token). A client
//!   that is being refused gets exactly the target's rate through, so this is the best
//!   estimate there is; but the first refusal often comes while the client is still ramping
//!   up (its concurrency in slow start, a burst over a small bucket), when what got through
//!   is only what it sent, so the first rate is 1.5 × the estimate, raised to
//!   `1 / Retry-After` when the refusal's `Retry-After` is that short (a token bucket's is
//!   the time to its next token; at most 4 × the estimate), and the next refusal
//!   snaps it down to the estimate if the target's rate was that after all. Each later counted signal multiplies the rate
//!   by `decrease_ratio` (default 0.95: a refusal costs the target little, while an
//!   estimate taken while the client was ramping up or held back undershoots), or, when the rate is far
//!   above the estimate, sets it to the estimate: under 80 % of the first rate gets through
//!   (a first estimate taken in a burst), under half of a later one (the target's limit
//!   came down; an estimate read while the calls bunch up at a fixed window's start reads
//!   lower than the window's rate, so a later rate only snaps when far off). A refusal that comes before any probe since the
//!   last cut also snaps to the estimate (when below the rate): the cut was not enough,
//!   and with no probe between, the look-back saw calls paced at the target, not a long
//!   pause, so creeping down 5 % per refusal would only cost the target more refusals. Estimates span at least 250 ms, so two calls that got through
//!   a millisecond before the first refusal do not read as two thousand per second; an
//!   early estimate errs high rather than low, since a refusal is cheap and quickly
//!   corrected while a rate set too low only recovers probe by probe.
//! * **One decrease per round trip.** Only a signal from a call *sent after the last change*
//!   counts: calls sent at the old rate are still coming back refused and say nothing about
//!   the new one (TCP's "once per RTT").
//! * **Climb back halfway.** Below the rate that was in force at the last refusal, each
//!   probe (below) goes halfway back to it, as BIC's binary search does: a cut (5 %, or
//!   a snap to an estimate) may undershoot the target's rate, and
//!   the rate that was refused bounds it from above, so a few probes find it again. Back
//!   there, the first probe beyond it waits four probe intervals (CUBIC's plateau around
//!   its last maximum): a refusal at that rate is likely, and a fixed window's refusal
//!   pauses every call until the window ends.
//! * **Probe upward slowly.** Beyond that rate, after `probe_interval` (default 1 s) *and* at least
//!   `probe_calls` calls' worth of time at the current rate (default 10) without a counted
//!   signal, the rate grows by `probe_ratio` (default 2 %) of itself, doubling with each
//!   consecutive clean probe (2 %, 4 %, 8 % ..., at most 50 %, as BIC and CUBIC grow fast
//!   far from the last loss), so a target whose limit was raised, or whose rate was
//!   underestimated, is found again in a few probes; a slow target (one call every two
//!   seconds) is probed as gently, per call, as a fast one.
//!   The rate only grows while it is used (at least 80 % of it gets through over the
//!   look-back window): a rate the client does not reach, held back by its concurrency or
//!   its source, says nothing about the target, and growing it would leave the next burst
//!   unpaced (TCP's congestion-window validation).
//! * **Never below `min`** (default 0.05 calls/s): a refusal costs time, never the item.
//!
//! The controller only decides the rate; pacing at it is `governor`'s GCRA with a burst of
//! one (see [`Throttle`](crate::Throttle)), so the calls released after a pause leave one
//! by one, `1 / rate` apart.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// How far above the accepted rate the first rate is set (see `on_limited`).
const FIRST_ESTIMATE_HEADROOM: f64 = 1.5;

/// How far above the accepted rate a `Retry-After` may set the first rate (see
/// [`first_rate`]).
const RETRY_AFTER_HINT_CAP: f64 = 4.0;

/// Below these shares of the rate, what got through replaces the rate on a refusal: for
/// the first rate, then for any later one (see `on_limited`).
const SNAP_BELOW: [f64; 2] = [0.8, 0.5];

/// How many probe intervals the rate holds at the rate last refused before probing beyond
/// it.
const PLATEAU: f64 = 4.0;

/// The share of the rate that must get through for the rate to grow (the app-limited
/// guard in `on_accepted`).
const USED_SHARE: f64 = 0.8;

/// The shortest span an estimate of the accepted rate is taken over.
const MIN_SPAN: Duration = Duration::from_millis(250);

/// Settings of the [`RateController`]; see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct RateConfig {
    /// Lowest rate, calls per second (default 0.05).
    pub min: f64,
    /// How far back accepted calls are counted to estimate the target's rate (default 2 s).
    pub window: Duration,
    /// Multiplier on each counted signal after the first (default 0.95).
    pub decrease_ratio: f64,
    /// Time without a counted signal after which the rate grows (default 1 s).
    pub probe_interval: Duration,
    /// Calls' worth of time at the current rate that must also pass between probes
    /// (default 10); also the least number of calls' worth of time the estimate looks back.
    pub probe_calls: f64,
    /// Growth per probe, as a share of the rate (default 0.02).
    pub probe_ratio: f64,
}

impl Default for RateConfig {
    fn default() -> Self {
        RateConfig {
            min: 0.05,
            window: Duration::from_secs(2),
            decrease_ratio: 0.95,
            probe_interval: Duration::from_secs(1),
            probe_calls: 10.0,
            probe_ratio: 0.02,
        }
    }
}

/// The learned request rate toward one target; see the module docs.
#[derive(Debug, Clone)]
pub struct RateController {
    config: RateConfig,
    rate: Option<f64>,
    /// When the rate last changed; signals from calls sent before it do not count.
    changed_at: Option<Instant>,
    first_accept: Option<Instant>,
    accepted: VecDeque<Instant>,
    /// The `Retry-After` pauses within the look-back, merged, oldest first: their part
    /// beyond one interval of the rate does not count in the accepted rate.
    paused: VecDeque<(Instant, Instant)>,
    /// Clean probes since the last counted signal.
    streak: u32,
    /// The rate in force at the last counted refusal.
    refused_at: Option<f64>,
    /// Whether the rate came down since the first refusal set it.
    decreased: bool,
    /// Whether the last change was a cut (no probe since).
    cut_last: bool,
    /// What got through before the first refusal (the first rate without its headroom):
    /// the first snap down goes no lower.
    first_estimate: Option<f64>,
}

impl RateController {
    /// A controller with no rate yet.
    pub fn new(config: RateConfig) -> Self {
        RateController {
            config,
            rate: None,
            changed_at: None,
            first_accept: None,
            accepted: VecDeque::new(),
            paused: VecDeque::new(),
            streak: 0,
            refused_at: None,
            decreased: false,
            cut_last: false,
            first_estimate: None,
        }
    }

    /// The current rate in calls per second, `None` while no limit has been seen.
    pub fn rate(&self) -> Option<f64> {
        self.rate
    }

    /// Records a call the target accepted (whatever its items' outcomes), and probes upward
    /// when the rate has held for a `probe_interval`. Returns whether the rate changed.
    pub fn on_accepted(&mut self, now: Instant) -> bool {
        self.first_accept.get_or_insert(now);
        self.accepted.push_back(now);
        self.forget_before(now);
        let (Some(rate), Some(changed)) = (self.rate, self.changed_at) else {
            return false;
        };
        let mut hold = self
            .config
            .probe_interval
            .as_secs_f64()
            .max(self.config.probe_calls / rate);
        // Back at the rate that was last refused, the first probe beyond it waits longer
        // (CUBIC's plateau around its last maximum): a refusal there is likely, and costs
        // every call the server's whole `Retry-After`.
        let at_refused = self
            .refused_at
            .is_some_and(|max| rate >= max * (1.0 - self.config.probe_ratio));
        if at_refused && self.streak == 0 {
            hold *= PLATEAU;
        }
        if now.saturating_duration_since(changed).as_secs_f64() < hold {
            return false;
        }
        // The app-limited guard (as TCP's congestion-window validation, RFC 7661): a rate
        // the client does not use says nothing about whether more would be refused, so it
        // only grows while calls get through at close to it. Otherwise a client held back by
        // its concurrency would raise an unused rate without bound, and the next burst
        // would meet the target's limit unpaced.
        if self
            .accepted_rate(now)
            .is_some_and(|got| got < USED_SHARE * rate)
        {
            return false;
        }
        // Below the rate that was last refused, halfway back to it per probe (BIC's binary
        // search): the cut undershot, and the rate that was refused is known. At or above
        // it, consecutive clean probes grow faster (2 %, 4 %, 8 % ... at most 50 %), so a
        // limit that was raised is found again in a few probes.
        let next = match self.refused_at {
            Some(max) if rate < max * (1.0 - self.config.probe_ratio) => rate + (max - rate) / 2.0,
            _ => {
                let growth =
                    (self.config.probe_ratio * f64::from(1u32 << self.streak.min(8))).min(0.5);
                self.streak += 1;
                rate * (1.0 + growth)
            }
        };
        self.cut_last = false;
        self.set(next, now);
        true
    }

    /// Records a rate-limit signal (429, a budget error) for a call sent at `sent_at`, with
    /// the target's `Retry-After` when it gave one. Returns whether the rate changed.
    pub fn on_limited(
        &mut self,
        sent_at: Instant,
        now: Instant,
        retry_after: Option<Duration>,
    ) -> bool {
        if let Some(after) = retry_after.filter(|a| !a.is_zero()) {
            self.note_pause(now, now + after);
        }
        if self.changed_at.is_some_and(|c| sent_at < c) {
            return false;
        }
        self.forget_before(now);
        let estimate = self.accepted_rate(now);
        let next = match (self.rate, estimate) {
            // Far above what gets through: snap down. Under 80 % for the first rate (an
            // estimate taken in a burst); later only under half, since an estimate that
            // spans a `Retry-After` pause (a fixed window's, up to the window) undershoots,
            // and snapping to it would cost seconds at half speed after every refusal.
            // The first snap goes no lower than the first estimate: what got through
            // before the first refusal did get through, and an estimate read just after it
            // spans the client's own ramp-up and `Retry-After` pause (3 calls in 0.6 s
            // against an 8/s bucket read as 5/s).
            (Some(rate), Some(est)) if est < SNAP_BELOW[usize::from(self.decreased)] * rate => {
                if self.decreased {
                    est
                } else {
                    est.max(self.first_estimate.unwrap_or(est))
                }
            }
            // Refused again before any probe: the last cut was not enough, and calls paced
            // at it met the limit within one look-back with no probe between, so what got
            // through is measured at the target's pace, not across a long pause: take it.
            // (A fixed window's refusals come a window apart, with probes between.)
            (Some(rate), Some(est)) if self.cut_last && est < rate => est,
            (Some(rate), _) => rate * self.config.decrease_ratio,
            // The first refusal may come while the client was still ramping up (slow
            // start, a burst over a small bucket), when what got through is what was sent:
            // start above it. If the target's rate is the estimate after all, the next
            // refusal snaps down to it (the arm above).
            (None, Some(est)) => {
                self.first_estimate = Some(est);
                first_rate(est, retry_after)
            }
            // Refused before anything got through (a bucket another client had emptied, a
            // window already spent): no evidence of the target's rate yet. Only the
            // `Retry-After` gate holds the calls; the first refusal after some calls got
            // through sets the rate from them. (A guess here, say one call a second, is
            // climbed back from at a probe per ten calls' worth of time: a minute and more
            // at a crawl against a target that takes ten a second.)
            (None, None) => return false,
        };
        self.decreased = self.rate.is_some();
        self.cut_last = true;
        self.streak = 0;
        // The rate that was refused: the probes climb back halfway to it at a time. A first
        // refusal's rate is what got through (the client set no rate yet).
        self.refused_at = Some(self.rate.or(estimate).unwrap_or(next).max(next));
        self.set(next, now);
        true
    }

    fn set(&mut self, rate: f64, now: Instant) {
        self.rate = Some(rate.max(self.config.min));
        self.changed_at = Some(now);
    }

    /// How far back accepted calls are counted: `window`, longer for a slow rate.
    fn look_back(&self) -> Duration {
        let calls = self.rate.map_or(0.0, |r| self.config.probe_calls / r);
        self.config
            .window
            .max(Duration::from_secs_f64(calls.min(3600.0)))
    }

    /// Records that the gate is closed from `from` to `until` (merged with an overlapping
    /// pause).
    fn note_pause(&mut self, from: Instant, until: Instant) {
        match self.paused.back_mut() {
            Some((_, end)) if from <= *end => *end = (*end).max(until),
            _ => self.paused.push_back((from, until)),
        }
    }

    fn forget_before(&mut self, now: Instant) {
        let look_back = self.look_back();
        while self
            .accepted
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > look_back)
        {
            self.accepted.pop_front();
        }
        while self
            .paused
            .front()
            .is_some_and(|(_, end)| now.saturating_duration_since(*end) > look_back)
        {
            self.paused.pop_front();
        }
    }

    /// Calls accepted per second over the window (or since the first one, if sooner), not
    /// counting the part of each `Retry-After` pause beyond one interval of the rate in
    /// force. Up to one interval, a pause is the target's own pace (a token bucket's
    /// `Retry-After` is the time to its next token: it would have refused a call sent
    /// sooner); beyond it, it is rounding, a fixed window's `Retry-After: 1` in whole
    /// seconds that holds every call up to a second while the next window is already
    /// open, and counting that second would read a target that takes ten calls a second
    /// as taking five.
    fn accepted_rate(&self, now: Instant) -> Option<f64> {
        let since = now.saturating_duration_since(self.first_accept?);
        let span = since.min(self.look_back());
        let from = now - span;
        let pace = self.rate.map_or(Duration::MAX, |r| {
            Duration::from_secs_f64((1.0 / r).min(3600.0))
        });
        let paused: Duration = self
            .paused
            .iter()
            .map(|&(start, end)| {
                let beyond = start.checked_add(pace).unwrap_or(end);
                end.min(now).saturating_duration_since(beyond.max(from))
            })
            .sum();
        let span = span.saturating_sub(paused).max(MIN_SPAN).as_secs_f64();
        (span > 0.0 && !self.accepted.is_empty()).then(|| self.accepted.len() as f64 / span)
    }
}

/// The first rate, from what got through before the first refusal (`estimate`) and the
/// refusal's `Retry-After`.
///
/// `estimate × FIRST_ESTIMATE_HEADROOM`, raised to `1 / Retry-After` (at most
/// `RETRY_AFTER_HINT_CAP × estimate`) when that is higher. A token bucket's `Retry-After` is
/// the time to its next token, at most one token's interval, so its reciprocal is at least
/// the bucket's rate: when a client that started with a burst (several calls at once over
/// a bucket of two) reads a low estimate, the hint starts it near the bucket's rate instead
/// of climbing there probe by probe. A hint that overshoots (the next token was almost due)
/// is corrected by the next refusal, which snaps the rate down to what gets through; a long
/// `Retry-After` (a window's reset, integer seconds) is below the estimate and changes
/// nothing.
fn first_rate(estimate: f64, retry_after: Option<Duration>) -> f64 {
    let from_estimate = estimate * FIRST_ESTIMATE_HEADROOM;
    let hint = retry_after
        .map(|d| d.as_secs_f64())
        .filter(|&secs| secs > 0.0)
        .map_or(0.0, |secs| {
            (1.0 / secs).min(estimate * RETRY_AFTER_HINT_CAP)
        });
    from_estimate.max(hint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TokenBucket as Bucket;

    /// An eager client (always a call ready) paced by the controller against a bucket, for
    /// `secs` seconds; the shared gate honours each Retry-After. Returns (accepted, refused).
    async fn drive(target: f64, burst: f64, secs: u64) -> (u64, u64) {
        let mut bucket = Bucket::new(target, burst);
        let mut ctl = RateController::new(RateConfig::default());
        let start = Instant::now();
        let mut next_send = start;
        let (mut ok, mut refused) = (0, 0);
        while Instant::now() < start + Duration::from_secs(secs) {
            tokio::time::sleep_until(next_send).await;
            let now = Instant::now();
            let pace = ctl.rate().map_or(Duration::from_millis(1), |r| {
                Duration::from_secs_f64(1.0 / r)
            });
            match bucket.take(now) {
                Ok(()) => {
                    ok += 1;
                    ctl.on_accepted(now);
                    next_send = now + pace;
                }
                Err(after) => {
                    refused += 1;
                    ctl.on_limited(now, now, Some(after));
                    let pace = Duration::from_secs_f64(1.0 / ctl.rate().unwrap_or(1.0));
                    next_send = now + pace.max(after);
                }
            }
        }
        (ok, refused)
    }

    /// Refused before anything got through: no rate is guessed (a guess of one call a
    /// second took 80 s to climb back to a bucket's 8 a second); the first refusal after
    /// calls got through sets it from them.
    #[tokio::test(start_paused = true)]
    async fn a_refusal_before_anything_got_through_sets_no_rate() {
        let mut ctl = RateController::new(RateConfig::default());
        let now = Instant::now();
        assert!(!ctl.on_limited(now, now, None));
        assert_eq!(ctl.rate(), None);
        for _ in 0..16 {
            tokio::time::advance(Duration::from_millis(125)).await;
            ctl.on_accepted(Instant::now());
        }
        let now = Instant::now();
        assert!(ctl.on_limited(now, now, None));
        // 16 calls in 2 s: 8 a second, and the first rate is 1.5 × that.
        let rate = ctl.rate().unwrap_or_default();
        assert!((11.0..=13.0).contains(&rate), "rate {rate}");
    }

    /// A first estimate read low (two calls got through in the first second) starts from
    /// the refusal's `Retry-After` when that says more: `1 / Retry-After`, at most four
    /// times the estimate; a long `Retry-After` (a window's reset) changes nothing. The
    /// next refusal snaps an overshoot down to what gets through, no lower than the first
    /// estimate.
    #[tokio::test(start_paused = true)]
    async fn the_first_rate_takes_a_short_retry_after_as_a_hint() {
        let first = |after: Option<Duration>| {
            let mut ctl = RateController::new(RateConfig::default());
            let start = Instant::now();
            ctl.on_accepted(start);
            ctl.on_accepted(start + Duration::from_millis(100));
            let now = start + Duration::from_secs(1);
            assert!(ctl.on_limited(now, now, after));
            (ctl, now)
        };
        let rate = |ctl: &RateController| ctl.rate().unwrap_or_default();
        // Two a second got through: 3 from the estimate alone, 8 from a 125 ms Retry-After.
        assert!((rate(&first(None).0) - 3.0).abs() < 0.01);
        assert!((rate(&first(Some(Duration::from_millis(125))).0) - 8.0).abs() < 0.01);
        assert!((rate(&first(Some(Duration::from_secs(30))).0) - 3.0).abs() < 0.01);
        assert!((rate(&first(Some(Duration::ZERO)).0) - 3.0).abs() < 0.01);
        // A next token almost due (1 ms): capped at four times the estimate.
        let (mut ctl, now) = first(Some(Duration::from_millis(1)));
        assert!((rate(&ctl) - 8.0).abs() < 0.01);
        // Paced at 8 a second, 5 a second get through: snapped down to 5.
        for i in 1..=10 {
            ctl.on_accepted(now + Duration::from_millis(200 * i));
        }
        let later = now + Duration::from_secs(2);
        assert!(ctl.on_limited(later, later, None));
        assert!((rate(&ctl) - 5.0).abs() < 0.3, "rate {}", rate(&ctl));
    }

    /// A fixed window of ten calls a second that answers `Retry-After: 1` (whole seconds):
    /// each refusal holds the calls for a second, and that second is not counted in what
    /// got through, so the rate stays near the window's ten instead of snapping to five.
    #[tokio::test(start_paused = true)]
    async fn a_retry_after_pause_does_not_count_in_the_estimate() {
        let mut ctl = RateController::new(RateConfig::default());
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let second = Some(Duration::from_secs(1));
        // Every other second: ten calls get through (0.1 s apart), the eleventh is
        // refused at the second's end and the calls wait out the next second.
        let mut lowest = f64::MAX;
        for window in 0..10u64 {
            let from = 2_000 * window;
            for i in 1..=10 {
                ctl.on_accepted(at(from + 100 * i));
            }
            let refused = at(from + 1_000);
            ctl.on_limited(refused, refused, second);
            lowest = lowest.min(ctl.rate().unwrap_or_default());
        }
        assert!(lowest >= 9.5, "the rate fell to {lowest}");
    }

    #[tokio::test(start_paused = true)]
    async fn no_rate_until_the_target_refuses() {
        let mut ctl = RateController::new(RateConfig::default());
        for _ in 0..100 {
            tokio::time::advance(Duration::from_millis(10)).await;
            assert!(!ctl.on_accepted(Instant::now()));
        }
        assert_eq!(ctl.rate(), None);
        let now = Instant::now();
        assert!(ctl.on_limited(now, now, None));
        // 100 calls over the last second got through: the first rate is 1.5 × that.
        let rate = ctl.rate().unwrap_or_default();
        assert!((135.0..=165.0).contains(&rate), "rate {rate}");
        // Refused again at that pace, with still 100 a second getting through: it snaps
        // down to what gets through.
        for _ in 0..100 {
            tokio::time::advance(Duration::from_millis(10)).await;
            ctl.on_accepted(Instant::now());
        }
        let now = Instant::now();
        assert!(ctl.on_limited(now, now, None));
        let rate = ctl.rate().unwrap_or_default();
        assert!((90.0..=110.0).contains(&rate), "rate {rate}");
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_of_calls_sent_before_a_change_do_not_count() {
        let mut ctl = RateController::new(RateConfig::default());
        let sent = Instant::now();
        tokio::time::advance(Duration::from_millis(100)).await;
        ctl.on_accepted(Instant::now());
        assert!(ctl.on_limited(sent, Instant::now(), None));
        let rate = ctl.rate();
        // Eleven calls sent at the same instant come back refused after the change.
        for _ in 0..11 {
            assert!(!ctl.on_limited(sent, Instant::now(), None));
        }
        assert_eq!(ctl.rate(), rate);
    }

    /// A first rate set from a burst over a small bucket errs high; refused again before
    /// any probe, the rate takes what got through instead of creeping down 5 % per refusal
    /// (each refusal one more call the target turns away).
    #[tokio::test(start_paused = true)]
    async fn a_second_refusal_before_any_probe_takes_what_got_through() {
        let mut ctl = RateController::new(RateConfig::default());
        // Twenty calls a second got through for two seconds; refused: the first rate
        // is 30 a second, refused at once: snapped down to 20.
        for _ in 0..40 {
            tokio::time::advance(Duration::from_millis(50)).await;
            ctl.on_accepted(Instant::now());
        }
        let now = Instant::now();
        ctl.on_limited(now, now, None);
        tokio::time::advance(Duration::from_millis(10)).await;
        let now = Instant::now();
        ctl.on_limited(now, now, None);
        assert!((19.0..=21.0).contains(&ctl.rate().unwrap_or_default()));
        // Then 12 a second get through at that pace, and the next refusal comes before a
        // probe: the rate is what got through, not 20 × 0.95.
        for _ in 0..24 {
            tokio::time::advance(Duration::from_millis(83)).await;
            ctl.on_accepted(Instant::now());
        }
        let now = Instant::now();
        ctl.on_limited(now, now, None);
        let rate = ctl.rate().unwrap_or_default();
        assert!((11.0..=13.5).contains(&rate), "rate {rate}");
    }

    #[tokio::test(start_paused = true)]
    async fn never_below_the_minimum() {
        let mut ctl = RateController::new(RateConfig::default());
        // One call got through; then every call is refused.
        ctl.on_accepted(Instant::now());
        for _ in 0..500 {
            tokio::time::advance(Duration::from_millis(10)).await;
            let now = Instant::now();
            ctl.on_limited(now, now, None);
        }
        assert_eq!(ctl.rate(), Some(RateConfig::default().min));
    }

    #[tokio::test(start_paused = true)]
    async fn probes_up_when_the_limit_is_raised() {
        let mut ctl = RateController::new(RateConfig::default());
        // One call a second got through, then a refusal: the rate starts low (1.5/s).
        for _ in 0..2 {
            ctl.on_accepted(Instant::now());
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        let now = Instant::now();
        assert!(ctl.on_limited(now, now, None));
        let low = ctl.rate().unwrap_or_default();
        // A client that sends at the learned rate, every call accepted, for three minutes
        // (a plateau at the refused rate, then probes growing 2 %, 4 %, 8 % ...).
        let end = Instant::now() + Duration::from_secs(180);
        while Instant::now() < end && ctl.rate().unwrap_or_default() <= low * 2.0 {
            let pace = 1.0 / ctl.rate().unwrap_or(1.0);
            tokio::time::advance(Duration::from_secs_f64(pace)).await;
            ctl.on_accepted(Instant::now());
        }
        let high = ctl.rate().unwrap_or_default();
        assert!(high > low * 2.0, "{low} -> {high} in three minutes");
    }

    /// A client held back by something else (its concurrency, its source) does not raise a
    /// rate it never reaches: the rate stays within reach of what gets through.
    #[tokio::test(start_paused = true)]
    async fn an_unused_rate_does_not_grow() {
        let mut ctl = RateController::new(RateConfig::default());
        for _ in 0..100 {
            tokio::time::advance(Duration::from_millis(100)).await;
            ctl.on_accepted(Instant::now());
        }
        let now = Instant::now();
        ctl.on_limited(now, now, None);
        // Ten calls a second got through: the first rate is 15 a second.
        let first = ctl.rate().unwrap_or_default();
        assert!((14.0..=16.0).contains(&first), "rate {first}");
        // Then the client sends 5 a second for ten minutes, all accepted.
        for _ in 0..3000 {
            tokio::time::advance(Duration::from_millis(200)).await;
            ctl.on_accepted(Instant::now());
        }
        let rate = ctl.rate().unwrap_or_default();
        assert!(rate <= first, "an unused rate grew: {first} -> {rate}");
    }

    /// Against token buckets of several rates and bursts, the paced client gets at least
    /// 95 % of the bucket's rate through, and almost every call it sends is accepted
    /// (refusals are the target asking for time: few, since they cost it work too).
    #[tokio::test(start_paused = true)]
    async fn paced_client_gets_a_token_bucket_s_rate() {
        for (rate, burst) in [
            (0.5_f64, 1.0),
            (3.0, 3.0),
            (8.0, 2.0),
            (40.0, 10.0),
            (250.0, 50.0),
        ] {
            let secs = (600.0_f64 / rate).max(120.0) as u64;
            let (ok, refused) = drive(rate, burst, secs).await;
            let got = ok as f64 / secs as f64;
            println!(
                "rate {rate}: {:.3} of it accepted, {refused} refused",
                got / rate
            );
            assert!(got >= 0.9 * rate, "rate {rate}: {got}/s accepted");
            assert!(
                got <= rate + burst / secs as f64 + 0.01,
                "rate {rate}: {got}"
            );
            let share = refused as f64 / (ok + refused) as f64;
            assert!(
                share < 0.1,
                "rate {rate}: {refused} of {} refused",
                ok + refused
            );
        }
    }
}
