//! The two controllers as the event loop holds them: the concurrency limit and the batch
//! size, each fixed or adaptive behind one small interface, so the loop reads a number and
//! reports what happened without caring which mode is configured. The algorithms live in
//! [`adaptive`](crate::adaptive); what a finished call tells them is the outcome policy's
//! decision.

use std::time::Duration;

use tokio::time::Instant;

use super::config::BatchSizing;
use crate::adaptive::{BatchSizeController, ConcurrencyController, Signal};
use crate::dispatch::Concurrency;
use crate::policy::SizeFeedback;

/// The adaptive limit from which a slow-starting engine probes the batch size (see
/// [`Limit::may_probe`]).
const PROBE_FROM_LIMIT: usize = 4;

/// How many calls may be in flight.
pub(super) enum Limit {
    Fixed(usize),
    Adaptive(Box<ConcurrencyController>),
}

impl Limit {
    /// The limit `concurrency` configures, for fresh batches of `batch_size` items.
    pub(super) fn new(concurrency: &Concurrency, batch_size: usize) -> Self {
        match concurrency {
            Concurrency::Fixed(n) => Limit::Fixed(n.get()),
            Concurrency::Adaptive(c) => {
                let mut ctl = ConcurrencyController::new(c.clone());
                ctl.set_batch_size(batch_size);
                Limit::Adaptive(Box::new(ctl))
            }
        }
    }

    /// The limit now.
    pub(super) fn get(&self) -> usize {
        match self {
            Limit::Fixed(n) => *n,
            Limit::Adaptive(c) => c.limit(),
        }
    }

    /// The no-load round trip of a call of the current batch size, when adaptive and known.
    pub(super) fn baseline(&self) -> Option<Duration> {
        match self {
            Limit::Fixed(_) => None,
            Limit::Adaptive(c) => c.baseline(),
        }
    }

    /// Whether the limit can still come down: it is adaptive and above its minimum.
    pub(super) fn can_decrease(&self) -> bool {
        match self {
            Limit::Fixed(_) => false,
            Limit::Adaptive(c) => c.can_decrease(),
        }
    }

    /// The target served a call (per-item outcomes came back) after `latency`.
    pub(super) fn on_served(&mut self, latency: Duration, now: Instant) {
        if let Limit::Adaptive(c) = self {
            c.on_served(latency, now);
        }
    }

    /// A call started; `in_flight` calls are out now.
    pub(super) fn on_dispatch(&mut self, in_flight: usize, now: Instant) {
        if let Limit::Adaptive(c) = self {
            c.on_dispatch(in_flight, now);
        }
    }

    /// A full batch of another size than the current one came back served (see
    /// [`ConcurrencyController::on_ack`]).
    pub(super) fn on_ack(&mut self) {
        if let Limit::Adaptive(c) = self {
            c.on_ack();
        }
    }

    /// Whether a batch-size probe may take a slot: a probe over a hidden limit holds its
    /// slot until it times out, which costs little out of many slots but a large share of
    /// one or two. So while an adaptive limit is still in slow start below
    /// [`PROBE_FROM_LIMIT`], the size waits (it is probed as soon as the limit is there, or
    /// as soon as slow start ends: a target with few slots is probed all the same).
    pub(super) fn may_probe(&self) -> bool {
        match self {
            Limit::Fixed(_) => true,
            Limit::Adaptive(c) => !c.in_slow_start() || c.limit() >= PROBE_FROM_LIMIT,
        }
    }

    /// Whether a call sent no later than the one about to be reported is still out (see
    /// [`ConcurrencyController::on_older_out`]).
    pub(super) fn on_older_out(&mut self, older_out: bool) {
        if let Limit::Adaptive(c) = self {
            c.on_older_out(older_out);
        }
    }

    /// A call that timed out queued left with `in_flight` calls out (see
    /// [`ConcurrencyController::on_overload_flight`]).
    pub(super) fn on_overload_flight(&mut self, in_flight: usize) {
        if let Limit::Adaptive(c) = self {
            c.on_overload_flight(in_flight);
        }
    }

    /// Whether an adaptive limit is re-probing its overload ceiling.
    pub(super) fn reprobing(&self) -> bool {
        match self {
            Limit::Fixed(_) => false,
            Limit::Adaptive(c) => c.reprobing(),
        }
    }

    /// Whether an adaptive limit sees the target calm (see
    /// [`ConcurrencyController::calm`]).
    pub(super) fn calm(&self) -> bool {
        match self {
            Limit::Fixed(_) => false,
            Limit::Adaptive(c) => c.calm(),
        }
    }

    /// Whether a call sent at `sent` left during a re-probe of the overload ceiling (see
    /// [`ConcurrencyController::sent_in_reprobe`]).
    pub(super) fn sent_in_reprobe(&self, sent: Instant) -> bool {
        match self {
            Limit::Fixed(_) => false,
            Limit::Adaptive(c) => c.sent_in_reprobe(sent),
        }
    }

    /// A call came back after `latency` with `signal`; fresh batches now carry
    /// `batch_size` items.
    pub(super) fn on_response(
        &mut self,
        latency: Duration,
        signal: Signal,
        now: Instant,
        batch_size: usize,
    ) {
        if let Limit::Adaptive(c) = self {
            c.on_response(latency, signal, now);
            c.set_batch_size(batch_size);
        }
    }
}

/// How many items a fresh batch carries.
pub(super) enum Size {
    Fixed(usize),
    Adaptive(Box<BatchSizeController>),
}

impl Size {
    /// The size `sizing` configures, capped at `max_items` when fixed.
    pub(super) fn new(sizing: &BatchSizing, max_items: usize) -> Self {
        match sizing {
            BatchSizing::Fixed => Size::Fixed(max_items),
            BatchSizing::Adaptive(c) => {
                Size::Adaptive(Box::new(BatchSizeController::new(c.clone())))
            }
        }
    }

    /// The size now.
    pub(super) fn get(&self) -> usize {
        match self {
            Size::Fixed(n) => *n,
            Size::Adaptive(c) => c.size(),
        }
    }

    /// What a fresh batch carries: the size now or, while the concurrency re-probes its
    /// overload ceiling, the size for calls that may wait (see
    /// [`BatchSizeController::size_for_waiting`]).
    pub(super) fn fresh(&self, reprobing: bool) -> usize {
        match self {
            Size::Fixed(n) => *n,
            Size::Adaptive(c) if reprobing => c.size_for_waiting(),
            Size::Adaptive(c) => c.size(),
        }
    }

    /// Whether a batch of `n` items is no larger than one that went through before (always,
    /// for a fixed size).
    pub(super) fn went_through(&self, n: usize) -> bool {
        match self {
            Size::Fixed(_) => true,
            Size::Adaptive(c) => n <= c.largest_served(),
        }
    }

    /// Whether the concurrency controller sees the target calm (see
    /// [`BatchSizeController::set_calm`]).
    pub(super) fn set_calm(&mut self, calm: bool) {
        if let Size::Adaptive(c) = self {
            c.set_calm(calm);
        }
    }

    /// What a call of `n` items that took `latency` says about the size.
    pub(super) fn learn(
        &mut self,
        feedback: SizeFeedback,
        n: usize,
        latency: Duration,
        probe: bool,
    ) {
        if let Size::Adaptive(c) = self {
            match feedback {
                SizeFeedback::Nothing => {}
                SizeFeedback::ReturnProbe => c.cancel_probe(),
                SizeFeedback::Success => c.on_success(n, latency, probe),
                SizeFeedback::TooLarge => c.on_too_large(n, latency, probe),
                SizeFeedback::Overload => c.on_overload(latency),
            }
        }
    }
}
