//! The claim priority rule: high first, low never starved.
//!
//! A claim of `limit` items is split by weight, **4 : 2 : 1** for high : medium : low. Each
//! priority first gets `floor(limit × weight / 7)` items; the (at most two) items left over
//! go to priorities drawn at random with the same weights, so even a claim of one item goes
//! to low one time in seven on average. Then, in priority order, whatever a priority could
//! not fill (its queue ran dry) is filled from the others: an idle high queue leaves its
//! share to medium, then low.
//!
//! So while every queue is busy, workers spend 4/7 of their capacity on high, 2/7 on medium
//! and 1/7 on low; when only one queue has work, it gets everything. Within a priority,
//! items go oldest first (by item id), among those whose `available_at` has come.

use rand::Rng;

use crate::types::{db_index, Priority};

/// The weights, high to low.
pub(crate) const WEIGHTS: [usize; 3] = [4, 2, 1];

/// The most items one claim returns; larger limits are clamped.
pub(crate) const MAX_CLAIM: usize = 10_000;

/// The per-priority shares of a claim of `limit` items, high first (index: `db_index`).
pub(crate) fn shares(limit: usize, rng: &mut impl Rng) -> [usize; 3] {
    let total: usize = WEIGHTS.iter().sum();
    let limit = limit.min(MAX_CLAIM);
    let mut s = WEIGHTS.map(|w| limit * w / total);
    for _ in 0..limit - s.iter().sum::<usize>() {
        let mut r = rng.gen_range(0..total);
        for (i, w) in WEIGHTS.iter().enumerate() {
            if r < *w {
                s[i] += 1;
                break;
            }
            r -= w;
        }
    }
    s
}

/// Tracks one claim: the first pass takes each share, the fill pass tops up from the
/// priorities that still had items, highest first.
#[derive(Debug)]
pub(crate) struct Plan {
    limit: usize,
    taken: usize,
    dry: [bool; 3],
}

impl Plan {
    pub(crate) fn new(limit: usize) -> Self {
        Plan {
            limit: limit.min(MAX_CLAIM),
            taken: 0,
            dry: [false; 3],
        }
    }

    /// The first pass: how many to ask of each priority.
    pub(crate) fn first_pass(&self) -> [(Priority, usize); 3] {
        let s = shares(self.limit, &mut rand::thread_rng());
        Priority::DESCENDING.map(|p| (p, s[db_index(p)]))
    }

    /// Records that asking `p` for `asked` items gave `got`.
    pub(crate) fn record(&mut self, p: Priority, asked: usize, got: usize) {
        self.taken += got;
        if got < asked {
            self.dry[db_index(p)] = true;
        }
    }

    /// For the fill pass: how many more to ask of `p` (0: skip it).
    pub(crate) fn fill(&self, p: Priority) -> usize {
        if self.dry[db_index(p)] {
            0
        } else {
            self.limit - self.taken
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    #[test]
    fn multiples_of_seven_split_exactly() {
        let mut rng = SmallRng::seed_from_u64(1);
        assert_eq!(shares(7, &mut rng), [4, 2, 1]);
        assert_eq!(shares(70, &mut rng), [40, 20, 10]);
        assert_eq!(shares(0, &mut rng), [0, 0, 0]);
    }

    #[test]
    fn single_item_claims_reach_low_one_time_in_seven() {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut counts = [0usize; 3];
        for _ in 0..7000 {
            let s = shares(1, &mut rng);
            for i in 0..3 {
                counts[i] += s[i];
            }
        }
        assert!((3700..4300).contains(&counts[0]), "{counts:?}");
        assert!((1700..2300).contains(&counts[1]), "{counts:?}");
        assert!((800..1200).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn fill_skips_dry_priorities() {
        let mut plan = Plan::new(7);
        plan.record(Priority::High, 4, 1);
        plan.record(Priority::Medium, 2, 2);
        plan.record(Priority::Low, 1, 1);
        assert_eq!(plan.fill(Priority::High), 0);
        assert_eq!(plan.fill(Priority::Medium), 3);
        plan.record(Priority::Medium, 3, 3);
        assert_eq!(plan.fill(Priority::Low), 0);
    }

    proptest! {
        #[test]
        fn shares_sum_to_the_limit_and_stay_near_the_weights(limit in 0usize..20_000, seed: u64) {
            let mut rng = SmallRng::seed_from_u64(seed);
            let s = shares(limit, &mut rng);
            let limit = limit.min(MAX_CLAIM);
            prop_assert_eq!(s.iter().sum::<usize>(), limit);
            for i in 0..3 {
                let floor = limit * WEIGHTS[i] / 7;
                prop_assert!(s[i] >= floor && s[i] <= floor + 2);
            }
        }
    }
}
