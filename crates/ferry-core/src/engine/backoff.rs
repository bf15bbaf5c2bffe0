//! Batches waiting out a retry backoff, earliest due first.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use tokio::time::Instant;

use crate::item::Batch;

/// A batch waiting for its backoff to pass.
struct Delayed<T> {
    due: Instant,
    /// Insertion order, so batches due at the same instant leave first in, first out.
    seq: u64,
    batch: Batch<T>,
}

impl<T> PartialEq for Delayed<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl<T> Eq for Delayed<T> {}
impl<T> PartialOrd for Delayed<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Delayed<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// Batches waiting out a backoff.
pub(super) struct Backoffs<T> {
    heap: BinaryHeap<Reverse<Delayed<T>>>,
    seq: u64,
}

impl<T> Backoffs<T> {
    /// No batch waits.
    pub(super) fn new() -> Self {
        Backoffs {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }

    /// `batch` may leave at `due`.
    pub(super) fn schedule(&mut self, batch: Batch<T>, due: Instant) {
        self.seq += 1;
        self.heap.push(Reverse(Delayed {
            due,
            seq: self.seq,
            batch,
        }));
    }

    /// Takes the next batch whose backoff has passed at `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Batch<T>> {
        if self.heap.peek()?.0.due > now {
            return None;
        }
        self.heap.pop().map(|Reverse(d)| d.batch)
    }

    /// When the next backoff passes.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(d)| d.due)
    }

    /// Whether no batch waits.
    pub(super) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Items in waiting batches.
    pub(super) fn items(&self) -> usize {
        self.heap.iter().map(|d| d.0.batch.len()).sum()
    }

    /// Removes every waiting batch (shutdown).
    pub(super) fn drain(&mut self) -> impl Iterator<Item = Batch<T>> + '_ {
        self.heap.drain().map(|Reverse(d)| d.batch)
    }
}
