//! Carrying out what the outcome policy decided for a finished call's batch: each item by
//! its own outcome, a whole-batch retry, a requeue, a split, or a step of the search for an
//! item the target did not name (`engine::isolate`); and topping a search's test call up
//! with fresh items when it leaves.

use std::time::Duration;

use tokio::time::Instant;

use super::Core;
use crate::engine::settled::Outcomes;
use crate::item::{Batch, Suspects};
use crate::outcome::{Handler, ItemOutcome};
use crate::policy::{self, ItemAction, ItemEnd};
use crate::split::SplitStrategy;

impl<T, R, H> Core<T, R, H>
where
    T: Send + Sync + 'static,
    R: Send + 'static,
    H: Handler<T, R>,
{
    /// Tops a search's test call up to `target` items with fresh ones, so that a test that
    /// passes is an ordinary full call (`isolate`). A test of one suspect is topped up too:
    /// failing, that suspect goes again alone (the search's last step) to tell it from the
    /// fill, which costs a call only when it fails, where testing it alone would cost one
    /// whether it fails or not.
    pub(super) fn top_up(&mut self, mut batch: Batch<T>, target: usize) -> Batch<T> {
        if batch.suspects.is_some() && batch.len() < target {
            let room = self.cfg.flush.max_bytes.get().saturating_sub(batch.bytes);
            if let Some(fill) = self.buffer.cut_fill(target - batch.len(), room) {
                batch.append(fill);
            }
        }
        batch
    }

    /// Ends each item of a completed call by its own outcome; the retried ones go back as
    /// one batch after a backoff.
    pub(super) fn settle_items(
        &mut self,
        batch: Batch<T>,
        results: Vec<ItemOutcome<R>>,
        out: &mut Outcomes<T, R>,
        now: Instant,
    ) {
        let n = batch.len();
        let got = results.len();
        if got == n
            && self.settled_tx.is_none()
            && results.iter().all(|r| matches!(r, ItemOutcome::Ok(_)))
        {
            // Every item succeeded and nobody takes settled outcomes: counted and dropped.
            out.succeeded_unkept(batch.into_items());
            return;
        }
        let mut results = results.into_iter();
        let mut retry = Vec::new();
        for mut item in batch.into_items() {
            let result = results.next();
            let end = match &result {
                Some(ItemOutcome::Ok(_)) => ItemEnd::Ok,
                Some(ItemOutcome::Retry(_)) => ItemEnd::Retry,
                Some(ItemOutcome::Fatal(_)) => ItemEnd::Fatal,
                None => ItemEnd::Missing,
            };
            if end == ItemEnd::Retry {
                item.failures += 1;
            }
            match (
                self.policy.on_item(end, item.failures, self.cancelling),
                result,
            ) {
                (ItemAction::Succeed, Some(ItemOutcome::Ok(result))) => {
                    out.succeeded.push((item, result));
                }
                (ItemAction::Retry, _) => retry.push(item),
                (ItemAction::Cancel, _) => out.cancelled.push(item),
                (_, Some(ItemOutcome::Retry(e) | ItemOutcome::Fatal(e))) => out.dead(item, e),
                (_, _) => out.dead(
                    item,
                    format!("handler returned {got} results for a batch of {n} items"),
                ),
            }
        }
        if !retry.is_empty() {
            let failures = retry.iter().map(|i| i.failures).max().unwrap_or(1);
            let delay = policy::backoff(&self.cfg.retry, failures, None, &mut self.rng);
            out.retries += 1;
            self.backoffs
                .schedule(Batch::from_items(retry), now + delay);
        }
    }

    /// Charges a whole-batch failure: one to the batch and one to each of its items.
    pub(super) fn charge(batch: &mut Batch<T>) {
        batch.level_failures += 1;
        for item in &mut batch.items {
            item.failures += 1;
        }
    }

    /// Charges a failure, dead-letters the items out of attempts and schedules the rest.
    pub(super) fn retry(
        &mut self,
        mut batch: Batch<T>,
        after: Option<Duration>,
        reason: &str,
        out: &mut Outcomes<T, R>,
        now: Instant,
    ) {
        Self::charge(&mut batch);
        let policy = self.policy;
        let (exhausted, alive): (Vec<_>, Vec<_>) = batch
            .items
            .drain(..)
            .partition(|i| policy.exhausted(i.failures));
        out.dead_all(exhausted, reason);
        if alive.is_empty() {
            return;
        }
        let failures = alive.iter().map(|i| i.failures).max().unwrap_or(1);
        let level = batch.level_failures;
        let mut again = Batch::from_items(alive);
        again.level_failures = level;
        let delay = policy::backoff(&self.cfg.retry, failures, after, &mut self.rng);
        out.retries += 1;
        self.backoffs.schedule(again, now + delay);
    }

    /// Sends `batch` again, whole and uncharged, after at least `after`: the target asked for
    /// time or was overloaded. Without `after` the wait grows with each requeue (jittered,
    /// from the retry policy's base, at most 16 times it).
    pub(super) fn requeue(
        &mut self,
        mut batch: Batch<T>,
        after: Option<Duration>,
        out: &mut Outcomes<T, R>,
        now: Instant,
    ) {
        batch.requeues += 1;
        let delay = policy::backoff(&self.cfg.retry, batch.requeues.min(5), after, &mut self.rng);
        out.retries += 1;
        // A batch cut before the size came down (or a probe sent back) goes again in parts
        // of the size now confirmed: sent whole it would test a size already given up. A
        // smaller last part goes back to the front of the queue, to leave in the next
        // full batch: alone it would cost the target a request for less than the size.
        let size = self.size.get();
        let cut = batch.len() > size;
        for part in batch.into_parts(size) {
            if cut && part.len() < size {
                self.buffer.put_back(part.into_items());
            } else {
                self.backoffs.schedule(part, now + delay);
            }
        }
    }

    /// Puts a probe that proved too large back at the front of the queue, uncharged, to
    /// leave again in batches of the confirmed size (`Action::Recut`).
    pub(super) fn recut(&mut self, batch: Batch<T>) {
        self.buffer.put_back(batch.into_items());
    }

    /// Splits `batch` (charging a failure first if asked); the parts leave before anything
    /// else that waits.
    pub(super) fn split(&mut self, mut batch: Batch<T>, charge: bool, out: &mut Outcomes<T, R>) {
        if charge {
            Self::charge(&mut batch);
        }
        out.splits += 1;
        for part in self.cfg.dispatch.split.split(batch) {
            self.ready.push_back(part);
        }
    }

    /// Carries a search on after its test call ended other than failing naming no item:
    /// `passed`, the fault is in the half held aside, tested next; otherwise the search ends
    /// and the held half goes back to ordinary work.
    pub(super) fn after_test(&mut self, tag: Suspects, passed: bool, out: &mut Outcomes<T, R>) {
        let Some(held) = self.searches.take(tag.search) else {
            return;
        };
        if self.cancelling {
            out.cancelled.extend(held.into_items());
        } else if passed {
            let test = self.searches.step(held.into_items(), self.buffer.len());
            self.ready.push_front(test);
        } else {
            self.buffer.put_back(held.into_items());
        }
    }

    /// Searches `batch`, which failed naming no item, for the item at fault: the next step
    /// of its search if it was a test call, else a new search (`isolate`). Bisects instead
    /// under a ladder strategy or when such failures are common.
    pub(super) fn isolate(
        &mut self,
        batch: Batch<T>,
        tag: Option<Suspects>,
        out: &mut Outcomes<T, R>,
    ) {
        // Failures charged at the batch's level are not any one item's (as in a split).
        let refund = batch.level_failures;
        let mut suspects = batch.into_items();
        for item in &mut suspects {
            item.failures = item.failures.saturating_sub(refund);
        }
        if let Some(tag) = tag {
            // The fault is among the suspects (or, rarely, the fill): the fill and the half
            // held aside go back to ordinary work.
            let fill = suspects.split_off(tag.count.min(suspects.len()));
            self.buffer.put_back(fill);
            if let Some(held) = self.searches.take(tag.search) {
                self.buffer.put_back(held.into_items());
            }
        }
        let again = Batch::from_items(suspects);
        if self.searches.prefer_bisection()
            || !matches!(self.cfg.dispatch.split, SplitStrategy::Bisect)
        {
            return self.split(again, false, out);
        }
        out.splits += 1;
        let test = self.searches.step(again.into_items(), self.buffer.len());
        self.ready.push_front(test);
    }
}
