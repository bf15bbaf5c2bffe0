//! Splitting a batch that failed as a whole, so one poison item costs O(log n) extra calls and
//! never sinks its neighbours.
//!
//! Two strategies: a ladder of sizes (the monday.com board-update job's `15 -> 5 -> 1`: a
//! failed batch is cut into chunks of the largest rung smaller than it) and bisection
//! (halves). Both always make progress: every part is strictly smaller than the batch it came
//! from.

use std::num::NonZeroUsize;

use crate::error::Error;
use crate::item::{Batch, Item};

/// How a failed batch is cut into smaller ones.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SplitStrategy {
    /// Cut in halves (the default).
    #[default]
    Bisect,
    /// Cut into chunks of the largest rung smaller than the batch; rungs are strictly
    /// decreasing and end in 1. Build with [`SplitStrategy::ladder`].
    Ladder(Vec<NonZeroUsize>),
}

impl SplitStrategy {
    /// A ladder such as `[15, 5, 1]`. Rungs must be strictly decreasing; a final `1` is added
    /// if missing so that a single poison item is always isolated.
    pub fn ladder(rungs: &[usize]) -> Result<Self, Error> {
        if rungs.is_empty() {
            return Err(Error::config(
                "dispatch.split_ladder",
                "needs at least one size",
            ));
        }
        let mut out = Vec::with_capacity(rungs.len() + 1);
        for pair in rungs.windows(2) {
            if pair[1] >= pair[0] {
                return Err(Error::config(
                    "dispatch.split_ladder",
                    format!(
                        "sizes must strictly decrease, got {} then {}",
                        pair[0], pair[1]
                    ),
                ));
            }
        }
        for &r in rungs {
            out.push(NonZeroUsize::new(r).ok_or_else(|| {
                Error::config("dispatch.split_ladder", "sizes must be at least 1")
            })?);
        }
        if out.last().map(|n| n.get()) != Some(1) {
            out.push(NonZeroUsize::MIN);
        }
        Ok(SplitStrategy::Ladder(out))
    }

    /// The chunk size a batch of `len` items (`len >= 2`) is cut into.
    pub fn part_size(&self, len: usize) -> usize {
        match self {
            SplitStrategy::Bisect => len.div_ceil(2),
            SplitStrategy::Ladder(rungs) => rungs
                .iter()
                .map(|r| r.get())
                .find(|&r| r < len)
                .unwrap_or(1),
        }
    }

    /// Cuts `batch` (two or more items) into parts, each strictly smaller, keeping the item
    /// order. Failures charged at the batch's level are refunded to its items.
    pub(crate) fn split<T>(&self, batch: Batch<T>) -> Vec<Batch<T>> {
        let refund = batch.level_failures;
        let size = self.part_size(batch.len()).max(1);
        let mut parts = Vec::with_capacity(batch.len().div_ceil(size));
        let mut current: Vec<Item<T>> = Vec::with_capacity(size);
        for mut item in batch.into_items() {
            item.failures = item.failures.saturating_sub(refund);
            current.push(item);
            if current.len() == size {
                parts.push(Batch::from_items(std::mem::replace(
                    &mut current,
                    Vec::with_capacity(size),
                )));
            }
        }
        if !current.is_empty() {
            parts.push(Batch::from_items(current));
        }
        parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn batch(n: usize) -> Batch<usize> {
        Batch::from_items((0..n).map(|i| Item::new(i as u64, i as u64, i)).collect())
    }

    #[test]
    fn board_update_ladder_15_5_1() {
        let s = SplitStrategy::ladder(&[15, 5, 1]).unwrap();
        assert_eq!(s.part_size(40), 15);
        assert_eq!(s.part_size(15), 5);
        assert_eq!(s.part_size(5), 1);
        let parts = s.split(batch(15));
        assert_eq!(
            parts.iter().map(Batch::len).collect::<Vec<_>>(),
            vec![5, 5, 5]
        );
    }

    #[test]
    fn ladder_validation() {
        assert!(SplitStrategy::ladder(&[5, 15]).is_err());
        assert!(SplitStrategy::ladder(&[]).is_err());
        assert!(SplitStrategy::ladder(&[3, 0]).is_err());
        assert_eq!(SplitStrategy::ladder(&[4]).unwrap().part_size(3), 1);
    }

    proptest! {
        #[test]
        fn parts_are_smaller_and_keep_every_item(n in 2usize..500, rungs in proptest::collection::btree_set(1usize..100, 1..5)) {
            let rungs: Vec<usize> = rungs.into_iter().rev().collect();
            for strategy in [SplitStrategy::Bisect, SplitStrategy::ladder(&rungs).unwrap()] {
                let parts = strategy.split(batch(n));
                let mut seen: Vec<usize> = parts.iter().flat_map(|b| b.payloads().copied()).collect();
                prop_assert!(parts.iter().all(|p| p.len() < n && !p.is_empty()));
                seen.sort_unstable();
                prop_assert_eq!(seen, (0..n).collect::<Vec<_>>());
            }
        }
    }
}
