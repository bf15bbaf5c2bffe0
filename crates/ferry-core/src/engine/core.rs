//! The engine's event loop: one task owns every waiting item, decides what leaves when, and
//! settles what comes back.
//!
//! One owner means no locks around the buffer, the controllers or the queues; handler calls
//! run as their own tasks (so CPU-heavy handlers use every core) and report back through a
//! `JoinSet`. A call returns its batch with its outcome, even when it panicked, timed out or
//! was abandoned at shutdown, so no item can be lost in a task.
//!
//! The loop, each turn: start as many calls as the concurrency limit, the throttle and the
//! flush policy allow (retries and split parts first, unless the buffer holds a more urgent
//! item that must leave); then wait for whichever comes first: a finished call, new items,
//! the next deadline (an item's max wait, a retry's backoff, the rate limiter, the
//! `Retry-After` gate), a progress tick, or cancellation.
//!
//! This module owns the loop's state and carries decisions out (what becomes of a finished
//! call's items: `carry`); it does not make them. What
//! a finished call means for its items and for the controllers (retry, split, dead-letter,
//! the gate, the signals) is the outcome policy's decision (`crate::policy`), and when a
//! batch may leave is the flush policy's.

mod carry;

use std::collections::{btree_map, BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoffs;
use super::call::{self, CallDone};
use super::config::EngineConfig;
use super::controllers::{Limit, Size};
use super::intake::{Arrival, Arrivals};
use super::isolate::Searches;
use super::metrics::Metrics;
use super::report::Report;
use super::settled::{Outcomes, Settled};
use crate::adaptive::Signal;
use crate::batcher::Buffer;
use crate::deadletter::DeadLetterSink;
use crate::dispatch::Throttle;
use crate::error::Error;
use crate::item::{Batch, Priority};
use crate::ledger::Ledger;
use crate::outcome::Handler;
use crate::policy::{Action, BatchState, CallEnd, OutcomePolicy, RateFeedback, SizeFeedback};
use crate::profile::StageProfile;
use crate::progress::Progress;

/// Most items taken from one intake channel per loop turn, so a flood of input cannot
/// starve completions.
const INTAKE_BURST: usize = 4096;

/// Once input has ended, the batch size is still probed while at least this many rounds of
/// calls (limit × size items each) are buffered: enough work for a larger size to pay for
/// a probe that fails.
const PROBE_ROUNDS_LEFT: usize = 4;

/// Served calls' ends remembered for placing abandoned calls (see `hold_abandoned`).
const SERVED_ENDS_KEPT: usize = 256;

/// The loop's state.
pub(super) struct Core<T, R, H> {
    cfg: EngineConfig,
    handler: Arc<H>,
    dead_sink: Arc<dyn DeadLetterSink<T>>,
    throttle: Arc<Throttle>,
    intake: Arrivals<T>,
    intake_open: [bool; 3],
    settled_tx: Option<mpsc::Sender<Vec<Settled<T, R>>>>,
    cancel: CancellationToken,
    /// Fires `shutdown_grace` after `cancel`: in-flight calls are abandoned.
    abandon: CancellationToken,
    buffer: Buffer<T>,
    ready: VecDeque<Batch<T>>,
    /// Halves held aside while the other half of a failed batch is tested.
    searches: Searches<T>,
    /// Retried batches waiting out their backoff.
    backoffs: Backoffs<T>,
    /// Bytes of every accepted, unsettled item (buffered, queued, or in a call).
    held_bytes: usize,
    calls: JoinSet<CallDone<T, R>>,
    limit: Limit,
    size: Size,
    peak_calls: usize,
    next_start: Option<Instant>,
    ledger: Ledger,
    profile: StageProfile,
    metrics: Metrics,
    policy: OutcomePolicy,
    rng: SmallRng,
    cancelling: bool,
    last_was_probe: bool,
    /// Until when calls that timed out queued at the target still count as holding a slot
    /// there (see `complete`).
    phantoms: Vec<Instant>,
    /// When recent calls came back served (each freed a slot at the target), and whether a
    /// phantom has been placed in that slot (see `hold_abandoned`).
    served_ends: VecDeque<(Instant, bool)>,
    /// When the calls in flight (probes excepted) left, with how many left at each instant:
    /// the oldest tells slow start whether a call's round is complete.
    out_since: BTreeMap<Instant, usize>,
    /// Items the loop holds outside the buffer per priority cap: a full batch twice over.
    buffer_cap: usize,
    /// When `dispatch.deadline` passes, if one is set.
    deadline: Option<Instant>,
}

impl<T, R, H> Core<T, R, H>
where
    T: Send + Sync + 'static,
    R: Send + 'static,
    H: Handler<T, R>,
{
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        cfg: EngineConfig,
        handler: Arc<H>,
        dead_sink: Arc<dyn DeadLetterSink<T>>,
        throttle: Arc<Throttle>,
        intake: Arrivals<T>,
        settled_tx: Option<mpsc::Sender<Vec<Settled<T, R>>>>,
        cancel: CancellationToken,
        total: Option<u64>,
    ) -> Self {
        let size = Size::new(&cfg.sizing, cfg.max_items());
        let limit = Limit::new(&cfg.dispatch.concurrency, size.get());
        let rng = match cfg.seed {
            Some(seed) => SmallRng::seed_from_u64(seed),
            None => SmallRng::from_entropy(),
        };
        let mut ledger = Ledger::new();
        ledger.set_total(total);
        ledger.tick(Instant::now(), limit.get(), size.get());
        Core {
            metrics: Metrics::new(&cfg.name),
            buffer_cap: cfg.max_items().saturating_mul(2).max(INTAKE_BURST),
            handler,
            dead_sink,
            throttle,
            intake,
            intake_open: [true; 3],
            settled_tx,
            cancel,
            abandon: CancellationToken::new(),
            buffer: Buffer::new(),
            ready: VecDeque::new(),
            searches: Searches::new(),
            backoffs: Backoffs::new(),
            held_bytes: 0,
            calls: JoinSet::new(),
            limit,
            size,
            peak_calls: 0,
            next_start: None,
            ledger,
            profile: StageProfile::new("dispatch", 1),
            policy: OutcomePolicy::new(&cfg.retry),
            rng,
            cancelling: false,
            last_was_probe: false,
            phantoms: Vec::new(),
            served_ends: VecDeque::new(),
            out_since: BTreeMap::new(),
            deadline: cfg.dispatch.deadline.map(|d| Instant::now() + d),
            cfg,
        }
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<Progress> {
        self.ledger.subscribe()
    }

    fn input_closed(&self) -> bool {
        !self.intake_open.iter().any(|o| *o)
    }

    fn queued_items(&self) -> usize {
        self.buffer.len()
            + self.ready.iter().map(Batch::len).sum::<usize>()
            + self.backoffs.items()
            + self.searches.items()
    }

    fn done(&self) -> bool {
        self.calls.is_empty()
            && (self.cancelling
                || (self.input_closed()
                    && self.buffer.is_empty()
                    && self.ready.is_empty()
                    && self.backoffs.is_empty()
                    && self.searches.is_empty()))
    }

    /// Whether intake of priority `p` may be read now.
    fn may_read(&self, p: Priority) -> bool {
        self.intake_open[p.index()]
            && !self.cancelling
            && self.held_bytes < self.cfg.flush.memory_limits().hard_limit
            && (p == Priority::High || self.buffer.len() < self.buffer_cap)
    }

    pub(super) async fn run(mut self) -> Result<Report, Error> {
        let mut tick = tokio::time::interval(self.cfg.progress_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let sleep = tokio::time::sleep_until(Instant::now());
        tokio::pin!(sleep);
        let cancel = self.cancel.clone();
        let abandon = self.abandon.clone();
        let grace = self.cfg.shutdown_grace;

        loop {
            let now = Instant::now();
            let wake = self.pump(now);
            if self.done() {
                break;
            }
            let has_wake = wake.is_some();
            let (read_h, read_m, read_l) = (
                self.may_read(Priority::High),
                self.may_read(Priority::Medium),
                self.may_read(Priority::Low),
            );
            let calls_pending = !self.calls.is_empty();
            let cancelling = self.cancelling;
            let [rx_l, rx_m, rx_h] = self.intake.receivers();
            if let Some(at) = wake {
                if sleep.deadline() != at {
                    sleep.as_mut().reset(at);
                }
            }
            tokio::select! {
                biased;
                _ = cancel.cancelled(), if !cancelling => {
                    self.begin_cancel().await?;
                    let abandon = abandon.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(grace).await;
                        abandon.cancel();
                    });
                }
                Some(joined) = self.calls.join_next(), if calls_pending => {
                    match joined {
                        Ok(done) => self.complete(done).await?,
                        // The call task catches panics and returns its batch; a join error
                        // means the runtime itself is shutting down.
                        Err(e) => return Err(Error::Task(e.to_string())),
                    }
                }
                item = rx_h.recv(), if read_h => self.take(Priority::High, item),
                item = rx_m.recv(), if read_m => self.take(Priority::Medium, item),
                item = rx_l.recv(), if read_l => self.take(Priority::Low, item),
                _ = &mut sleep, if has_wake => {}
                _ = tick.tick() => self.on_tick(),
            }
        }
        self.finish()
    }

    /// Accepts `first` and whatever else is waiting on that channel, up to a burst, and
    /// frees their room in the intake.
    fn take(&mut self, p: Priority, first: Option<Arrival<T>>) {
        let now = Instant::now();
        let Some(first) = first else {
            self.intake_open[p.index()] = false;
            return;
        };
        let mut n = self.accept(first, now);
        while n < INTAKE_BURST && self.may_read(p) {
            match self.intake.try_recv(p.index()) {
                Ok(arrival) => n += self.accept(arrival, now),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.intake_open[p.index()] = false;
                    break;
                }
            }
        }
        self.intake.taken(p.index(), n);
        self.ledger.accept(n as u64);
    }

    /// Buffers the items of one intake message; how many there were.
    fn accept(&mut self, arrival: Arrival<T>, now: Instant) -> usize {
        let (n, bytes) = arrival.buffer_into(&mut self.buffer, now);
        self.held_bytes += bytes;
        n
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        let (limit, size) = (self.limit.get(), self.size.get());
        self.ledger.tick(now, limit, size);
        self.profile.sample_depth(self.queued_items() as u64);
        self.metrics.concurrency.set(limit as f64);
        self.metrics.batch_size.set(size as f64);
        self.metrics
            .in_flight
            .set(self.ledger.snapshot().in_flight as f64);
    }

    /// Starts every call that may start now; returns when the loop must wake up at the
    /// latest if nothing else happens.
    fn pump(&mut self, now: Instant) -> Option<Instant> {
        if self.cancelling {
            return None;
        }
        while let Some(batch) = self.backoffs.pop_due(now) {
            self.ready.push_back(batch);
        }
        let mut wake = self.backoffs.next_due();
        let draining = self.input_closed();
        self.phantoms.retain(|until| *until > now);
        if let Some(first) = self.phantoms.iter().min() {
            wake = earliest(wake, *first);
        }
        while self.calls.len() + self.phantoms.len() < self.limit.get() {
            if let Some(open) = self.throttle.gated_until(now) {
                wake = earliest(wake, open);
                break;
            }
            if let Some(at) = self.next_start.filter(|t| *t > now) {
                wake = earliest(wake, at);
                break;
            }
            let target = self.fresh_size();
            let trigger =
                self.buffer
                    .trigger(now, target, &self.cfg.flush, self.held_bytes, draining);
            let fresh_first = trigger.is_some()
                && match (self.ready.front(), self.buffer.top_priority()) {
                    (Some(r), Some(top)) => top > r.priority(),
                    (None, _) => true,
                    (Some(_), None) => false,
                };
            let batch = if fresh_first {
                self.cut_fresh(target)
            } else {
                self.ready.pop_front().map(|b| self.top_up(b, target))
            };
            let Some(batch) = batch else {
                // Nothing may leave yet: wake when the oldest waiting item must.
                if let Some(deadline) = self.buffer.deadline(&self.cfg.flush) {
                    wake = earliest(wake, deadline);
                }
                break;
            };
            if let Err(at) = self.throttle.acquire(batch.len(), now) {
                // Not sent yet: it waits at the front, a probe still (under a paced rate
                // nearly every cut batch waits a moment; returning the probe each time would
                // mean no probe ever leaves).
                self.ready.push_front(batch);
                wake = earliest(wake, at);
                break;
            }
            self.spawn_call(batch, now);
        }
        wake
    }

    /// Cuts a fresh batch of the confirmed size, or of the probe size when the controller
    /// wants a probe and enough items wait (or input ended).
    fn cut_fresh(&mut self, target: usize) -> Option<Batch<T>> {
        let max_bytes = self.cfg.flush.max_bytes.get();
        // With a single slot, every other call is an ordinary one, so that the concurrency
        // controller always has comparable calls to learn from.
        // Once input has ended, the size learned by a probe serves only what is left, while
        // a probe over a hidden limit holds a slot until its timeout: no probes once fewer
        // than `PROBE_ROUNDS_LEFT` rounds of calls are left.
        let rounds_left = self.limit.get().max(1) * target.max(1) * PROBE_ROUNDS_LEFT;
        let may_probe = (!self.input_closed() || self.buffer.len() >= rounds_left)
            && self.limit.may_probe()
            && !self.limit.reprobing()
            && (self.limit.get() > 1 || !std::mem::take(&mut self.last_was_probe));
        if let (Size::Adaptive(c), true) = (&mut self.size, may_probe) {
            if let Some(want) = c.wanted_probe() {
                if self.buffer.len() >= want {
                    if let Some(n) = c.probe() {
                        let mut batch = self.buffer.cut(n, max_bytes)?;
                        batch.probe = batch.len() == n;
                        if !batch.probe {
                            c.cancel_probe();
                        }
                        self.last_was_probe = batch.probe;
                        return Some(batch);
                    }
                }
            }
        }
        self.buffer.cut(target, max_bytes)
    }

    /// What a fresh batch carries now (see [`Size::fresh`]).
    fn fresh_size(&self) -> usize {
        self.size.fresh(self.limit.reprobing())
    }

    /// A call sent at `sent` is back: it leaves the calls in flight (a probe was never
    /// counted there). Whether a call sent no later is still out: its slow-start round is
    /// not complete.
    fn call_back(&mut self, sent: Instant, probe: bool) -> bool {
        if !probe {
            if let btree_map::Entry::Occupied(mut e) = self.out_since.entry(sent) {
                *e.get_mut() -= 1;
                if *e.get() == 0 {
                    e.remove();
                }
            }
        }
        self.out_since.keys().next().is_some_and(|&t| t <= sent)
    }

    fn spawn_call(&mut self, mut batch: Batch<T>, now: Instant) {
        for item in &mut batch.items {
            item.attempts += 1;
        }
        let n = batch.len();
        self.ledger.call_started(n as u64);
        self.metrics.calls.increment(1);
        self.metrics.batch_items.record(n as f64);
        if let Some(pause) = self.cfg.dispatch.pause {
            self.next_start = Some(now + pause);
        }
        batch.sent_with = self.calls.len() + 1 + self.phantoms.len();
        batch.sent_size = self.fresh_size();
        batch.sent_behind = !self.phantoms.is_empty();
        batch.sent_at = Some(now);
        if !batch.probe {
            *self.out_since.entry(now).or_default() += 1;
        }
        let handler = Arc::clone(&self.handler);
        let timeout = self.cfg.dispatch.timeout;
        let abandon = self.abandon.clone();
        self.calls
            .spawn(call::call(handler, batch, timeout, abandon));
        let in_flight = self.calls.len();
        self.peak_calls = self.peak_calls.max(in_flight);
        self.profile.set_busy(true, now);
        self.limit.on_dispatch(in_flight, now);
    }

    /// Settles or reschedules the items of a finished call, as the outcome policy decides.
    async fn complete(&mut self, done: CallDone<T, R>) -> Result<(), Error> {
        let now = Instant::now();
        let CallDone {
            mut batch,
            outcome,
            latency,
        } = done;
        let (n, batch_sent, batch_flight) = (batch.len(), batch.sent_size, batch.sent_with);
        let probe = std::mem::take(&mut batch.probe);
        let suspects = batch.suspects.take();
        if let Some(sent) = batch.sent_at.take() {
            let older_out = self.call_back(sent, probe);
            self.limit.on_older_out(older_out);
        }
        let end = outcome.end();
        self.searches.note_call(end == CallEnd::Split);
        let timed_out = end == CallEnd::TimedOut;
        self.ledger.call_finished(n as u64, timed_out);
        self.profile.record(latency, n as u64);
        self.metrics.latency.record(latency.as_secs_f64());
        if timed_out {
            self.metrics.timeouts.increment(1);
        }
        if self.calls.is_empty() {
            self.profile.set_busy(false, now);
        }
        // Only full batches of the confirmed size are comparable for the latency baseline.
        // (A larger one, cut before the size came down, is slower for its size.)
        let fresh = self.fresh_size();
        let comparable = !probe && (n as f64) >= 0.9 * fresh as f64 && n <= fresh;
        let state = BatchState {
            len: n,
            level_failures: batch.level_failures,
            probe,
            comparable,
            cancelling: self.cancelling,
            // Overload only for batches no larger than one that went through: a larger one
            // (a probe sent back after a 429, or any batch before the first success, when
            // the first size may be over the target's limit) that times out says the size is
            // too large. A batch sent back whole after an overload keeps its items while the
            // size may have shrunk since: its next timeout is queueing all the same.
            // At the lowest limit a timeout is size, unless the call queued behind calls that
            // timed out before it (whose work the target was still doing).
            crowded: batch.sent_with > 1
                && (self.limit.can_decrease() || batch.sent_behind)
                && self.size.went_through(n),
            past_deadline: self.deadline.is_some_and(|d| now >= d),
        };
        let decision = self.policy.on_call(end, state);
        if let Some(after) = decision.pause {
            self.throttle.pause_until(now + after);
        }
        let sent_at = now.checked_sub(latency).unwrap_or(now);
        match decision.rate {
            RateFeedback::Nothing => {}
            RateFeedback::Accepted => self.throttle.accepted(now),
            RateFeedback::Limited { after } => self.throttle.limited(sent_at, now, after),
        }
        // A call that timed out queued because a re-probe of the concurrency ceiling sent
        // one call too many is the concurrency's to answer (it backs off), not the size's.
        let size_feedback = match decision.size {
            SizeFeedback::Overload if self.limit.sent_in_reprobe(sent_at) => SizeFeedback::Nothing,
            feedback => feedback,
        };
        self.size.set_calm(self.limit.calm());
        self.size.learn(size_feedback, n, latency, probe);
        // The policy answers `PerItem` for exactly the calls that returned per-item results.
        let (results, reason) = match outcome.into_results(self.cfg.dispatch.timeout) {
            Ok(results) => (results, String::new()),
            Err(reason) => (Vec::new(), reason),
        };
        let mut out = Outcomes::default();
        if let Some(tag) = suspects.filter(|_| decision.action != Action::Isolate) {
            self.after_test(tag, decision.action == Action::PerItem, &mut out);
        }
        match decision.action {
            Action::PerItem => self.settle_items(batch, results, &mut out, now),
            Action::Isolate => self.isolate(batch, suspects, &mut out),
            Action::Retry { after } => self.retry(batch, after, &reason, &mut out, now),
            Action::Requeue { after } => self.requeue(batch, after, &mut out, now),
            Action::Split { charge } => self.split(batch, charge, &mut out),
            Action::Recut => self.recut(batch),
            Action::DeadLetter => out.dead_all(batch.into_items(), &reason),
            Action::Cancel => out.cancelled.extend(batch.into_items()),
        }
        let size = self.fresh_size();
        if end == CallEnd::Done {
            self.limit.on_served(latency, now);
            self.served_ends.push_back((now, false));
            if self.served_ends.len() > SERVED_ENDS_KEPT {
                self.served_ends.pop_front();
            }
            // A full batch of another size (cut before the size changed, a probe) held a
            // slot like any other: slow start counts it.
            if decision.signal == Signal::Neutral && (n as f64) >= 0.9 * batch_sent as f64 {
                self.limit.on_ack();
            }
        }
        if decision.signal == Signal::Overload {
            self.limit.on_overload_flight(batch_flight);
        }
        // The abandoned call's own no-load round trip: the size it carried, not the one the
        // overload may cut fresh batches to.
        let abandoned_rtt = match decision.signal {
            Signal::Overload => self.limit.baseline(),
            _ => None,
        };
        self.limit.on_response(latency, decision.signal, now, size);
        if let Some(rtt) = abandoned_rtt {
            self.hold_abandoned(rtt, sent_at, now);
        }
        tracing::debug!(
            engine = %self.cfg.name, ?end, items = n, probe, crowded = state.crowded,
            latency_ms = latency.as_millis() as u64, signal = ?decision.signal,
            limit = self.limit.get(), size, in_flight = self.calls.len(),
            "call finished"
        );
        self.record(out, now).await
    }

    /// A call timed out queued: the target gave up on the call, not on its work. A
    /// gateway's 504 leaves the request queued or running behind it, so it still holds a
    /// slot there (a *phantom*) and the calls sent next would queue behind it and time out
    /// in turn. The abandoned calls drain as the target serves calls: one no-load round
    /// trip for the first, then one more per round trip for each `limit` of them (the limit
    /// the overload just cut to, the capacity the target showed), as a queue of abandoned
    /// work in front of `limit` slots does. (Each held a slot for one round trip from its
    /// own timeout once, which let calls out while a burst of abandoned calls still
    /// queued: on 8 slots, 14 abandoned calls hold them for about two round trips, and the
    /// calls sent after one timed out in turn.)
    ///
    /// The target's queue is first come, first served: a call that waited took the slot of
    /// a call that came back served after it was sent (`sent`). So each abandoned call is
    /// placed in the first such slot no other abandoned call took, and holds it for a
    /// round trip from then, if that is sooner: on 8 slots, 7 calls that waited behind 8
    /// served ones started when those came back, and finish half a round trip before the
    /// timeout plus a round trip (the engine idled its slots that long, 1 s of a 42 s job).
    fn hold_abandoned(&mut self, rtt: Duration, sent: Instant, now: Instant) {
        let lanes = u32::try_from(self.limit.get().max(1)).unwrap_or(u32::MAX);
        let first = now + rtt;
        let queued = self
            .phantoms
            .iter()
            .max()
            .map_or(first, |&last| first.max(last + rtt / lanes));
        let slot = self
            .served_ends
            .iter_mut()
            .find(|(at, taken)| *at > sent && !*taken);
        let until = match slot {
            Some((at, taken)) => {
                *taken = true;
                queued.min(*at + rtt).max(now)
            }
            None => queued,
        };
        self.phantoms.push(until);
    }

    /// Stop intake: cancel everything that is not in a call.
    async fn begin_cancel(&mut self) -> Result<(), Error> {
        self.cancelling = true;
        let mut out = Outcomes::default();
        self.intake.close();
        let mut late = 0u64;
        for i in 0..3 {
            while let Ok(arrival) = self.intake.try_recv(i) {
                for item in arrival.into_items() {
                    late += 1;
                    self.held_bytes += item.bytes();
                    out.cancelled.push(item);
                }
            }
            self.intake_open[i] = false;
        }
        self.ledger.accept(late);
        out.cancelled.extend(self.buffer.drain_all());
        for batch in self.ready.drain(..) {
            out.cancelled.extend(batch.into_items());
        }
        for batch in self.backoffs.drain() {
            out.cancelled.extend(batch.into_items());
        }
        for batch in self.searches.drain() {
            out.cancelled.extend(batch.into_items());
        }
        tracing::info!(engine = %self.cfg.name, cancelled = out.cancelled.len(), in_calls = self.calls.len(), "cancelling");
        self.record(out, Instant::now()).await
    }

    /// Writes dead letters, updates the ledger and metrics, emits settled outcomes.
    async fn record(&mut self, out: Outcomes<T, R>, now: Instant) -> Result<(), Error> {
        let (retries, splits) = (out.retries, out.splits);
        if retries + splits > 0 {
            self.ledger.note(retries, splits);
            self.metrics.retries.increment(retries);
            self.metrics.splits.increment(splits);
        }
        if out.nothing_ended() {
            return Ok(());
        }
        if !out.dead.is_empty() {
            self.dead_sink.write(&out.dead).await?;
        }
        self.held_bytes = self.held_bytes.saturating_sub(out.bytes());
        let (s, d, c) = out.counts();
        self.ledger.settle(s, d, c, now);
        self.metrics.succeeded.increment(s);
        self.metrics.dead.increment(d);
        self.metrics.cancelled.increment(c);
        if let Some(tx) = &self.settled_tx {
            if tx.send(out.into_settled()).await.is_err() {
                self.settled_tx = None;
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Report, Error> {
        let now = Instant::now();
        self.profile.set_busy(false, now);
        self.ledger.tick(now, self.limit.get(), self.size.get());
        self.ledger.finish(now);
        let progress = self.ledger.snapshot();
        let elapsed = now.saturating_duration_since(self.ledger.started());
        let secs = elapsed.as_secs_f64();
        Ok(Report {
            items_per_sec: if secs > 0.0 {
                progress.ended() as f64 / secs
            } else {
                0.0
            },
            dispatch: self.profile.report(now),
            final_concurrency: self.limit.get(),
            final_batch_size: self.size.get(),
            learned_rate: self.throttle.learned_rate(),
            peak_concurrency: self.peak_calls,
            dead_letters: self.dead_sink.describe(),
            elapsed,
            progress,
        })
    }
}

fn earliest(a: Option<Instant>, b: Instant) -> Option<Instant> {
    Some(a.map_or(b, |a| a.min(b)))
}
