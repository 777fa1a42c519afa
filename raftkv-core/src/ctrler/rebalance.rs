//! Rebalancing shards across groups: deterministic, moving as few shards as
//! possible, leaving every group within one shard of every other.

use std::collections::{BTreeMap, BTreeSet};

use crate::types::GroupId;

/// Reassign `shards` (the owner of each shard; `GroupId(0)` = unassigned)
/// to `groups`.
///
/// Every group's target is `n / k`, plus one for the `n % k` groups that
/// hold the most shards now (ties: lower group id), so shards stay where
/// they are whenever balance allows. Shards of groups not in `groups`, and
/// the lowest-numbered shards of groups over their target, are freed; the
/// freed shards go, in shard order, to the groups under their target, in
/// group order. With no groups every shard is unassigned. Only map-ordered
/// iteration is used: the same input always gives the same output.
pub fn rebalance(shards: &mut [GroupId], groups: &BTreeSet<GroupId>) {
    if groups.is_empty() {
        shards.iter_mut().for_each(|s| *s = GroupId(0));
        return;
    }
    let n = shards.len();
    let k = groups.len();
    let held = |g: GroupId, shards: &[GroupId]| shards.iter().filter(|&&s| s == g).count();
    let mut by_load: Vec<GroupId> = groups.iter().copied().collect();
    by_load.sort_by_key(|&g| (std::cmp::Reverse(held(g, shards)), g));
    let targets: BTreeMap<GroupId, usize> =
        by_load.iter().enumerate().map(|(rank, &g)| (g, n / k + usize::from(rank < n % k))).collect();
    let mut free: Vec<usize> = (0..n).filter(|&i| !groups.contains(&shards[i])).collect();
    for (&g, &target) in &targets {
        let mine: Vec<usize> = (0..n).filter(|&i| shards[i] == g).collect();
        if mine.len() > target {
            free.extend_from_slice(&mine[..mine.len() - target]);
        }
    }
    for &i in &free {
        shards[i] = GroupId(0);
    }
    free.sort_unstable();
    let mut free = free.into_iter();
    for (&g, &target) in &targets {
        let mut have = held(g, shards);
        while have < target {
            let Some(i) = free.next() else { break };
            shards[i] = g;
            have += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gids(ids: &[u64]) -> BTreeSet<GroupId> {
        ids.iter().map(|&g| GroupId(g)).collect()
    }

    fn owners(shards: &[GroupId]) -> Vec<u64> {
        shards.iter().map(|g| g.0).collect()
    }

    fn balanced(shards: &[GroupId], groups: &BTreeSet<GroupId>) -> bool {
        let counts: Vec<usize> = groups.iter().map(|g| shards.iter().filter(|&s| s == g).count()).collect();
        let (min, max) = (counts.iter().min().copied().unwrap_or(0), counts.iter().max().copied().unwrap_or(0));
        shards.iter().all(|s| groups.contains(s)) && max - min <= 1
    }

    #[test]
    fn joins_and_leaves_reproduce_the_seeds_assignment() {
        let mut s = vec![GroupId(0); 10];
        rebalance(&mut s, &gids(&[1]));
        assert_eq!(owners(&s), vec![1; 10]);
        rebalance(&mut s, &gids(&[1, 2]));
        assert_eq!(owners(&s), vec![2, 2, 2, 2, 2, 1, 1, 1, 1, 1], "`Config #2` of the CLI compatibility transcript");
        rebalance(&mut s, &gids(&[2]));
        assert_eq!(owners(&s), vec![2; 10]);
        rebalance(&mut s, &gids(&[]));
        assert_eq!(owners(&s), vec![0; 10]);
    }

    #[test]
    fn every_change_is_balanced_and_moves_the_fewest_shards() {
        // Grow to 12 groups (more than shards) and shrink back, one at a time.
        let mut s = vec![GroupId(0); 10];
        let mut live = BTreeSet::new();
        let steps: Vec<(bool, u64)> =
            (1..=12).map(|g| (true, g)).chain([3, 1, 12, 7, 2, 5].map(|g| (false, g))).collect();
        for (join, g) in steps {
            let before = s.clone();
            if join {
                live.insert(GroupId(g));
            } else {
                live.remove(&GroupId(g));
            }
            rebalance(&mut s, &live);
            assert!(balanced(&s, &live), "after {} {g}: {:?}", if join { "join" } else { "leave" }, owners(&s));
            let moved = before.iter().zip(&s).filter(|(a, b)| a != b).count();
            // Fewest possible: a join must fill the new group to its target;
            // a leave must move exactly the leaving group's shards.
            let k = live.len();
            let minimal = if join { 10 / k } else { before.iter().filter(|&&o| o == GroupId(g)).count() };
            assert!(
                moved <= minimal.max(1),
                "{} {g} moved {moved} shards, {minimal} suffice",
                if join { "join" } else { "leave" }
            );
            if !join {
                for (i, (a, b)) in before.iter().zip(&s).enumerate() {
                    assert!(a == b || *a == GroupId(g), "shard {i} moved off group {a} which did not leave");
                }
            }
        }
    }

    #[test]
    fn the_same_input_gives_the_same_output() {
        let groups = gids(&[9, 4, 17]);
        let mut a = vec![
            GroupId(4),
            GroupId(4),
            GroupId(0),
            GroupId(9),
            GroupId(4),
            GroupId(4),
            GroupId(8),
            GroupId(4),
            GroupId(4),
            GroupId(9),
        ];
        let mut b = a.clone();
        rebalance(&mut a, &groups);
        rebalance(&mut b, &groups);
        assert_eq!(a, b);
        assert!(balanced(&a, &groups));
    }
}
