//! The fairness rule within a priority: claims rotate between tenants, then between the
//! jobs of one tenant.
//!
//! A claim's share of one priority (see [`schedule`](crate::schedule)) is dealt one item at
//! a time, round-robin, to the **tenants** that have queued items at that priority: the
//! tenant served longest ago first (by the number of the claim that last served it; ties by
//! tenant name). Each item a tenant is dealt goes to its **jobs** in turn, the job served
//! longest ago first (ties: the older job). So a claim of `n` items splits evenly between
//! `t` tenants (`n / t` each, the remainder to those served longest ago), each tenant's part
//! evenly between its jobs, and within a job items go oldest first. With more tenants than
//! items, the tenants served longest ago get one each, and the next claim serves the others.
//!
//! A tenant or job with fewer items than its part (its queue ran dry, items wait for a
//! retry, or another worker holds them) leaves the rest to the others, and a tenant at its
//! in-flight quota ([`StoreOptions::tenant_max_in_flight`](crate::StoreOptions::tenant_max_in_flight))
//! is dealt no more than the quota leaves.
//!
//! A tenant with 1,000,000 queued items and one with 100 thus share every claim half and
//! half until the small one's items are all out. No weights: every tenant counts the same.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// A job with queued items: one lane of the rotation.
#[derive(Debug, Clone)]
pub(crate) struct Lane {
    /// The job's id.
    pub(crate) job: String,
    /// Its tenant.
    pub(crate) tenant: String,
    /// Its insertion order (older jobs first on ties).
    pub(crate) seq: i64,
    /// The claim that last served the job (0: never).
    pub(crate) served: i64,
    /// The claim that last served its tenant (0: never).
    pub(crate) tenant_served: i64,
    /// How many items it may still give this claim (its queued count, lowered as it is
    /// taken from, 0 once it ran dry).
    pub(crate) cap: u64,
    /// How many items this claim took from it so far.
    pub(crate) taken: u64,
}

/// How many items to ask of each lane (same order as `lanes`) to fill `n`, by the rule in
/// the module docs. `allowance` caps each named tenant's total (its in-flight quota's room);
/// a tenant not in it is uncapped.
///
/// Dealing continues from what this claim already took (`Lane::taken`), so a claim dealt in
/// several rounds (a priority's share, then its fill; again after a lane ran dry) splits as
/// one deal of the whole would: each item goes to the tenant with the fewest items so far
/// (ties: the one served longest ago, then by name), and within it to the job with the
/// fewest (ties: served longest ago, then the older job).
pub(crate) fn deal(lanes: &[Lane], n: usize, allowance: &BTreeMap<String, u64>) -> Vec<usize> {
    let mut asks = vec![0usize; lanes.len()];
    let mut by_tenant: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, lane) in lanes.iter().enumerate() {
        by_tenant.entry(&lane.tenant).or_default().push(i);
    }
    // Per tenant: its turn key, what this claim took of it, and a heap of its lanes that
    // have items, by (taken, served, seq).
    let mut tenants: Vec<(i64, &str, u64, Heap)> = by_tenant
        .into_iter()
        .map(|(tenant, idx)| {
            let served = idx
                .iter()
                .map(|&i| lanes[i].tenant_served)
                .max()
                .unwrap_or(0);
            let taken = idx.iter().map(|&i| lanes[i].taken).sum();
            let heap = idx
                .into_iter()
                .filter(|&i| lanes[i].cap > 0)
                .map(|i| Reverse((lanes[i].taken, lanes[i].served, lanes[i].seq, i)))
                .collect();
            (served, tenant, taken, heap)
        })
        .collect();
    tenants.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let mut room: Vec<u64> = tenants
        .iter()
        .map(|(_, t, ..)| allowance.get(*t).copied().unwrap_or(u64::MAX))
        .collect();
    // Tenants by (taken this claim, turn order).
    let mut turn: BinaryHeap<Reverse<(u64, usize)>> = tenants
        .iter()
        .enumerate()
        .filter(|(t, (.., heap))| room[*t] > 0 && !heap.is_empty())
        .map(|(t, (_, _, taken, _))| Reverse((*taken, t)))
        .collect();
    let mut left = n;
    while left > 0 {
        let Some(Reverse((taken, t))) = turn.pop() else {
            break;
        };
        let heap = &mut tenants[t].3;
        let Some(Reverse((lane_taken, served, seq, i))) = heap.pop() else {
            continue;
        };
        asks[i] += 1;
        left -= 1;
        room[t] -= 1;
        if (asks[i] as u64) < lanes[i].cap {
            heap.push(Reverse((lane_taken + 1, served, seq, i)));
        }
        if room[t] > 0 && !heap.is_empty() {
            turn.push(Reverse((taken + 1, t)));
        }
    }
    asks
}

/// A tenant's lanes, each as (taken, served, seq, index), smallest first.
type Heap = BinaryHeap<Reverse<(u64, i64, i64, usize)>>;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lane(job: &str, tenant: &str, seq: i64, served: i64, tenant_served: i64, cap: u64) -> Lane {
        Lane {
            job: job.into(),
            tenant: tenant.into(),
            seq,
            served,
            tenant_served,
            cap,
            taken: 0,
        }
    }

    #[test]
    fn tenants_split_evenly_whatever_their_backlog() {
        let lanes = [
            lane("a1", "a", 1, 5, 5, 200_000),
            lane("b1", "b", 2, 0, 0, 100),
        ];
        assert_eq!(deal(&lanes, 100, &BTreeMap::new()), [50, 50]);
        // The remainder goes to the tenant served longest ago.
        assert_eq!(deal(&lanes, 3, &BTreeMap::new()), [1, 2]);
        assert_eq!(deal(&lanes, 1, &BTreeMap::new()), [0, 1]);
    }

    #[test]
    fn a_tenants_part_rotates_between_its_jobs() {
        let lanes = [
            lane("a1", "a", 1, 9, 9, 1000),
            lane("a2", "a", 2, 0, 9, 1000),
            lane("a3", "a", 3, 0, 9, 1000),
            lane("b1", "b", 4, 3, 3, 1000),
        ];
        // b first (served longest ago), a's part: a2, a3 (never served, older first), a1.
        assert_eq!(deal(&lanes, 12, &BTreeMap::new()), [2, 2, 2, 6]);
        assert_eq!(deal(&lanes, 4, &BTreeMap::new()), [0, 1, 1, 2]);
    }

    #[test]
    fn short_lanes_leave_their_part_to_the_others() {
        let lanes = [lane("a1", "a", 1, 0, 0, 1000), lane("b1", "b", 2, 0, 0, 3)];
        assert_eq!(deal(&lanes, 100, &BTreeMap::new()), [97, 3]);
        let dry = [lane("a1", "a", 1, 0, 0, 0), lane("b1", "b", 2, 0, 0, 0)];
        assert_eq!(deal(&dry, 10, &BTreeMap::new()), [0, 0]);
    }

    #[test]
    fn a_second_round_continues_the_first() {
        // The first round gave a 3 (a1 2, a2 1) and b 1: b and a2 catch up first.
        let mut lanes = [
            lane("a1", "a", 1, 0, 0, 100),
            lane("a2", "a", 2, 0, 0, 100),
            lane("b1", "b", 3, 0, 0, 100),
        ];
        for (l, t) in lanes.iter_mut().zip([2, 1, 1]) {
            l.taken = t;
        }
        assert_eq!(deal(&lanes, 2, &BTreeMap::new()), [0, 0, 2]);
        assert_eq!(deal(&lanes, 4, &BTreeMap::new()), [0, 1, 3]);
    }

    #[test]
    fn allowance_caps_a_tenant() {
        let lanes = [
            lane("a1", "a", 1, 0, 0, 1000),
            lane("b1", "b", 2, 0, 0, 1000),
        ];
        let allowance = BTreeMap::from([("a".to_owned(), 5)]);
        assert_eq!(deal(&lanes, 100, &allowance), [5, 95]);
        let allowance = BTreeMap::from([("a".to_owned(), 0), ("b".to_owned(), 0)]);
        assert_eq!(deal(&lanes, 100, &allowance), [0, 0]);
    }

    proptest! {
        #[test]
        fn deals_exactly_what_fits_and_evenly(
            caps in proptest::collection::vec((0usize..4, 0u64..50, 0i64..5), 1..12),
            n in 0usize..300,
        ) {
            let lanes: Vec<Lane> = caps
                .iter()
                .enumerate()
                .map(|(i, (t, cap, served))| {
                    lane(&format!("j{i}"), &format!("t{t}"), i as i64, *served, *served, *cap)
                })
                .collect();
            let asks = deal(&lanes, n, &BTreeMap::new());
            let total_cap: u64 = lanes.iter().map(|l| l.cap).sum();
            prop_assert_eq!(asks.iter().sum::<usize>() as u64, (n as u64).min(total_cap));
            for (a, l) in asks.iter().zip(&lanes) {
                prop_assert!(*a as u64 <= l.cap);
            }
            // Two tenants that both had items left over got parts differing by at most one.
            let mut per: BTreeMap<&str, (usize, bool)> = BTreeMap::new();
            for (a, l) in asks.iter().zip(&lanes) {
                let e = per.entry(&l.tenant).or_default();
                e.0 += a;
                e.1 |= (*a as u64) < l.cap;
            }
            let unfilled: Vec<usize> = per.values().filter(|(_, more)| *more).map(|(a, _)| *a).collect();
            if let (Some(lo), Some(hi)) = (unfilled.iter().min(), unfilled.iter().max()) {
                prop_assert!(hi - lo <= 1, "{per:?}");
            }
        }
    }
}
