//! The intake: how items travel from producers to the event loop. This module owns the
//! per-priority channels and the room left in each.
//!
//! Each priority has a channel of its own (so high items never queue behind medium or low
//! ones) and a semaphore of `intake_capacity` permits: an item takes a permit when it is
//! handed over and gives it back when the loop takes it into its buffer, so at most
//! `intake_capacity` items wait in each channel, whether they came one by one
//! ([`Intake::push`]) or as a run ([`Intake::push_many`], one message for many items). When
//! the loop stops (cancelled, finished or failed) the semaphores close, so a producer waiting
//! for room learns it at once.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::mpsc::{self, error::TryRecvError};
use tokio::sync::{Semaphore, TryAcquireError};
use tokio::time::Instant;

use crate::batcher::Buffer;
use crate::error::Error;
use crate::item::Item;

/// What one message on an intake channel carries: one item, or a run of items of one
/// priority handed over at once.
pub(super) enum Arrival<T> {
    One(Item<T>),
    Many(Vec<Item<T>>),
}

impl<T> Arrival<T> {
    /// Adds the items to `buffer` (a run moves in whole); how many, and their bytes.
    pub(super) fn buffer_into(self, buffer: &mut Buffer<T>, now: Instant) -> (usize, usize) {
        match self {
            Arrival::One(item) => {
                let bytes = item.bytes();
                buffer.push(item, now);
                (1, bytes)
            }
            Arrival::Many(items) => {
                let n = items.len();
                (n, buffer.extend(items, now))
            }
        }
    }

    /// The items, in the order they were pushed.
    pub(super) fn into_items(self) -> impl Iterator<Item = Item<T>> {
        let (one, many) = match self {
            Arrival::One(item) => (Some(item), Vec::new()),
            Arrival::Many(items) => (None, items),
        };
        one.into_iter().chain(many)
    }
}

/// The room left in each priority's channel (`Low` = 0, `Medium` = 1, `High` = 2).
type Room = Arc<[Semaphore; 3]>;

/// A new intake of `capacity` items per priority: the producers' side and the loop's.
pub(super) fn channels<T>(capacity: usize) -> (Intake<T>, Arrivals<T>) {
    let (tl, rl) = mpsc::unbounded_channel();
    let (tm, rm) = mpsc::unbounded_channel();
    let (th, rh) = mpsc::unbounded_channel();
    let cap = capacity.clamp(1, Semaphore::MAX_PERMITS);
    let room: Room = Arc::new([
        Semaphore::new(cap),
        Semaphore::new(cap),
        Semaphore::new(cap),
    ]);
    let intake = Intake {
        tx: Arc::new([tl, tm, th]),
        room: Arc::clone(&room),
        capacity: cap,
    };
    (
        intake,
        Arrivals {
            rx: [rl, rm, rh],
            room,
        },
    )
}

/// The sending side of a running engine; clone it for several producers. The engine sees
/// end of input when every clone (and the one inside [`Running`](super::Running)) is dropped.
pub struct Intake<T> {
    tx: Arc<[mpsc::UnboundedSender<Arrival<T>>; 3]>,
    room: Room,
    capacity: usize,
}

impl<T> Clone for Intake<T> {
    fn clone(&self) -> Self {
        Intake {
            tx: Arc::clone(&self.tx),
            room: Arc::clone(&self.room),
            capacity: self.capacity,
        }
    }
}

impl<T> Intake<T> {
    /// Hands an item to the engine, waiting while it is full (back-pressure). Each priority
    /// has a channel of its own, so high items never queue behind medium or low ones. Fails
    /// only when the engine has stopped (cancelled or failed).
    pub async fn push(&self, mut item: Item<T>) -> Result<(), Error> {
        let p = item.priority().index();
        match self.room[p].try_acquire() {
            Ok(permit) => permit.forget(),
            // Full (or closed): wait for room, or learn that the engine stopped.
            Err(_) => self.room[p]
                .acquire()
                .await
                .map_err(|_| Error::Closed)?
                .forget(),
        }
        item.accepted_at = Some(Instant::now());
        self.tx[p]
            .send(Arrival::One(item))
            .map_err(|_| Error::Closed)
    }

    /// Like [`push`](Self::push) but fails at once instead of waiting; the item comes back
    /// in the error case.
    pub fn try_push(&self, mut item: Item<T>) -> Result<(), Item<T>> {
        let p = item.priority().index();
        match self.room[p].try_acquire() {
            Ok(permit) => permit.forget(),
            Err(_) => return Err(item),
        }
        item.accepted_at = Some(Instant::now());
        self.tx[p].send(Arrival::One(item)).map_err(|e| match e.0 {
            Arrival::One(item) => item,
            Arrival::Many(_) => unreachable!("sent one item"),
        })
    }

    /// Hands every item to the engine, in order, waiting while it is full; each run of
    /// items of one priority travels as one message (as many as there is room for), which
    /// costs far less per item than [`push`](Self::push) for a large source already at hand.
    /// Back-pressure is the same: at most `intake_capacity` items wait per priority. Fails
    /// only when the engine has stopped; the items not handed over are then dropped (see
    /// [`push_from`](Self::push_from) to keep them).
    pub async fn push_many(&self, items: impl IntoIterator<Item = Item<T>>) -> Result<(), Error> {
        let mut items: VecDeque<Item<T>> = items.into_iter().collect();
        self.push_from(&mut items).await
    }

    /// [`push_many`](Self::push_many) from the front of `items`, leaving in `items` what was
    /// not handed over. Cancel-safe: dropped while it waits for room (under a timeout, say),
    /// no item is lost; those not yet handed over are still in `items`, in order.
    pub async fn push_from(&self, items: &mut VecDeque<Item<T>>) -> Result<(), Error> {
        while let Some(front) = items.front() {
            let p = front.priority();
            let room = &self.room[p.index()];
            let run = items.iter().take_while(|i| i.priority() == p).count();
            let n = run.min(room.available_permits()).min(u32::MAX as usize);
            if n == 0 {
                // Wait until there is room for the run or half the channel, whichever is
                // less (so one wake-up moves many items), give it back, and take what
                // there is then.
                let want = run
                    .min(self.capacity.div_ceil(2))
                    .clamp(1, u32::MAX as usize);
                drop(
                    room.acquire_many(want as u32)
                        .await
                        .map_err(|_| Error::Closed)?,
                );
                continue;
            }
            match room.try_acquire_many(n as u32) {
                Ok(permit) => permit.forget(),
                Err(TryAcquireError::NoPermits) => continue,
                Err(TryAcquireError::Closed) => return Err(Error::Closed),
            }
            let now = Instant::now();
            let mut run: Vec<Item<T>> = if n == items.len() {
                // Everything fits: the deque becomes the message without moving its items.
                Vec::from(std::mem::take(items))
            } else {
                items.drain(..n).collect()
            };
            for item in &mut run {
                item.accepted_at = Some(now);
            }
            let arrival = if n == 1 {
                Arrival::One(run.pop().ok_or(Error::Closed)?)
            } else {
                Arrival::Many(run)
            };
            if let Err(e) = self.tx[p.index()].send(arrival) {
                // The engine stopped: the items go back to the caller, in order.
                for item in e.0.into_items().collect::<Vec<_>>().into_iter().rev() {
                    items.push_front(item);
                }
                return Err(Error::Closed);
            }
        }
        Ok(())
    }
}

/// The loop's side of the intake.
pub(super) struct Arrivals<T> {
    rx: [mpsc::UnboundedReceiver<Arrival<T>>; 3],
    room: Room,
}

impl<T> Arrivals<T> {
    /// The three receivers (`Low`, `Medium`, `High`), for the loop's `select!`.
    pub(super) fn receivers(&mut self) -> &mut [mpsc::UnboundedReceiver<Arrival<T>>; 3] {
        &mut self.rx
    }

    /// The next waiting message of priority index `p`, without waiting.
    pub(super) fn try_recv(&mut self, p: usize) -> Result<Arrival<T>, TryRecvError> {
        self.rx[p].try_recv()
    }

    /// The loop took `n` items of priority index `p` into its buffer: their room is free.
    pub(super) fn taken(&self, p: usize, n: usize) {
        if n > 0 {
            self.room[p].add_permits(n);
        }
    }

    /// Stops intake: producers waiting for room, and every later push, fail with
    /// [`Error::Closed`]; what was already sent can still be read.
    pub(super) fn close(&mut self) {
        for (rx, room) in self.rx.iter_mut().zip(self.room.iter()) {
            rx.close();
            room.close();
        }
    }
}

impl<T> Drop for Arrivals<T> {
    fn drop(&mut self) {
        // The loop is gone: wake every producer waiting for room.
        for room in self.room.iter() {
            room.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::Priority;

    fn item(i: u64, p: Priority) -> Item<u64> {
        Item::new(i, i, i).with_priority(p)
    }

    fn drain(a: &mut Arrivals<u64>, p: Priority) -> Vec<Vec<u64>> {
        let mut out = Vec::new();
        while let Ok(arrival) = a.try_recv(p.index()) {
            let run: Vec<u64> = arrival.into_items().map(|i| i.index()).collect();
            a.taken(p.index(), run.len());
            out.push(run);
        }
        out
    }

    #[tokio::test]
    async fn runs_travel_as_one_message_per_priority_in_order() {
        let (intake, mut arrivals) = channels::<u64>(100);
        let items = vec![
            item(0, Priority::Medium),
            item(1, Priority::Medium),
            item(2, Priority::High),
            item(3, Priority::Medium),
            item(4, Priority::Medium),
            item(5, Priority::Medium),
        ];
        intake.push_many(items).await.unwrap();
        assert_eq!(
            drain(&mut arrivals, Priority::Medium),
            vec![vec![0, 1], vec![3, 4, 5]]
        );
        assert_eq!(drain(&mut arrivals, Priority::High), vec![vec![2]]);
        assert!(drain(&mut arrivals, Priority::Low).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn push_many_waits_for_room_and_never_exceeds_capacity() {
        let (intake, mut arrivals) = channels::<u64>(10);
        let producer = tokio::spawn({
            let intake = intake.clone();
            async move {
                intake
                    .push_many((0..35).map(|i| item(i, Priority::Medium)))
                    .await
            }
        });
        let mut seen = Vec::new();
        while seen.len() < 35 {
            tokio::task::yield_now().await;
            let mut waiting = 0;
            while let Ok(arrival) = arrivals.try_recv(Priority::Medium.index()) {
                let run: Vec<u64> = arrival.into_items().map(|i| i.index()).collect();
                waiting += run.len();
                seen.extend(run);
            }
            assert!(waiting <= 10, "{waiting} items waited in a channel of 10");
            arrivals.taken(Priority::Medium.index(), waiting);
        }
        producer.await.unwrap().unwrap();
        assert_eq!(seen, (0..35).collect::<Vec<_>>());
        assert_eq!(intake.room[1].available_permits(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn push_from_is_cancel_safe_and_fails_once_closed() {
        let (intake, mut arrivals) = channels::<u64>(4);
        let mut items: VecDeque<_> = (0..10).map(|i| item(i, Priority::Low)).collect();
        let waited = tokio::time::timeout(
            std::time::Duration::from_millis(10),
            intake.push_from(&mut items),
        )
        .await;
        assert!(waited.is_err(), "it waits for room");
        let left: Vec<u64> = items.iter().map(Item::index).collect();
        assert_eq!(left, (4..10).collect::<Vec<_>>());
        assert!(intake.try_push(item(99, Priority::Low)).is_err(), "full");
        arrivals.close();
        assert!(matches!(
            intake.push_from(&mut items).await,
            Err(Error::Closed)
        ));
        assert_eq!(items.len(), 6, "nothing lost");
        assert!(matches!(
            intake.push(item(7, Priority::High)).await,
            Err(Error::Closed)
        ));
        // What was sent before the close can still be read.
        assert_eq!(drain(&mut arrivals, Priority::Low), vec![vec![0, 1, 2, 3]]);
    }

    #[tokio::test]
    async fn dropping_the_loop_side_wakes_a_waiting_producer() {
        let (intake, arrivals) = channels::<u64>(1);
        intake.try_push(item(0, Priority::Medium)).unwrap();
        let waiting = tokio::spawn({
            let intake = intake.clone();
            async move { intake.push(item(1, Priority::Medium)).await }
        });
        tokio::task::yield_now().await;
        drop(arrivals);
        assert!(matches!(waiting.await.unwrap(), Err(Error::Closed)));
    }
}
