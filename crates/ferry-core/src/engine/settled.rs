//! How items end: the public [`Settled`] value a run emits per item, and [`Outcomes`], what
//! the event loop collects from one completion before it writes dead letters, updates the
//! ledger and emits.

use std::time::SystemTime;

use tokio::time::Instant;

use crate::deadletter::DeadLetter;
use crate::item::{Item, Key};

/// How one item ended.
#[derive(Debug)]
pub enum Settled<T, R> {
    /// A handler completed it with `result`.
    Succeeded {
        /// The item.
        item: Item<T>,
        /// What the handler returned for it.
        result: R,
    },
    /// It went to the dead-letter sink (already written there when this is emitted).
    DeadLettered(DeadLetter<T>),
    /// Cancellation ended it before it was done.
    Cancelled(Item<T>),
}

impl<T, R> Settled<T, R> {
    /// The item's key.
    pub fn key(&self) -> &Key {
        match self {
            Settled::Succeeded { item, .. } | Settled::Cancelled(item) => item.key(),
            Settled::DeadLettered(d) => d.item.key(),
        }
    }
}

/// What one completion settles, and the retry and split decisions it made.
pub(super) struct Outcomes<T, R> {
    pub(super) succeeded: Vec<(Item<T>, R)>,
    /// Succeeded items already dropped (nobody asked for settled outcomes): how many, and
    /// their bytes.
    dropped: (u64, usize),
    pub(super) dead: Vec<DeadLetter<T>>,
    pub(super) cancelled: Vec<Item<T>>,
    pub(super) retries: u64,
    pub(super) splits: u64,
}

impl<T, R> Default for Outcomes<T, R> {
    fn default() -> Self {
        Outcomes {
            succeeded: Vec::new(),
            dropped: (0, 0),
            dead: Vec::new(),
            cancelled: Vec::new(),
            retries: 0,
            splits: 0,
        }
    }
}

impl<T, R> Outcomes<T, R> {
    /// Counts `items` as succeeded and drops them at once, without keeping them for
    /// emission (for a run that emits no settled outcomes).
    pub(super) fn succeeded_unkept(&mut self, items: Vec<Item<T>>) {
        self.dropped.0 += items.len() as u64;
        self.dropped.1 += items.iter().map(Item::bytes).sum::<usize>();
    }

    /// Dead-letters `item` with `error`, stamped now.
    pub(super) fn dead(&mut self, item: Item<T>, error: String) {
        let now = SystemTime::now();
        // The first attempt's wall-clock time, derived from the monotonic acceptance time.
        let first_attempt_at = item
            .accepted_at
            .map(|at| now - Instant::now().saturating_duration_since(at));
        self.dead.push(DeadLetter {
            attempts: item.attempts,
            item,
            error,
            first_attempt_at,
            dead_at: now,
        });
    }

    /// Dead-letters every item of `items` with `reason`.
    pub(super) fn dead_all(&mut self, items: Vec<Item<T>>, reason: &str) {
        for item in items {
            self.dead(item, reason.to_owned());
        }
    }

    /// Whether nothing ended (retry and split counts aside).
    pub(super) fn nothing_ended(&self) -> bool {
        self.succeeded.is_empty()
            && self.dropped.0 == 0
            && self.dead.is_empty()
            && self.cancelled.is_empty()
    }

    /// Bytes of every item that ended.
    pub(super) fn bytes(&self) -> usize {
        self.succeeded.iter().map(|(i, _)| i.bytes()).sum::<usize>()
            + self.dropped.1
            + self.dead.iter().map(|d| d.item.bytes()).sum::<usize>()
            + self.cancelled.iter().map(Item::bytes).sum::<usize>()
    }

    /// Counts of succeeded, dead-lettered and cancelled items.
    pub(super) fn counts(&self) -> (u64, u64, u64) {
        (
            self.succeeded.len() as u64 + self.dropped.0,
            self.dead.len() as u64,
            self.cancelled.len() as u64,
        )
    }

    /// The items that ended, as the run emits them.
    pub(super) fn into_settled(self) -> Vec<Settled<T, R>> {
        let mut settled =
            Vec::with_capacity(self.succeeded.len() + self.dead.len() + self.cancelled.len());
        settled.extend(
            self.succeeded
                .into_iter()
                .map(|(item, result)| Settled::Succeeded { item, result }),
        );
        settled.extend(self.dead.into_iter().map(Settled::DeadLettered));
        settled.extend(self.cancelled.into_iter().map(Settled::Cancelled));
        settled
    }
}
