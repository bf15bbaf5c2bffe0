//! Isolating an item the target does not name: a search that tests a part of the suspects
//! at a time and keeps every test call full.
//!
//! An ordinary batch (of a size that went through before) that fails as a whole naming no
//! item (`BatchOutcome::Split`) almost always holds one bad item. Plain bisection sends both
//! halves, then both halves of the failing half, and so on: about `2 log2 n` calls for a batch
//! of `n`, most of them small, each one counting against the target's request rate as much as
//! a full call (on a 10 requests/s API, one poison row in 1,000 cost a fifth of the
//! throughput that way).
//!
//! The search here:
//!
//! 1. The suspects `S` are the failed batch. If `S` is a single item, go to 3. Else cut off
//!    a part `A` of `S` to test (below); hold the rest `B` aside.
//! 2. Send `A`, topped up with fresh items to the confirmed batch size (the *fill*), even
//!    when `A` is a single suspect:
//!    - it succeeds: `A` and the fill are done, and the fault is in `B`: `S = B`, go to 1;
//!    - it fails naming no item: the fault is in `A` (or, rarely, in the fill): `S = A`, go
//!      to 1, while `B` and the fill go back to ordinary work;
//!    - anything else (throttled, timed out, cancelled): the search ends and `B` goes back
//!      to ordinary work (a bad item among the returned ones fails again and starts a new
//!      search).
//! 3. The single suspect goes alone, with no fill, so that its failure is conclusive:
//!    failing alone it is dead-lettered (the policy's rule for a single item), passing it is
//!    done.
//!
//! What a search costs the target is its failed calls (each a whole request that applied
//! nothing) and the lone call at the end; a test that passes is an ordinary full call. The
//! part tested is a **quarter** of the suspects while enough items wait to fill the test
//! call, else a half. With one bad item among `n`, a test of a share `f` fails with
//! probability `f`, so the smaller the share, the fewer failed calls and the more steps:
//! for a failed batch of 23, halves cost 3.5 wasted calls on average (failed tests and the
//! lone call) in 5.6 steps, quarters 2.65 in 6.1, eighths 2.35 in 7.6. Quarters take most of
//! the saving for half a step more; without fill a test call carries only its part, so
//! there the fewest steps (halves) waste least.
//!
//! Only an item that failed alone is ever dead-lettered, as with bisection, so a good item
//! is never given up for its neighbour; a search runs in one slot, and the other calls go
//! on meanwhile; the batch size and the concurrency limit learn nothing from it.
//!
//! When failures naming no item are common (over a quarter of recent calls: a broken query
//! or mutation, not one bad row), testing a part at a time would cost more calls than
//! bisection, and the engine bisects instead ([`Searches::prefer_bisection`]).

use std::collections::HashMap;

use crate::item::{Batch, Item, Suspects};

/// Weight of the latest call in the running share of calls that failed naming no item.
const UNNAMED_WEIGHT: f64 = 1.0 / 16.0;

/// Above this running share of unnamed failures, failed batches are bisected.
const BISECT_ABOVE: f64 = 0.25;

/// The searches in progress: the halves held aside while the other half is tested.
#[derive(Debug)]
pub(super) struct Searches<T> {
    next: u64,
    held: HashMap<u64, Batch<T>>,
    /// Running share of calls that failed naming no item.
    unnamed: f64,
}

impl<T> Searches<T> {
    pub(super) fn new() -> Self {
        Searches {
            next: 0,
            held: HashMap::new(),
            unnamed: 0.0,
        }
    }

    /// Counts a finished call: whether it failed as a whole naming no item.
    pub(super) fn note_call(&mut self, unnamed_failure: bool) {
        let x = if unnamed_failure { 1.0 } else { 0.0 };
        self.unnamed += UNNAMED_WEIGHT * (x - self.unnamed);
    }

    /// Whether failures naming no item are too common for a search to pay.
    pub(super) fn prefer_bisection(&self) -> bool {
        self.unnamed > BISECT_ABOVE
    }

    /// Items held aside in searches.
    pub(super) fn items(&self) -> usize {
        self.held.values().map(Batch::len).sum()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Starts a search step over `suspects`: returns the test batch (the first quarter of
    /// them when `waiting` items could fill the rest of the call, else the first half;
    /// marked, the engine tops it up when it leaves) and holds the rest aside. A single
    /// suspect comes back alone, unmarked: as an ordinary batch of one, it is dead-lettered
    /// if it fails.
    pub(super) fn step(&mut self, mut suspects: Vec<Item<T>>, waiting: usize) -> Batch<T> {
        let n = suspects.len();
        if n < 2 {
            return Batch::from_items(suspects);
        }
        let quarter = n.div_ceil(4);
        let tested = if waiting >= n - quarter {
            quarter
        } else {
            n.div_ceil(2)
        };
        let rest = suspects.split_off(tested);
        let search = self.next;
        self.next += 1;
        self.held.insert(search, Batch::from_items(rest));
        let count = suspects.len();
        let mut test = Batch::from_items(suspects);
        test.suspects = Some(Suspects { search, count });
        test
    }

    /// The half held aside by `search`, taken out of the search.
    pub(super) fn take(&mut self, search: u64) -> Option<Batch<T>> {
        self.held.remove(&search)
    }

    /// Every held half, ending every search.
    pub(super) fn drain(&mut self) -> impl Iterator<Item = Batch<T>> + '_ {
        self.held.drain().map(|(_, b)| b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: u64) -> Vec<Item<u64>> {
        (0..n).map(|i| Item::new(i, i, i)).collect()
    }

    #[test]
    fn without_fill_a_step_tests_the_first_half_and_holds_the_rest() {
        let mut s = Searches::new();
        // 16 items waiting could not fill the 17 left of a test of a quarter (6).
        let test = s.step(items(23), 16);
        assert_eq!(test.len(), 12);
        let tag = test.suspects.expect("marked");
        assert_eq!(tag.count, 12);
        assert_eq!(s.items(), 11);
        let held = s.take(tag.search).expect("held");
        assert_eq!(
            held.payloads().copied().collect::<Vec<_>>(),
            (12..23).collect::<Vec<_>>()
        );
        assert!(s.is_empty() && s.items() == 0);
        assert!(s.take(tag.search).is_none());
    }

    #[test]
    fn with_fill_waiting_a_step_tests_a_quarter() {
        let mut s = Searches::new();
        let test = s.step(items(23), 17);
        assert_eq!(
            test.payloads().copied().collect::<Vec<_>>(),
            (0..6).collect::<Vec<_>>()
        );
        assert_eq!(test.suspects.expect("marked").count, 6);
        assert_eq!(s.items(), 17);
        // Two suspects: a quarter and a half are both one item, tested with fill.
        let mut s = Searches::new();
        let test = s.step(items(2), 1_000);
        assert_eq!(test.len(), 1);
        assert_eq!(test.suspects.expect("marked").count, 1);
    }

    #[test]
    fn a_single_suspect_goes_alone_unmarked() {
        let mut s = Searches::<u64>::new();
        let test = s.step(items(1), 1_000);
        assert_eq!(test.len(), 1);
        assert!(test.suspects.is_none());
        assert!(s.is_empty());
    }

    /// Runs a search for item `bad` of `n`, `waiting` items always waiting; returns the
    /// test calls that failed and the steps taken.
    fn search(n: u64, bad: u64, waiting: usize) -> (usize, usize) {
        let mut s = Searches::new();
        let mut suspects = items(n);
        let (mut failed, mut steps) = (0, 0);
        loop {
            let test = s.step(suspects, waiting);
            steps += 1;
            let Some(tag) = test.suspects else {
                assert_eq!(test.payloads().copied().collect::<Vec<_>>(), vec![bad]);
                return (failed, steps);
            };
            let held = s.take(tag.search).expect("held");
            suspects = if test.payloads().any(|&k| k == bad) {
                failed += 1;
                test.into_items()
            } else {
                held.into_items()
            };
        }
    }

    #[test]
    fn a_search_narrows_to_the_bad_item_in_a_few_steps() {
        for bad in 0..23 {
            let (_, steps) = search(23, bad, 0);
            assert!(steps <= 6, "halves: {steps} steps for item {bad} of 23");
            let (_, steps) = search(23, bad, 1_000);
            assert!(steps <= 11, "quarters: {steps} steps for item {bad} of 23");
        }
    }

    #[test]
    fn quarters_fail_fewer_test_calls_than_halves() {
        // Over every position of the bad item: the failed test calls, the ones that cost
        // the target a request for nothing.
        let total = |waiting| (0..23).map(|bad| search(23, bad, waiting).0).sum::<usize>();
        let (halves, quarters) = (total(0), total(1_000));
        assert!(
            quarters * 10 < halves * 8,
            "quarters {quarters} failed tests, halves {halves}"
        );
    }

    #[test]
    fn common_unnamed_failures_prefer_bisection() {
        let mut s = Searches::<u64>::new();
        for _ in 0..100 {
            s.note_call(false);
        }
        s.note_call(true);
        assert!(
            !s.prefer_bisection(),
            "one failure in 100 calls is a bad item"
        );
        for _ in 0..6 {
            s.note_call(true);
        }
        assert!(
            s.prefer_bisection(),
            "most calls failing is not one bad item"
        );
        let mut held = Searches::new();
        held.step(items(8), 0);
        held.step(items(4), 0);
        assert_eq!(held.items(), 6);
        assert_eq!(held.drain().map(|b| b.len()).sum::<usize>(), 6);
        assert_eq!(held.items(), 0);
    }
}
