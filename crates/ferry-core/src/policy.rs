//! The outcome policy: what becomes of a batch, and of each of its items, after a handler
//! call. One pure decision, like tower's `retry::Policy`: the engine's loop carries the
//! action out (moves items, charges failures, schedules backoffs, feeds the controllers);
//! this module only decides, so every rule is tested here on its own, row by row.
//!
//! The rules, by how the call ended ("cancelling" means the run is being cancelled):
//!
//! | call ended with          | items                                              | gate            | concurrency signal | batch size       | rate      |
//! |--------------------------|----------------------------------------------------|-----------------|--------------------|------------------|-----------|
//! | `Done`                   | each by its own outcome (table below)              | –               | `Ok` if comparable, else `Neutral` | success | accepted |
//! | `Throttled { after }`    | cancelling: cancel; past the deadline: dead-letter; else requeue whole, uncharged | closed for `after` | `Neutral` | probe returned | limited |
//! | `Retry { after }`        | cancelling: cancel; no `after`, several items and `split_after` whole-batch failures: charge and split; else charge and retry whole | closed for `after` | `Backpressure` | probe returned | accepted |
//! | `Split`                  | cancelling: cancel; a probe: recut; several items: isolate the unnamed item; one: dead-letter | – | `Neutral` | too large if probe | accepted |
//! | `TooLarge`, crowded      | requeue whole, uncharged                           | –               | `Overload`         | headroom         | accepted  |
//! | `TooLarge`               | as `Split`                                         | –               | `Neutral`          | too large        | accepted  |
//! | handler panicked         | as `Split`                                         | –               | `Neutral`          | probe returned   | –         |
//! | `Fatal`                  | dead-letter (even when cancelling)                 | –               | `Neutral`          | probe returned   | accepted  |
//! | per-attempt timeout, crowded | requeue whole, uncharged                       | –               | `Overload`         | headroom         | –         |
//! | per-attempt timeout      | a probe: recut; several items: as `Split`; one: as `Retry` without `after` | –       | `Backpressure`     | too large        | –         |
//! | abandoned at shutdown    | cancel                                             | –               | `Neutral`          | probe returned   | –         |
//!
//! *Back-pressure is not failure.* A `Throttled` call (429, 503, a rate-limit or budget error
//! in a 200 body) is the target asking for time: its items go back whole and uncharged, so
//! no item is ever dead-lettered for it, only delayed (bounded by `dispatch.deadline` when
//! one is set), and the target's rate is learned from it.
//!
//! *Queueing is not size.* A gateway timeout (504) or a per-attempt timeout of a call that
//! left while other calls were in flight, with an adaptive concurrency limit that can still
//! come down (*crowded*), is first read as overload: the limit is cut (`Overload`) and
//! the batch goes back whole and uncharged. Only a timeout of a call that was alone, or at
//! the lowest limit, or of a probe, says the batch is too large: then it is split and the
//! batch size learns; a probe's items are *recut* instead (back to the front of the queue,
//! uncharged, to leave in batches of the confirmed size, the size known to go through,
//! where a probe's halves would be smaller calls, each costing the target a request). Past
//! the deadline a crowded timeout is read as size again, so the deadline always ends the
//! run. An overload also tells the batch size how long a call may
//! take, queueing included (*headroom*): fresh batches are sized to leave part of that
//! time for waiting at the target, so queueing shows as latency before it costs a timeout.

//! Item outcomes inside a `Done`: `Ok` succeeds, `Fatal` and a missing outcome dead-letter,
//! `Retry` charges the item one failure and retries it (with the other retried items of the
//! call, after a backoff) unless it is out of attempts (dead-letter) or the run is being
//! cancelled (cancel).
//!
//! *Charging* a failure adds one to the batch's whole-batch failures and to each item's
//! failures; an item with `max_attempts` failures is dead-lettered instead of retried. A split
//! refunds the batch's whole-batch failures to its items, so an item that shared a batch with
//! a poison item is not charged for it. The backoff is computed from the most-failed item of
//! what is retried, and a server's `Retry-After` is its floor.

use std::time::Duration;

use rand::Rng;

use crate::adaptive::Signal;
use crate::retry::RetryPolicy;

/// How a handler call ended, as the rules see it (results and reasons stay with the engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallEnd {
    /// The handler returned per-item outcomes.
    Done,
    /// The target asked for time; `after` is its `Retry-After`.
    Throttled {
        /// The server's delay before any further request.
        after: Option<Duration>,
    },
    /// The handler asked to retry the whole batch; `after` is the server's `Retry-After`.
    Retry {
        /// The server's delay before any further request.
        after: Option<Duration>,
    },
    /// An unnamed item broke the batch.
    Split,
    /// The batch is too large for the target.
    TooLarge,
    /// Every item failed for good.
    Fatal,
    /// The handler panicked.
    Panicked,
    /// The per-attempt timeout passed.
    TimedOut,
    /// The shutdown grace ran out while the call was in flight.
    Abandoned,
}

/// The finished call's batch, as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchState {
    /// Items in the batch.
    pub(crate) len: usize,
    /// Whole-batch failures charged to this batch before this call.
    pub(crate) level_failures: u32,
    /// Whether the batch carried the batch-size controller's probe size.
    pub(crate) probe: bool,
    /// Whether the batch was a full batch of the confirmed size: only those tell the
    /// concurrency controller anything about latency under load.
    pub(crate) comparable: bool,
    /// Whether the run is being cancelled.
    pub(crate) cancelling: bool,
    /// Whether other calls were in flight when this one left and the concurrency limit can
    /// still come down: a timeout may then be queueing at the target rather than size.
    pub(crate) crowded: bool,
    /// Whether `dispatch.deadline` has passed.
    pub(crate) past_deadline: bool,
}

/// What happens to the batch's items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Each item ends as its own outcome says ([`OutcomePolicy::on_item`]).
    PerItem,
    /// Charge one failure, dead-letter the items out of attempts and retry the rest as one
    /// batch after a backoff of at least `after`.
    Retry {
        /// The floor of the backoff (the server's `Retry-After`).
        after: Option<Duration>,
    },
    /// Send the batch again, whole, after at least `after`, charging nobody: the target asked
    /// for time or was overloaded.
    Requeue {
        /// The floor of the wait (the server's `Retry-After`).
        after: Option<Duration>,
    },
    /// Split the batch into smaller ones that go out before anything else, charging one
    /// failure first when `charge` is set (the split refunds it to the items).
    Split {
        /// Whether a whole-batch failure is charged before the split.
        charge: bool,
    },
    /// A probe (a size larger than the confirmed one) proved too large: its items go back to
    /// the front of the queue, charging nobody, to leave again in batches of the confirmed
    /// size (halves of a probe would be calls smaller than the size known to go through).
    Recut,
    /// The batch failed as a whole naming no item: search it for the one item at fault,
    /// testing a part of the suspects at a time in calls topped up with fresh items, while
    /// other calls go on (`engine::isolate`), charging nobody.
    Isolate,
    /// Dead-letter every item.
    DeadLetter,
    /// Cancel every item.
    Cancel,
}

/// What the batch-size controller learns from the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SizeFeedback {
    /// Nothing.
    Nothing,
    /// The call says nothing about size: a probe is handed back.
    ReturnProbe,
    /// The batch went through.
    Success,
    /// The batch was too large.
    TooLarge,
    /// A batch of the confirmed size timed out while queued: batches must leave room in the
    /// target's timeout for queueing.
    Overload,
}

/// What the learned request rate hears about the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RateFeedback {
    /// Nothing (the call never got an answer).
    Nothing,
    /// The target accepted the call (whatever became of its items).
    Accepted,
    /// The target refused the call for its rate, with the `Retry-After` it gave, if any.
    Limited {
        /// The target's `Retry-After`.
        after: Option<Duration>,
    },
}

/// The decision for one finished call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    /// What happens to the items.
    pub(crate) action: Action,
    /// Close the shared `Retry-After` gate for this long.
    pub(crate) pause: Option<Duration>,
    /// What the concurrency controller is told.
    pub(crate) signal: Signal,
    /// What the batch-size controller is told.
    pub(crate) size: SizeFeedback,
    /// What the learned request rate is told.
    pub(crate) rate: RateFeedback,
}

/// How one item inside a `Done` call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ItemEnd {
    /// `ItemOutcome::Ok`.
    Ok,
    /// `ItemOutcome::Retry`.
    Retry,
    /// `ItemOutcome::Fatal`.
    Fatal,
    /// The handler returned fewer outcomes than items.
    Missing,
}

/// What happens to one item of a `Done` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ItemAction {
    /// It succeeded.
    Succeed,
    /// It goes into the batch of retried items.
    Retry,
    /// It is dead-lettered.
    DeadLetter,
    /// It is cancelled.
    Cancel,
}

/// The rules, with the two numbers they read from the [`RetryPolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutcomePolicy {
    max_attempts: u32,
    split_after: u32,
}

impl OutcomePolicy {
    /// The rules under `retry`'s attempts and split threshold.
    pub(crate) fn new(retry: &RetryPolicy) -> Self {
        OutcomePolicy {
            max_attempts: retry.max_attempts(),
            split_after: retry.split_after_failures(),
        }
    }

    /// Decides what becomes of a batch whose call ended with `end`.
    pub(crate) fn on_call(&self, end: CallEnd, batch: BatchState) -> Decision {
        let several = batch.len > 1;
        let overload = batch.crowded && !batch.probe && !batch.cancelling && !batch.past_deadline;
        let (action, signal) = match end {
            CallEnd::Done => {
                let signal = if batch.comparable {
                    Signal::Ok
                } else {
                    Signal::Neutral
                };
                (Action::PerItem, signal)
            }
            CallEnd::Throttled { after } => {
                let action = if batch.cancelling {
                    Action::Cancel
                } else if batch.past_deadline {
                    Action::DeadLetter
                } else {
                    Action::Requeue { after }
                };
                (action, Signal::Neutral)
            }
            CallEnd::Retry { after } => (self.retry_whole(batch, after), Signal::Backpressure),
            CallEnd::TooLarge | CallEnd::TimedOut if overload => {
                (Action::Requeue { after: None }, Signal::Overload)
            }
            // An ordinary batch (a size that went through before) that fails naming no item
            // almost always holds one bad item: searched for, not split for everyone.
            CallEnd::Split if several && !batch.probe && !batch.cancelling => {
                (Action::Isolate, Signal::Neutral)
            }
            CallEnd::Split | CallEnd::TooLarge if batch.probe && !batch.cancelling => {
                (Action::Recut, Signal::Neutral)
            }
            CallEnd::Split | CallEnd::TooLarge | CallEnd::Panicked => {
                (split_or_dead_letter(batch), Signal::Neutral)
            }
            CallEnd::Fatal => (Action::DeadLetter, Signal::Neutral),
            CallEnd::TimedOut if batch.probe && !batch.cancelling => {
                (Action::Recut, Signal::Backpressure)
            }
            CallEnd::TimedOut if several => (split_or_dead_letter(batch), Signal::Backpressure),
            CallEnd::TimedOut => (self.retry_whole(batch, None), Signal::Backpressure),
            CallEnd::Abandoned => (Action::Cancel, Signal::Neutral),
        };
        let size = match end {
            CallEnd::Done => SizeFeedback::Success,
            CallEnd::TooLarge | CallEnd::TimedOut if overload => SizeFeedback::Overload,
            CallEnd::TooLarge | CallEnd::TimedOut => SizeFeedback::TooLarge,
            // A `Split` of a probe says the size is too large; of an ordinary batch (a size
            // that went through before) it far more likely says a poison item is inside.
            CallEnd::Split if batch.probe => SizeFeedback::TooLarge,
            CallEnd::Split => SizeFeedback::Nothing,
            _ if batch.probe => SizeFeedback::ReturnProbe,
            _ => SizeFeedback::Nothing,
        };
        let pause = match end {
            CallEnd::Retry { after } | CallEnd::Throttled { after } => after,
            _ => None,
        };
        let rate = match end {
            CallEnd::Throttled { after } => RateFeedback::Limited { after },
            CallEnd::Done
            | CallEnd::Retry { .. }
            | CallEnd::Split
            | CallEnd::TooLarge
            | CallEnd::Fatal => RateFeedback::Accepted,
            CallEnd::Panicked | CallEnd::TimedOut | CallEnd::Abandoned => RateFeedback::Nothing,
        };
        Decision {
            action,
            pause,
            signal,
            size,
            rate,
        }
    }

    /// Decides what becomes of one item of a `Done` call; `failures` counts the failures
    /// charged to it, this one included.
    pub(crate) fn on_item(&self, end: ItemEnd, failures: u32, cancelling: bool) -> ItemAction {
        match end {
            ItemEnd::Ok => ItemAction::Succeed,
            ItemEnd::Fatal | ItemEnd::Missing => ItemAction::DeadLetter,
            ItemEnd::Retry if cancelling => ItemAction::Cancel,
            ItemEnd::Retry if self.exhausted(failures) => ItemAction::DeadLetter,
            ItemEnd::Retry => ItemAction::Retry,
        }
    }

    /// Whether an item with `failures` charged failures is out of attempts.
    pub(crate) fn exhausted(&self, failures: u32) -> bool {
        failures >= self.max_attempts
    }

    /// A retryable whole-batch failure: retried whole, or split once it has failed whole
    /// `split_after` times, unless the server said when to come back (then the batch is not
    /// at fault).
    fn retry_whole(&self, batch: BatchState, after: Option<Duration>) -> Action {
        if batch.cancelling {
            Action::Cancel
        } else if after.is_none() && batch.len > 1 && batch.level_failures + 1 >= self.split_after {
            Action::Split { charge: true }
        } else {
            Action::Retry { after }
        }
    }
}

/// The delay before retrying items whose most-failed one has `failures` charged failures,
/// never less than the server's `after`.
pub(crate) fn backoff<G: Rng>(
    retry: &RetryPolicy,
    failures: u32,
    after: Option<Duration>,
    rng: &mut G,
) -> Duration {
    retry.delay(failures, after, rng)
}

fn split_or_dead_letter(batch: BatchState) -> Action {
    if batch.cancelling {
        Action::Cancel
    } else if batch.len > 1 {
        Action::Split { charge: false }
    } else {
        Action::DeadLetter
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    const AFTER: Option<Duration> = Some(Duration::from_secs(7));

    /// 3 attempts, split after 2 whole-batch failures.
    fn policy() -> OutcomePolicy {
        let retry = RetryPolicy::new(
            NonZeroU32::new(3).unwrap(),
            Duration::from_millis(100),
            Duration::from_secs(30),
        )
        .unwrap()
        .split_after(2);
        OutcomePolicy::new(&retry)
    }

    /// A batch of `len` items with `level` earlier whole-batch failures; flags: p = probe,
    /// c = comparable, x = cancelling, q = crowded, d = past the deadline.
    fn batch(len: usize, level: u32, flags: &str) -> BatchState {
        BatchState {
            len,
            level_failures: level,
            probe: flags.contains('p'),
            comparable: flags.contains('c'),
            cancelling: flags.contains('x'),
            crowded: flags.contains('q'),
            past_deadline: flags.contains('d'),
        }
    }

    /// A call outcome on a batch, and the decision: action, gate, signal, size feedback.
    type Row = (
        CallEnd,
        BatchState,
        Action,
        Option<Duration>,
        Signal,
        SizeFeedback,
    );

    #[test]
    fn every_call_outcome_row() {
        use Action::*;
        use CallEnd as E;
        use Signal::{Backpressure as Bp, Neutral, Ok, Overload};
        use SizeFeedback as S;
        let split = Split { charge: false };
        let isolate = Isolate;
        let charge_split = Split { charge: true };
        #[rustfmt::skip]
        let table: &[Row] = &[
            // Done: per item; only comparable batches teach the latency baseline.
            (E::Done, batch(10, 0, "c"), PerItem, None, Ok, S::Success),
            (E::Done, batch(10, 0, ""), PerItem, None, Neutral, S::Success),
            (E::Done, batch(10, 0, "p"), PerItem, None, Neutral, S::Success),
            (E::Done, batch(10, 0, "cx"), PerItem, None, Ok, S::Success),
            // Retry without Retry-After: retried whole, split at the second whole failure.
            (E::Retry { after: None }, batch(10, 0, "c"), Retry { after: None }, None, Bp, S::Nothing),
            (E::Retry { after: None }, batch(10, 1, "c"), charge_split, None, Bp, S::Nothing),
            (E::Retry { after: None }, batch(1, 5, ""), Retry { after: None }, None, Bp, S::Nothing),
            (E::Retry { after: None }, batch(10, 0, "p"), Retry { after: None }, None, Bp, S::ReturnProbe),
            (E::Retry { after: None }, batch(10, 1, "x"), Cancel, None, Bp, S::Nothing),
            // Retry-After: never split (the batch is not at fault); the gate closes.
            (E::Retry { after: AFTER }, batch(10, 0, ""), Retry { after: AFTER }, AFTER, Bp, S::Nothing),
            (E::Retry { after: AFTER }, batch(10, 4, ""), Retry { after: AFTER }, AFTER, Bp, S::Nothing),
            (E::Retry { after: AFTER }, batch(10, 0, "p"), Retry { after: AFTER }, AFTER, Bp, S::ReturnProbe),
            (E::Retry { after: AFTER }, batch(10, 0, "x"), Cancel, AFTER, Bp, S::Nothing),
            // Split: an ordinary batch is searched for the item at fault, a probe is recut, a
            // single item is the culprit. Size learns only from a probe.
            (E::Split, batch(10, 0, ""), isolate, None, Neutral, S::Nothing),
            (E::Split, batch(10, 0, "p"), Recut, None, Neutral, S::TooLarge),
            (E::Split, batch(1, 0, ""), DeadLetter, None, Neutral, S::Nothing),
            (E::Split, batch(10, 0, "x"), Cancel, None, Neutral, S::Nothing),
            // TooLarge: as Split, and the size always learns.
            (E::TooLarge, batch(10, 0, ""), split, None, Neutral, S::TooLarge),
            (E::TooLarge, batch(10, 0, "p"), Recut, None, Neutral, S::TooLarge),
            (E::TooLarge, batch(10, 0, "px"), Cancel, None, Neutral, S::TooLarge),
            (E::TooLarge, batch(2, 0, "p"), Recut, None, Neutral, S::TooLarge),
            (E::TooLarge, batch(10, 0, "x"), Cancel, None, Neutral, S::TooLarge),
            // A panic: as Split; a probe is handed back.
            (E::Panicked, batch(10, 0, ""), split, None, Neutral, S::Nothing),
            (E::Panicked, batch(1, 0, "p"), DeadLetter, None, Neutral, S::ReturnProbe),
            (E::Panicked, batch(10, 0, "x"), Cancel, None, Neutral, S::Nothing),
            // Fatal: every item dead-lettered, even while cancelling.
            (E::Fatal, batch(10, 0, ""), DeadLetter, None, Neutral, S::Nothing),
            (E::Fatal, batch(10, 0, "px"), DeadLetter, None, Neutral, S::ReturnProbe),
            // Timeout: several items split (no charge), a probe recut; one item retried;
            // back-pressure.
            (E::TimedOut, batch(10, 0, "c"), split, None, Bp, S::TooLarge),
            (E::TimedOut, batch(10, 3, "p"), Recut, None, Bp, S::TooLarge),
            (E::TimedOut, batch(1, 0, ""), Retry { after: None }, None, Bp, S::TooLarge),
            (E::TimedOut, batch(1, 9, ""), Retry { after: None }, None, Bp, S::TooLarge),
            (E::TimedOut, batch(10, 0, "x"), Cancel, None, Bp, S::TooLarge),
            (E::TimedOut, batch(1, 0, "x"), Cancel, None, Bp, S::TooLarge),
            // Throttled: back whole and uncharged, never split, never a probe's fault; the gate
            // closes; only the deadline dead-letters (the target asked for time, nothing else).
            (E::Throttled { after: AFTER }, batch(10, 0, "c"), Requeue { after: AFTER }, AFTER, Neutral, S::Nothing),
            (E::Throttled { after: None }, batch(10, 9, ""), Requeue { after: None }, None, Neutral, S::Nothing),
            (E::Throttled { after: AFTER }, batch(1, 99, "q"), Requeue { after: AFTER }, AFTER, Neutral, S::Nothing),
            (E::Throttled { after: AFTER }, batch(10, 0, "p"), Requeue { after: AFTER }, AFTER, Neutral, S::ReturnProbe),
            (E::Throttled { after: AFTER }, batch(10, 0, "x"), Cancel, AFTER, Neutral, S::Nothing),
            (E::Throttled { after: AFTER }, batch(10, 0, "d"), DeadLetter, AFTER, Neutral, S::Nothing),
            // Crowded timeouts are overload: concurrency is cut, the batch goes back whole.
            (E::TooLarge, batch(10, 0, "cq"), Requeue { after: None }, None, Overload, S::Overload),
            (E::TimedOut, batch(10, 2, "q"), Requeue { after: None }, None, Overload, S::Overload),
            (E::TimedOut, batch(1, 0, "q"), Requeue { after: None }, None, Overload, S::Overload),
            // ... unless it was a probe, the run is cancelling, or the deadline passed: size.
            (E::TooLarge, batch(10, 0, "pq"), Recut, None, Neutral, S::TooLarge),
            (E::TimedOut, batch(10, 0, "pq"), Recut, None, Bp, S::TooLarge),
            (E::TooLarge, batch(10, 0, "qx"), Cancel, None, Neutral, S::TooLarge),
            (E::TooLarge, batch(10, 0, "qd"), split, None, Neutral, S::TooLarge),
            (E::TimedOut, batch(10, 0, "qd"), split, None, Bp, S::TooLarge),
            // Abandoned at shutdown: cancelled.
            (E::Abandoned, batch(10, 0, "x"), Cancel, None, Neutral, S::Nothing),
            (E::Abandoned, batch(10, 0, "px"), Cancel, None, Neutral, S::ReturnProbe),
        ];
        let p = policy();
        for (i, &(end, state, action, pause, signal, size)) in table.iter().enumerate() {
            let got = p.on_call(end, state);
            assert_eq!(
                (got.action, got.pause, got.signal, got.size),
                (action, pause, signal, size),
                "row {i}: {end:?} on {state:?}"
            );
        }
    }

    #[test]
    fn the_rate_hears_answers_and_refusals() {
        use CallEnd as E;
        use RateFeedback::*;
        let p = policy();
        #[rustfmt::skip]
        let table = [
            (E::Throttled { after: AFTER }, Limited { after: AFTER }),
            (E::Throttled { after: None }, Limited { after: None }),
            (E::Done, Accepted),
            (E::Retry { after: None }, Accepted),
            (E::Split, Accepted),
            (E::TooLarge, Accepted),
            (E::Fatal, Accepted),
            (E::TimedOut, Nothing),
            (E::Panicked, Nothing),
            (E::Abandoned, Nothing),
        ];
        for (end, want) in table {
            for flags in ["", "q", "x", "d", "p"] {
                assert_eq!(
                    p.on_call(end, batch(5, 0, flags)).rate,
                    want,
                    "{end:?} {flags}"
                );
            }
        }
    }

    #[test]
    fn split_after_zero_splits_at_the_first_whole_failure() {
        let retry = RetryPolicy::default().split_after(0);
        let p = OutcomePolicy::new(&retry);
        let d = p.on_call(CallEnd::Retry { after: None }, batch(2, 0, ""));
        assert_eq!(d.action, Action::Split { charge: true });
        let retry = RetryPolicy::default().split_after(3);
        let p = OutcomePolicy::new(&retry);
        let d = p.on_call(CallEnd::Retry { after: None }, batch(2, 1, ""));
        assert_eq!(d.action, Action::Retry { after: None });
        let d = p.on_call(CallEnd::Retry { after: None }, batch(2, 2, ""));
        assert_eq!(d.action, Action::Split { charge: true });
    }

    #[test]
    fn every_item_outcome_row() {
        use ItemAction::*;
        #[rustfmt::skip]
        let table: &[(ItemEnd, u32, bool, ItemAction)] = &[
            (ItemEnd::Ok, 0, false, Succeed),
            (ItemEnd::Ok, 7, true, Succeed),
            (ItemEnd::Fatal, 0, false, DeadLetter),
            (ItemEnd::Fatal, 0, true, DeadLetter),
            (ItemEnd::Missing, 0, false, DeadLetter),
            (ItemEnd::Missing, 0, true, DeadLetter),
            // 3 attempts: the first two failures are retried, the third is final.
            (ItemEnd::Retry, 1, false, Retry),
            (ItemEnd::Retry, 2, false, Retry),
            (ItemEnd::Retry, 3, false, DeadLetter),
            (ItemEnd::Retry, 4, false, DeadLetter),
            (ItemEnd::Retry, 1, true, Cancel),
            (ItemEnd::Retry, 3, true, Cancel),
        ];
        let p = policy();
        for (i, &(end, failures, cancelling, want)) in table.iter().enumerate() {
            assert_eq!(
                p.on_item(end, failures, cancelling),
                want,
                "row {i}: {end:?} with {failures} failures, cancelling {cancelling}"
            );
        }
        assert!(!p.exhausted(2));
        assert!(p.exhausted(3));
    }

    #[test]
    fn backoff_is_floored_by_retry_after() {
        use rand::SeedableRng;
        let retry = RetryPolicy::default();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        for failures in 1..8 {
            assert!(backoff(&retry, failures, AFTER, &mut rng) >= Duration::from_secs(7));
            assert!(backoff(&retry, failures, None, &mut rng) <= Duration::from_secs(30));
        }
    }
}
