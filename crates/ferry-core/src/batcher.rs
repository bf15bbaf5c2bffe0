//! Gathering items into batches: this module owns the waiting items until a batch leaves.
//!
//! `Buffer` (internal) holds waiting items in one FIFO per priority and cuts batches
//! highest-priority-first ([`Priority::DESCENDING`]: high, medium, low); it answers "should a
//! batch leave now?" against a [`FlushPolicy`] and "when must one leave at the latest?". The
//! engine drives a `Buffer` from its event loop and cuts a batch only when a dispatch slot is
//! free, so a high-priority item always boards the next departure and never queues behind
//! batches of medium or low items. [`Batcher`] wraps the same
//! buffer as a stream adapter for code that wants plain `Stream<Item> -> Stream<Batch>`.

use std::collections::VecDeque;
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::time::{Instant, Sleep};

use crate::flush::{FlushPolicy, FlushReason};
use crate::item::{Batch, Item, Priority};

/// Waiting items, one FIFO per priority.
#[derive(Debug)]
pub(crate) struct Buffer<T> {
    queues: [VecDeque<Item<T>>; 3],
    len: usize,
    bytes: usize,
}

impl<T> Default for Buffer<T> {
    fn default() -> Self {
        Buffer {
            queues: [VecDeque::new(), VecDeque::new(), VecDeque::new()],
            len: 0,
            bytes: 0,
        }
    }
}

impl<T> Buffer<T> {
    /// An empty buffer.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds an item, stamping its acceptance time if it has none.
    pub(crate) fn push(&mut self, mut item: Item<T>, now: Instant) {
        if item.accepted_at.is_none() {
            item.accepted_at = Some(now);
        }
        self.len += 1;
        self.bytes += item.bytes;
        self.queues[item.priority.index()].push_back(item);
    }

    /// Adds a run of items (in order, each to its priority's queue), stamping their
    /// acceptance time if they have none; returns their bytes.
    pub(crate) fn extend(&mut self, items: Vec<Item<T>>, now: Instant) -> usize {
        let mut bytes = 0;
        let mut one_priority = None;
        for item in &items {
            bytes += item.bytes;
            one_priority = match one_priority {
                None => Some(Some(item.priority)),
                Some(Some(p)) if p == item.priority => Some(Some(p)),
                _ => Some(None),
            };
        }
        match one_priority {
            // One priority (what an intake run is): the whole run moves at once.
            Some(Some(p)) if items.iter().all(|i| i.accepted_at.is_some()) => {
                self.len += items.len();
                self.bytes += bytes;
                self.queues[p.index()].extend(items);
            }
            _ => {
                for item in items {
                    self.push(item, now);
                }
            }
        }
        bytes
    }

    /// Returns items that left and came back unsent or unsettled (held aside by a search, a
    /// search's fill) to the front of their priorities' queues, in order: they are older
    /// than anything waiting, and leave first in full batches.
    pub(crate) fn put_back(&mut self, items: Vec<Item<T>>) {
        for item in items.into_iter().rev() {
            self.len += 1;
            self.bytes += item.bytes;
            self.queues[item.priority.index()].push_front(item);
        }
    }

    /// Number of waiting items.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether no item waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sum of the waiting items' byte sizes.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The highest priority that has a waiting item.
    pub(crate) fn top_priority(&self) -> Option<Priority> {
        Priority::DESCENDING
            .into_iter()
            .find(|p| !self.queues[p.index()].is_empty())
    }

    /// The instant by which a batch must leave so that no waiting item exceeds its
    /// priority's `max_wait`.
    pub(crate) fn deadline(&self, policy: &FlushPolicy) -> Option<Instant> {
        Priority::DESCENDING
            .into_iter()
            .filter_map(|p| {
                let front = self.queues[p.index()].front()?;
                Some(front.accepted_at? + policy.wait_for(p))
            })
            .min()
    }

    /// Whether a batch should leave now, and why. `target` is the current (possibly
    /// adaptive) batch size; `held_bytes` is everything the owner holds, for memory pressure;
    /// `draining` makes any non-empty buffer leave.
    pub(crate) fn trigger(
        &self,
        now: Instant,
        target: usize,
        policy: &FlushPolicy,
        held_bytes: usize,
        draining: bool,
    ) -> Option<FlushReason> {
        if self.is_empty() {
            return None;
        }
        if self.len >= target.max(1) {
            return Some(FlushReason::Full);
        }
        if self.bytes >= policy.max_bytes.get() {
            return Some(FlushReason::Bytes);
        }
        for p in Priority::DESCENDING {
            if let Some(at) = self.queues[p.index()].front().and_then(|i| i.accepted_at) {
                if now >= at + policy.wait_for(p) {
                    return Some(FlushReason::MaxWait(p));
                }
            }
        }
        if held_bytes >= policy.memory.high_watermark {
            return Some(FlushReason::MemoryPressure);
        }
        if draining {
            return Some(FlushReason::Drain);
        }
        None
    }

    /// Cuts a batch of at most `max_items` items and `max_bytes` bytes (at least one item),
    /// highest priority first, oldest first within a priority. Empty buffer: `None`.
    pub(crate) fn cut(&mut self, max_items: usize, max_bytes: usize) -> Option<Batch<T>> {
        self.cut_up_to(max_items, max_bytes, 1)
    }

    /// Cuts at most `max_items` items of at most `max_bytes` bytes in all, to top up a batch
    /// that already holds others: unlike [`cut`](Self::cut), not even one item over
    /// `max_bytes`. `None` when nothing fits.
    pub(crate) fn cut_fill(&mut self, max_items: usize, max_bytes: usize) -> Option<Batch<T>> {
        self.cut_up_to(max_items, max_bytes, 0)
            .filter(|b| !b.is_empty())
    }

    /// The cut of [`cut`](Self::cut); the first `oversize` items are taken whatever their size.
    fn cut_up_to(
        &mut self,
        max_items: usize,
        max_bytes: usize,
        oversize: usize,
    ) -> Option<Batch<T>> {
        if self.is_empty() {
            return None;
        }
        let mut items = Vec::with_capacity(max_items.min(self.len));
        let mut bytes = 0usize;
        'fill: for p in Priority::DESCENDING {
            let q = &mut self.queues[p.index()];
            // How many of this queue board: counted first, then moved in one go.
            let mut take = 0;
            let mut full = false;
            for item in q.iter() {
                if items.len() + take >= max_items
                    || (items.len() + take >= oversize && bytes + item.bytes > max_bytes)
                {
                    full = true;
                    break;
                }
                bytes += item.bytes;
                take += 1;
            }
            items.extend(q.drain(..take));
            if full {
                break 'fill;
            }
        }
        self.len -= items.len();
        self.bytes -= bytes;
        let mut batch = Batch::from_items(items);
        batch.bytes = bytes;
        Some(batch)
    }

    /// Removes every waiting item (shutdown).
    pub(crate) fn drain_all(&mut self) -> Vec<Item<T>> {
        let mut out = Vec::with_capacity(self.len);
        for p in Priority::DESCENDING {
            out.extend(self.queues[p.index()].drain(..));
        }
        self.len = 0;
        self.bytes = 0;
        out
    }
}

/// A stream adapter: items in, batches out, flushed by a fixed [`FlushPolicy`] (its
/// `max_items` is the batch size). Items are stamped when the adapter first sees them.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use ferry_core::{Batcher, FlushPolicy, Item};
/// use futures_util::StreamExt;
/// use std::num::NonZeroUsize;
/// let items = futures_util::stream::iter((0..10u64).map(|i| Item::new(i, i, i)));
/// let policy = FlushPolicy::new().max_items(NonZeroUsize::new(4).unwrap());
/// let sizes: Vec<usize> = Batcher::new(items, policy).map(|b| b.len()).collect().await;
/// assert_eq!(sizes, vec![4, 4, 2]);
/// # }
/// ```
pub struct Batcher<S, T> {
    input: Pin<Box<S>>,
    buffer: Buffer<T>,
    policy: FlushPolicy,
    sleep: Pin<Box<Sleep>>,
    ended: bool,
}

impl<S, T> Batcher<S, T>
where
    S: Stream<Item = Item<T>>,
{
    /// Wraps `input`.
    pub fn new(input: S, policy: FlushPolicy) -> Self {
        Batcher {
            input: Box::pin(input),
            buffer: Buffer::new(),
            policy,
            sleep: Box::pin(tokio::time::sleep_until(Instant::now())),
            ended: false,
        }
    }

    /// Polls for the next batch (the [`Stream`] implementation calls this).
    pub fn poll_next_batch(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Batch<T>>> {
        let this = self.get_mut();
        let max_items = this.policy.max_items.get();
        let max_bytes = this.policy.max_bytes.get();
        loop {
            while !this.ended
                && this.buffer.len() < max_items
                && this.buffer.bytes() < this.policy.memory.hard_limit
            {
                match this.input.as_mut().poll_next(cx) {
                    Poll::Ready(Some(item)) => this.buffer.push(item, Instant::now()),
                    Poll::Ready(None) => this.ended = true,
                    Poll::Pending => break,
                }
            }
            let now = Instant::now();
            let held = this.buffer.bytes();
            if this
                .buffer
                .trigger(now, max_items, &this.policy, held, this.ended)
                .is_some()
            {
                return Poll::Ready(this.buffer.cut(max_items, max_bytes));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            match this.buffer.deadline(&this.policy) {
                Some(deadline) => {
                    if this.sleep.deadline() != deadline {
                        this.sleep.as_mut().reset(deadline);
                    }
                    match this.sleep.as_mut().poll(cx) {
                        Poll::Ready(()) => continue,
                        Poll::Pending => return Poll::Pending,
                    }
                }
                None => return Poll::Pending,
            }
        }
    }
}

impl<S, T> Stream for Batcher<S, T>
where
    S: Stream<Item = Item<T>>,
{
    type Item = Batch<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_next_batch(cx)
    }
}

impl<S, T> Unpin for Batcher<S, T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroUsize;
    use std::time::Duration;

    fn policy(max: usize) -> FlushPolicy {
        FlushPolicy::new().max_items(NonZeroUsize::new(max).unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn high_items_board_first_and_low_items_last() {
        let mut b = Buffer::new();
        let now = Instant::now();
        b.push(Item::new(50u64, 50, 50).with_priority(Priority::Low), now);
        for i in 0..5u64 {
            b.push(Item::new(i, i, i), now);
        }
        b.push(Item::new(99u64, 99, 99).with_priority(Priority::High), now);
        let batch = b.cut(2, usize::MAX).unwrap();
        assert_eq!(batch.payloads().copied().collect::<Vec<_>>(), vec![99, 0]);
        assert_eq!(b.len(), 5);
        let rest = b.cut(10, usize::MAX).unwrap();
        assert_eq!(
            rest.payloads().copied().collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 50]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_is_the_earliest_priority_wait() {
        let p = policy(100);
        let mut b = Buffer::new();
        let t0 = Instant::now();
        b.push(Item::new(1u64, 1, ()), t0);
        assert_eq!(b.deadline(&p), Some(t0 + p.wait_for(Priority::Medium)));
        tokio::time::advance(Duration::from_millis(100)).await;
        let t1 = Instant::now();
        b.push(Item::new(2u64, 2, ()).with_priority(Priority::High), t1);
        assert_eq!(b.deadline(&p), Some(t1 + p.wait_for(Priority::High)));
        assert_eq!(b.trigger(t1, 100, &p, 0, false), None);
        let late = t1 + p.wait_for(Priority::High);
        assert_eq!(
            b.trigger(late, 100, &p, 0, false),
            Some(FlushReason::MaxWait(Priority::High))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_cap_still_lets_one_oversized_item_through() {
        let mut b = Buffer::new();
        let now = Instant::now();
        b.push(Item::new(1u64, 1, ()).with_bytes(1000), now);
        b.push(Item::new(2u64, 2, ()).with_bytes(10), now);
        assert_eq!(b.cut(10, 100).unwrap().len(), 1);
        assert_eq!(b.cut(10, 100).unwrap().len(), 1);
        assert!(b.cut(10, 100).is_none());
        assert_eq!(b.bytes(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_extends_like_pushes_one_by_one() {
        let t0 = Instant::now();
        let item = |i: u64, p: Priority, stamped: bool| {
            let mut it = Item::new(i, i, i).with_priority(p).with_bytes(10);
            it.accepted_at = stamped.then_some(t0);
            it
        };
        let mut b = Buffer::new();
        // A run of one priority, stamped (as the intake sends it), and a mixed, unstamped one.
        let run: Vec<_> = (0..5).map(|i| item(i, Priority::Medium, true)).collect();
        assert_eq!(b.extend(run, t0), 50);
        tokio::time::advance(Duration::from_millis(5)).await;
        let t1 = Instant::now();
        let mixed = vec![
            item(10, Priority::Low, false),
            item(11, Priority::High, false),
        ];
        assert_eq!(b.extend(mixed, t1), 20);
        assert_eq!((b.len(), b.bytes()), (7, 70));
        let p = policy(100);
        assert_eq!(
            b.deadline(&p),
            Some(t1 + p.wait_for(Priority::High)).min(Some(t0 + p.wait_for(Priority::Medium)))
        );
        // Bytes stop a cut inside a queue; the rest keeps its order.
        let batch = b.cut(100, 35).unwrap();
        assert_eq!(
            batch.payloads().copied().collect::<Vec<_>>(),
            vec![11, 0, 1]
        );
        assert_eq!(batch.bytes(), 30);
        let rest = b.cut(3, usize::MAX).unwrap();
        assert_eq!(rest.payloads().copied().collect::<Vec<_>>(), vec![2, 3, 4]);
        let last = b.cut(3, usize::MAX).unwrap();
        assert_eq!(last.payloads().copied().collect::<Vec<_>>(), vec![10]);
        assert_eq!((b.len(), b.bytes()), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn batcher_flushes_a_partial_batch_at_max_wait() {
        // A stream that yields 3 items and then stays pending forever.
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        for i in 0..3u64 {
            tx.send(Item::new(i, i, i)).unwrap();
        }
        struct Rx(tokio::sync::mpsc::UnboundedReceiver<Item<u64>>);
        impl Stream for Rx {
            type Item = Item<u64>;
            fn poll_next(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<Option<Item<u64>>> {
                self.0.poll_recv(cx)
            }
        }
        let p = policy(10);
        let mut batcher = Batcher::new(Rx(rx), p.clone());
        let start = Instant::now();
        let batch = std::future::poll_fn(|cx| Pin::new(&mut batcher).poll_next_batch(cx))
            .await
            .unwrap();
        assert_eq!(batch.len(), 3);
        assert_eq!(start.elapsed(), p.wait_for(Priority::Medium));
        drop(tx);
    }
}
