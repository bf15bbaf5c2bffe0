//! Adaptive batch size: toward a target batch latency, below a learned ceiling, growing by
//! one probe at a time.
//!
//! The algorithm:
//!
//! * Fresh batches carry the *confirmed* size, a size known to go through. At most one batch
//!   in flight is a *probe* carrying a larger, untested size (the engine asks
//!   [`BatchSizeController::probe`] when no probe is out). A target with a hidden size limit
//!   therefore costs one failed call per step of learning, not one per concurrent call.
//! * Probe sizes: ×`growth` (slow start) while no ceiling is known; halfway to
//!   `ceiling − 1` once one is, or further, up to `ceiling − 1`, where the latency of the
//!   probe that timed out projects a size to fit in it (on a 500 ms timeout, 16 items in
//!   362 ms project 22: one probe instead of three); never above what the last latency
//!   projects to reach `target_latency` (latency is taken as linear in size, the common
//!   case for APIs, databases and models); never above `max`. At `ceiling − 1`, the
//!   ceiling itself is re-probed after `probe_after` successes, and each failed re-probe
//!   doubles that interval, so a fixed server limit costs a vanishing share of calls
//!   while a limit that moved is found again.
//! * A probe that succeeds within the target latency becomes the confirmed size; a slower
//!   one is not confirmed but shrinks nothing (one call's latency may be queueing). A probe
//!   that is too large (it timed
//!   out or the target answered `Split`) sets the ceiling and leaves the confirmed size alone.
//! * *Headroom*: a batch of the confirmed size that timed out while queued (the engine's
//!   overload: a gateway's 504, the per-attempt timeout, with other calls in flight) says a
//!   call may take at most that long *including its wait for a slot*. A batch sized up to
//!   that bound leaves no time to wait, so every bit of queueing becomes a timeout rather than
//!   latency the concurrency controller could see. From then on the target latency is at
//!   most `headroom` × the timed-out call's latency, and the size shrinks to it at once
//!   (in proportion to the quickest of the last full batches at the confirmed size, or the
//!   last full batch's latency if none).
//! * *Calm*: the headroom is room for waiting. Once the concurrency controller holds the
//!   limit under its overload ceiling with no call waiting ([`set_calm`]), the bound is
//!   loosened to `calm_headroom` × that latency, or that latency less four times the
//!   jitter of the recent full batches' latencies (median less quickest) if less, and probes
//!   grow the size into it; calls that may wait, sent while the concurrency re-probes its
//!   ceiling, carry [`size_for_waiting`] instead, so that the re-probe's waiting call comes
//!   back late rather than timing out. An overload while loosened tightens the bound
//!   again, and the next loosening waits four times as many calm reports.
//!
//!   [`set_calm`]: BatchSizeController::set_calm
//!   [`size_for_waiting`]: BatchSizeController::size_for_waiting
//! * A *full* confirmed-size batch (at least `fullness` × the size; tail batches and split
//!   parts say nothing about the size) slower than the target shrinks the size in
//!   proportion (`size × target / latency`, at most halving). The latency judged is the
//!   quickest of the last 8 full batches at that size: a batch that waited in the target's
//!   queue is slow because of concurrency, which is the other controller's business, and
//!   shrinking batches for it would only add calls to the queue (after a shrink the last
//!   8 carry over, scaled to the new size); one that is too large sets the
//!   ceiling to its size and drops the size to `ceiling × backoff`: the target changed.
//!
//! Knobs ([`BatchSizeConfig`]): `initial` (16), `min` (1), `max` (a cap, never exceeded),
//! `target_latency` (2 s), `growth` (1.5), `backoff` (0.75), `fullness` (0.9),
//! `probe_after` (64), `headroom` (0.7), `calm_headroom` (0.95).

use std::time::Duration;

use crate::error::Error;

/// Full batches whose quickest latency stands for the confirmed size's.
const RECENT: usize = 8;

/// Settings of the [`BatchSizeController`]; see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchSizeConfig {
    /// Starting size (default 16).
    pub initial: usize,
    /// Smallest size (default 1).
    pub min: usize,
    /// Largest size: a cap, never exceeded (default 500; the engine lowers it to the flush
    /// policy's `max_items`).
    pub max: usize,
    /// The batch latency the controller aims for (default 2 s).
    pub target_latency: Duration,
    /// Slow-start multiplier (default 1.5).
    pub growth: f64,
    /// Multiplier applied to a confirmed size found too large (default 0.75).
    pub backoff: f64,
    /// Share of the current size a batch must carry to count as full (default 0.9).
    pub fullness: f64,
    /// Successes just under the ceiling before probing the ceiling again (default 64).
    pub probe_after: u32,
    /// Share of a queued call's timeout a fresh batch may take, once one timed out while
    /// queued (default 0.7): the rest is left for waiting at the target.
    pub headroom: f64,
    /// The share of that timeout a fresh batch may take once the concurrency controller
    /// sees no call waiting (default 0.95; or that latency less four times the jitter of
    /// recent latencies, if less): the rest is left for the call's own jitter.
    pub calm_headroom: f64,
}

impl Default for BatchSizeConfig {
    fn default() -> Self {
        BatchSizeConfig {
            initial: 16,
            min: 1,
            max: 500,
            target_latency: Duration::from_secs(2),
            growth: 1.5,
            backoff: 0.75,
            fullness: 0.9,
            probe_after: 64,
            headroom: 0.7,
            calm_headroom: 0.95,
        }
    }
}

impl BatchSizeConfig {
    /// Checks `1 <= min <= initial <= max` and the ratios.
    pub fn validate(&self) -> Result<(), Error> {
        super::bounds::validate_bounds(
            (self.min, self.initial, self.max),
            ["batch.min_items", "batch.initial_items", "batch.max_items"],
        )?;
        if self.target_latency.is_zero() {
            return Err(Error::config(
                "batch.target_latency",
                "must be greater than zero",
            ));
        }
        if !(self.headroom > 0.0 && self.headroom <= 1.0) {
            return Err(Error::config("batch.headroom", "must lie in (0, 1]"));
        }
        if !(self.calm_headroom >= self.headroom && self.calm_headroom <= 1.0) {
            return Err(Error::config(
                "batch.calm_headroom",
                "must lie in [batch.headroom, 1]",
            ));
        }
        if self.growth <= 1.0 {
            return Err(Error::config("batch.growth", "must be greater than 1"));
        }
        if !(self.backoff > 0.0 && self.backoff < 1.0) {
            return Err(Error::config(
                "batch.backoff",
                "must lie strictly between 0 and 1",
            ));
        }
        Ok(())
    }
}

/// The adaptive batch size; see the module docs.
#[derive(Debug, Clone)]
pub struct BatchSizeController {
    config: BatchSizeConfig,
    size: usize,
    ceiling: Option<usize>,
    /// Largest size the last full batch's latency projects to stay within the target.
    projected: Option<usize>,
    successes_at_top: u32,
    probe_after: u32,
    probe_out: Option<usize>,
    /// The target latency lowered by an overload (see `headroom`), if one happened.
    bound: Option<f64>,
    /// Whether the bound is loosened to `calm_headroom` (see [`set_calm`](Self::set_calm)).
    loose: bool,
    /// Calm reports in a row, and how many loosen the bound (×4 after each overload that
    /// came while it was loose).
    calm_reports: u32,
    loosen_after: u32,
    /// The last full batch that went through: its size and latency (seconds).
    last_full: Option<(usize, f64)>,
    /// Latencies (seconds) of the last full batches at the confirmed size, newest last.
    recent: std::collections::VecDeque<f64>,
    /// Latencies (seconds) of the last batches of exactly the confirmed size, newest last:
    /// their jitter (see `target`).
    exact: std::collections::VecDeque<f64>,
    /// The largest batch that went through so far.
    largest_served: usize,
    /// The size the latency of the last probe that timed out projects to fit (see
    /// `on_too_large`).
    timeout_fit: Option<usize>,
}

impl BatchSizeController {
    /// A controller starting at `config.initial`. Call [`BatchSizeConfig::validate`] first.
    pub fn new(config: BatchSizeConfig) -> Self {
        let size = config.initial.clamp(config.min.max(1), config.max.max(1));
        BatchSizeController {
            probe_after: config.probe_after.max(1),
            config,
            size,
            ceiling: None,
            projected: None,
            successes_at_top: 0,
            probe_out: None,
            bound: None,
            loose: false,
            calm_reports: 0,
            loosen_after: 1,
            last_full: None,
            recent: std::collections::VecDeque::new(),
            exact: std::collections::VecDeque::new(),
            largest_served: 0,
            timeout_fit: None,
        }
    }

    /// The latency fresh batches aim for: `target_latency`, lowered by an overload.
    fn target(&self) -> f64 {
        let target = self.config.target_latency.as_secs_f64();
        let Some(bound) = self.bound else {
            return target;
        };
        if !self.loose {
            return bound.min(target);
        }
        // Loosened: `calm_headroom` of the timed-out latency, less four times the jitter
        // of the recent batches of the confirmed size (their median less their quickest:
        // robust to the odd batch that waited in a queue), so a target whose latency
        // jitters keeps room for it.
        let timed_out = bound / self.config.headroom;
        let mut recent: Vec<f64> = self.exact.iter().copied().collect();
        recent.sort_by(f64::total_cmp);
        let jitter = match (recent.first(), recent.get(recent.len() / 2)) {
            (Some(lo), Some(mid)) => mid - lo,
            _ => 0.0,
        };
        (timed_out * self.config.calm_headroom)
            .min(timed_out - 4.0 * jitter)
            .max(bound)
            .min(target)
    }

    /// Tells the controller, once per finished call, whether the concurrency controller
    /// sees the target calm: the limit held under its overload ceiling and no call
    /// waiting. The headroom an overload left was room for waiting; with none, after
    /// enough calm reports in a row, fresh batches may take `calm_headroom` of the
    /// timed-out latency instead (on a 3-slot gateway with a 1 s timeout, 13 items of 80 +
    /// 60 ms each instead of 10). An overload while loosened tightens the bound again and
    /// makes the next loosening wait four times as many calm reports.
    pub fn set_calm(&mut self, calm: bool) {
        if !calm {
            self.calm_reports = 0;
            return;
        }
        self.calm_reports = self.calm_reports.saturating_add(1);
        if self.bound.is_some() && !self.loose && self.calm_reports >= self.loosen_after {
            self.loose = true;
            tracing::debug!(
                target_ms = (self.target() * 1e3) as u64,
                "batch bound loosened"
            );
        }
    }

    /// Records that a batch of the confirmed size timed out while queued, after `latency`:
    /// from now on fresh batches aim at `headroom` × that latency at most, and the size
    /// shrinks to it at once.
    pub fn on_overload(&mut self, latency: Duration) {
        let bound = latency.as_secs_f64() * self.config.headroom;
        if bound <= 0.0 {
            return;
        }
        if std::mem::take(&mut self.loose) {
            self.loosen_after = self.loosen_after.saturating_mul(4);
        } else if self.bound.is_some_and(|b| b <= bound) {
            return;
        }
        self.calm_reports = 0;
        let bound = self.bound.map_or(bound, |b| b.min(bound));
        self.bound = Some(bound);
        // Projected from the quickest recent full batch at the confirmed size, as a shrink
        // is: the last one may have waited in the very queue that timed this call out (on
        // 8 slots, a batch of 16 back in 1.28 s instead of 1.04 s cut the size to 13).
        let quickest = self
            .recent
            .iter()
            .copied()
            .reduce(f64::min)
            .map(|rtt| (self.size, rtt));
        if let Some((len, observed)) = quickest.or(self.last_full) {
            let fits = ((len as f64) * bound / observed.max(1e-9)).floor() as usize;
            self.projected = Some(fits);
            if fits < self.size {
                self.set_size(fits.clamp(self.config.min, self.config.max));
                self.successes_at_top = 0;
            }
        }
    }

    /// Changes the confirmed size; latencies seen at the old one no longer count.
    fn set_size(&mut self, size: usize) {
        if size != self.size {
            self.size = size;
            self.recent.clear();
            self.exact.clear();
        }
    }

    /// The confirmed size: what a fresh batch carries.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The size for calls that may have to wait at the target: the confirmed size, or,
    /// while the bound is loosened (see [`set_calm`](Self::set_calm)), the share of it
    /// that fits the tight bound. The engine cuts fresh batches to it while the concurrency
    /// controller re-probes its overload ceiling: the call the re-probe adds waits for a
    /// slot, and a batch sized for no waiting would time out where one sized for waiting
    /// only comes back late, which fails the re-probe at no cost.
    pub fn size_for_waiting(&self) -> usize {
        if !self.loose {
            return self.size;
        }
        let share = self.config.headroom / self.config.calm_headroom;
        (((self.size as f64) * share).floor() as usize).clamp(self.config.min, self.size)
    }

    /// The smallest size known to be too large, if any.
    pub fn ceiling(&self) -> Option<usize> {
        self.ceiling
    }

    /// The largest batch that went through so far (0 before the first): a batch no larger
    /// that times out did not time out for its size.
    pub fn largest_served(&self) -> usize {
        self.largest_served
    }

    /// The size of the probe in flight, if any.
    pub fn probe_in_flight(&self) -> Option<usize> {
        self.probe_out
    }

    /// The probe size the controller would like to try next (without taking it).
    pub fn wanted_probe(&self) -> Option<usize> {
        // One probe at a time, and none before a batch of the confirmed size went through:
        // the first size may itself be over the target's limit.
        if self.probe_out.is_some() || self.largest_served < self.size {
            return None;
        }
        let cap = self
            .projected
            .map_or(self.config.max, |p| p.min(self.config.max));
        let candidate = match self.ceiling {
            None => ((self.size as f64) * self.config.growth).ceil() as usize,
            Some(ceiling) => {
                let top = ceiling.saturating_sub(1);
                if self.size < top {
                    let halfway = self.size + (top - self.size).div_ceil(2);
                    halfway.max(self.timeout_fit.unwrap_or(0).min(top))
                } else if self.successes_at_top >= self.probe_after {
                    ceiling
                } else {
                    return None;
                }
            }
        };
        let candidate = candidate.min(cap);
        (candidate > self.size).then_some(candidate)
    }

    /// Takes a probe: the engine calls this when it is about to cut a fresh batch and no
    /// probe is in flight; `Some(n)` means "cut this one with `n` items and report it back
    /// as a probe".
    pub fn probe(&mut self) -> Option<usize> {
        let n = self.wanted_probe()?;
        self.probe_out = Some(n);
        Some(n)
    }

    /// Gives back a probe that was not sent after all (not enough items waiting).
    pub fn cancel_probe(&mut self) {
        self.probe_out = None;
    }

    fn is_full(&self, len: usize) -> bool {
        (len as f64) >= (self.size as f64) * self.config.fullness
    }

    /// Records a call of `len` items that went through in `latency`; `probe` says whether it
    /// was the probe.
    pub fn on_success(&mut self, len: usize, latency: Duration, probe: bool) {
        if probe {
            self.probe_out = None;
        }
        self.largest_served = self.largest_served.max(len);
        if !probe && (!self.is_full(len) || len > self.size) {
            // A tail batch or split part says nothing about the size; nor does one cut
            // before the size came down, which is slower for being larger.
            return;
        }
        let target = self.target();
        let mut observed = latency.as_secs_f64().max(1e-9);
        if probe && observed > target {
            // A probe slower than the target is not confirmed. It is one call, which may
            // have waited in the target's queue (that is the concurrency controller's
            // business): it neither shrinks the confirmed size nor caps the next probe.
            return;
        }
        if !probe {
            // The quickest of the last few full batches: a batch that waited in the target's
            // queue is slow for the concurrency controller's reasons, not its size's.
            self.recent.push_back(observed);
            if self.recent.len() > RECENT {
                self.recent.pop_front();
            }
            if len == self.size {
                self.exact.push_back(observed);
                if self.exact.len() > RECENT {
                    self.exact.pop_front();
                }
            }
            observed = self.recent.iter().copied().fold(observed, f64::min);
        }
        self.last_full = Some((len, observed));
        self.projected = Some(((len as f64) * target / observed).floor() as usize);
        if observed > target {
            let factor = (target / observed).max(0.5);
            let shrunk = ((len.min(self.size) as f64) * factor).floor() as usize;
            let shrunk = shrunk.clamp(self.config.min, self.config.max);
            // The recent latencies carry over, scaled to the new size (latency taken as
            // linear in size, which undershoots with a fixed cost per call): the first
            // batch at the new size alone, which may have waited in the same queue as the
            // ones before it, does not shrink the size again (on 3 slots with a fourth
            // call waiting, 10 became 9 and then, from one batch of 9 in 921 ms, 6).
            let scale = shrunk as f64 / self.size.max(1) as f64;
            let scaled: std::collections::VecDeque<f64> =
                self.recent.iter().map(|l| l * scale).collect();
            self.set_size(shrunk);
            self.recent = scaled;
            return;
        }
        if probe && len > self.size {
            self.set_size(len.min(self.config.max));
            self.successes_at_top = 0;
            if self.ceiling.is_some_and(|c| len >= c) {
                // The limit moved: forget it and the probe backoff.
                self.ceiling = None;
                self.probe_after = self.config.probe_after.max(1);
            }
        } else if self.ceiling.is_some_and(|c| self.size + 1 >= c) {
            self.successes_at_top += 1;
        }
    }

    /// Records a call of `len` items that was too large after `latency`: it timed out or the
    /// target answered `Split` without naming an item. `probe` says whether it was the probe.
    pub fn on_too_large(&mut self, len: usize, latency: Duration, probe: bool) {
        if probe {
            self.probe_out = None;
            if self.ceiling.is_some_and(|c| len >= c) {
                self.probe_after = self.probe_after.saturating_mul(2);
            }
            self.successes_at_top = 0;
            // The first probe found too large, if it timed out, says how long a call may
            // take: the size its latency projects to (in proportion to the confirmed
            // size's, which undershoots when a call has a fixed cost) is the next probe's
            // floor. Only the first: a target that answers "too large" slowly for another
            // reason would otherwise turn the search into a walk down from the ceiling.
            self.timeout_fit = match (self.ceiling, self.last_full) {
                (None, Some((size, observed))) => {
                    let fits = (size as f64) * latency.as_secs_f64() / observed.max(1e-9);
                    Some(fits.floor() as usize)
                }
                _ => None,
            };
            self.ceiling = Some(self.ceiling.map_or(len, |c| c.min(len)));
            return;
        }
        if len <= self.config.min || !self.is_full(len) {
            // A split part or tail batch failing is more likely a poison item than size.
            return;
        }
        self.ceiling = Some(self.ceiling.map_or(len, |c| c.min(len)));
        let backed = ((len as f64) * self.config.backoff).floor() as usize;
        self.set_size(
            backed
                .min(self.size)
                .clamp(self.config.min, self.config.max),
        );
        self.successes_at_top = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Drives the controller like the engine does, `parallel` calls per round: one may be a
    /// probe. The target takes 10 ms + 1 ms/item and fails above `limit` items.
    fn drive(
        ctl: &mut BatchSizeController,
        limit: usize,
        rounds: usize,
        parallel: usize,
    ) -> (Vec<usize>, usize) {
        let mut sizes = Vec::new();
        let mut failures = 0;
        for _ in 0..rounds {
            let mut calls = Vec::new();
            for _ in 0..parallel {
                match ctl.probe() {
                    Some(n) => calls.push((n, true)),
                    None => calls.push((ctl.size(), false)),
                }
            }
            for (n, probe) in calls {
                sizes.push(n);
                if n > limit {
                    failures += 1;
                    ctl.on_too_large(n, Duration::from_millis(10 + n as u64), probe);
                } else {
                    ctl.on_success(n, Duration::from_millis(10 + n as u64), probe);
                }
            }
        }
        (sizes, failures)
    }

    #[test]
    fn settles_just_under_a_hidden_size_limit_with_few_failures() {
        let mut ctl = BatchSizeController::new(BatchSizeConfig {
            max: 1000,
            ..Default::default()
        });
        let (sizes, failures) = drive(&mut ctl, 137, 500, 8);
        let tail = &sizes[2000..];
        let mean = tail.iter().sum::<usize>() as f64 / tail.len() as f64;
        assert!(failures <= 12, "{failures} calls over the limit in 4000");
        assert!(mean > 133.0, "mean size {mean}");
        assert_eq!(ctl.size(), 137);
    }

    #[test]
    fn shrinks_toward_the_target_latency() {
        let cfg = BatchSizeConfig {
            initial: 400,
            max: 1000,
            target_latency: Duration::from_millis(100),
            ..Default::default()
        };
        let mut ctl = BatchSizeController::new(cfg);
        // As the engine sends them: a batch of the confirmed size each round, and a probe
        // beside it when the controller wants one. 1 ms per item.
        for _ in 0..50 {
            if let Some(n) = ctl.probe() {
                ctl.on_success(n, Duration::from_millis(n as u64), true);
            }
            let n = ctl.size();
            ctl.on_success(n, Duration::from_millis(n as u64), false);
        }
        assert!((50..=100).contains(&ctl.size()), "size {}", ctl.size());
    }

    /// Every call waiting a little (a fourth call on three slots) shrinks the size once,
    /// not again on the first batch at the new size.
    #[test]
    fn a_shrink_is_not_repeated_on_one_queued_batch() {
        let mut ctl = BatchSizeController::new(BatchSizeConfig {
            initial: 10,
            target_latency: Duration::from_millis(700),
            ..Default::default()
        });
        // 10 items take 680 ms alone; a run of calls that each waited 60-320 ms.
        ctl.on_success(10, Duration::from_millis(680), false);
        for ms in [744, 999, 981, 743, 999, 981, 743, 999] {
            ctl.on_success(10, Duration::from_millis(ms), false);
        }
        // The quickest of the last 8 is 743 ms: 10 × 700 / 743 = 9.4.
        assert_eq!(ctl.size(), 9);
        // The first batch of 9 waited too (921 ms); alone it would say 6.
        ctl.on_success(9, Duration::from_millis(921), false);
        assert_eq!(ctl.size(), 9);
    }

    #[test]
    fn a_failed_probe_keeps_the_confirmed_size() {
        let mut ctl = BatchSizeController::new(BatchSizeConfig::default());
        assert_eq!(
            ctl.probe(),
            None,
            "no probe before the first size went through"
        );
        ctl.on_success(16, Duration::from_millis(100), false);
        let n = ctl.probe().unwrap();
        assert_eq!(n, 24);
        assert_eq!(ctl.probe(), None, "one probe at a time");
        ctl.on_too_large(n, Duration::from_millis(50), true);
        assert_eq!(ctl.size(), 16);
        assert_eq!(ctl.ceiling(), Some(24));
        assert_eq!(ctl.probe(), Some(20));
    }

    /// A probe that timed out says how long a call may take: the next probe goes to the
    /// size that fits in it, not halfway.
    #[test]
    fn a_timed_out_probe_projects_the_next_one() {
        let mut ctl = BatchSizeController::new(BatchSizeConfig::default());
        ctl.on_success(16, Duration::from_millis(362), false);
        assert_eq!(ctl.probe(), Some(24));
        ctl.on_too_large(24, Duration::from_millis(502), true);
        // 16 × 502 / 362 = 22.2 (halfway to 23 would be 20).
        assert_eq!(ctl.probe(), Some(22));
        ctl.on_success(22, Duration::from_millis(482), true);
        assert_eq!((ctl.size(), ctl.probe()), (22, Some(23)));
    }

    #[test]
    fn an_overload_leaves_headroom_for_queueing() {
        let mut ctl = BatchSizeController::new(BatchSizeConfig {
            initial: 23,
            ..Default::default()
        });
        // 23 items take 1.46 s (80 ms + 60 ms each); one of them timed out queued at 1.5 s.
        ctl.on_success(23, Duration::from_millis(1_460), false);
        assert_eq!(ctl.size(), 23);
        ctl.on_overload(Duration::from_millis(1_500));
        // 0.7 × 1.5 s = 1.05 s, and 23 × 1.05 / 1.46 = 16.5.
        assert_eq!(ctl.size(), 16);
        // Probes stay within the bound too.
        ctl.on_success(16, Duration::from_millis(1_040), false);
        assert_eq!(ctl.wanted_probe(), None);
        // A later, longer overload does not loosen the bound.
        ctl.on_overload(Duration::from_secs(3));
        assert_eq!(ctl.size(), 16);
    }

    /// The last full batch waited in the queue that timed the overloaded call out: the
    /// size is projected from the quickest recent one, not from it.
    #[test]
    fn an_overload_projects_from_the_quickest_recent_batch() {
        let mut ctl = BatchSizeController::new(BatchSizeConfig::default());
        // 16 items take 1.04 s alone; the last one waited 0.24 s for a slot.
        ctl.on_success(16, Duration::from_millis(1_040), false);
        ctl.on_success(16, Duration::from_millis(1_280), false);
        ctl.on_overload(Duration::from_millis(1_500));
        // 0.7 × 1.5 s = 1.05 s, and 16 × 1.05 / 1.04 = 16.2 (from 1.28 s it was 13).
        assert_eq!(ctl.size(), 16);
    }

    /// With no call waiting, the headroom an overload left is loosened to
    /// `calm_headroom`; a later overload tightens it again, and the next loosening waits
    /// four times as many calm reports.
    #[test]
    fn a_calm_target_loosens_the_bound_until_the_next_overload() {
        let mut ctl = BatchSizeController::new(BatchSizeConfig {
            initial: 10,
            ..Default::default()
        });
        // 3 slots, 80 ms + 60 ms an item, a 1.0 s gateway timeout: 10 items take 680 ms.
        ctl.on_success(10, Duration::from_millis(680), false);
        ctl.on_overload(Duration::from_millis(1_000));
        ctl.on_success(10, Duration::from_millis(680), false);
        // 0.7 × 1.0 s: 10 × 0.7 / 0.68 = 10.3.
        assert_eq!((ctl.size(), ctl.wanted_probe()), (10, None));
        ctl.set_calm(false);
        ctl.set_calm(true);
        ctl.on_success(10, Duration::from_millis(680), false);
        // 0.95 × 1.0 s: 10 × 0.95 / 0.68 = 13.97.
        assert_eq!(ctl.probe(), Some(13));
        ctl.on_success(13, Duration::from_millis(860), true);
        assert_eq!(ctl.size(), 13);
        // A call that may wait (a concurrency re-probe) carries what fits the tight bound:
        // 13 × 0.7 / 0.95 = 9.6.
        assert_eq!(ctl.size_for_waiting(), 9);
        // Timed out queued all the same: back to 0.7 s at once (13 × 0.7 / 0.86 = 10.6).
        ctl.on_overload(Duration::from_millis(1_000));
        assert_eq!((ctl.size(), ctl.size_for_waiting()), (10, 10));
        for _ in 0..3 {
            ctl.set_calm(true);
        }
        ctl.on_success(10, Duration::from_millis(680), false);
        assert_eq!(
            ctl.wanted_probe(),
            None,
            "loosened again after 3 calm reports"
        );
        ctl.set_calm(true);
        ctl.on_success(10, Duration::from_millis(680), false);
        assert_eq!(ctl.wanted_probe(), Some(13));
    }

    /// Loosened, the bound keeps four times the jitter of the recent batches (their median
    /// less their quickest) below the timed-out latency.
    #[test]
    fn a_loosened_bound_keeps_room_for_jitter() {
        let probe_after = |jitter_ms: u64| {
            let mut ctl = BatchSizeController::new(BatchSizeConfig {
                initial: 10,
                ..Default::default()
            });
            ctl.on_success(10, Duration::from_millis(600), false);
            ctl.on_overload(Duration::from_millis(1_000));
            ctl.set_calm(true);
            // (Each call is judged on the batches before it.)
            for i in 0..9 {
                let ms = 600 + if i % 2 == 0 { jitter_ms } else { 0 };
                ctl.on_success(10, Duration::from_millis(ms), false);
            }
            ctl.wanted_probe()
        };
        // Steady: 0.95 s, 10 × 0.95 / 0.6 = 15.8.
        assert_eq!(probe_after(0), Some(15));
        // 50 ms of jitter: 1.0 − 4 × 0.05 = 0.8 s, 10 × 0.8 / 0.6 = 13.3.
        assert_eq!(probe_after(50), Some(13));
        // 160 ms: no looser than the tight bound, 10 × 0.7 / 0.6 = 11.7.
        assert_eq!(probe_after(160), Some(11));
    }

    #[test]
    fn calm_headroom_is_validated() {
        let cfg = BatchSizeConfig {
            calm_headroom: 0.5,
            ..Default::default()
        };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("batch.calm_headroom"), "{err}");
    }

    proptest! {
        #[test]
        fn size_stays_within_bounds(min in 1usize..10, extra in 0usize..500, events in proptest::collection::vec((any::<bool>(), any::<bool>(), 1usize..1000, 0u64..5000), 1..200)) {
            let cfg = BatchSizeConfig { min, initial: min, max: min + extra, ..Default::default() };
            let mut ctl = BatchSizeController::new(cfg);
            for (ok, probe, len, ms) in events {
                let probe = probe && ctl.probe().is_some();
                if ok { ctl.on_success(len, Duration::from_millis(ms), probe) } else { ctl.on_too_large(len, Duration::from_millis(ms), probe) }
                prop_assert!(ctl.size() >= min && ctl.size() <= min + extra);
                if let Some(p) = ctl.wanted_probe() {
                    prop_assert!(p <= min + extra);
                }
            }
        }
    }
}
