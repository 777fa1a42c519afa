//! The course's lab 5A shard-controller tests as scenario functions on the
//! simulator. The original's minimal-transfer checks compare groups that are
//! gone by then (they cannot fail); these compare consecutive
//! configurations instead: on a join shards move only to the new groups, on
//! a leave only off the leaving ones, and no more than balance requires.

#![allow(clippy::missing_panics_doc)]

use std::collections::{BTreeMap, BTreeSet};

use super::shard_cluster::{ShardCluster, ShardClusterConfig};
use raftkv_core::api::ShardConfig;
use raftkv_core::client::CtrlClerk;
use raftkv_core::types::{ConfigNum, GroupId, ShardId};

fn servers(g: u64, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("server-{g}-{i}")).collect()
}

fn one(g: u64, n: usize) -> BTreeMap<GroupId, Vec<String>> {
    BTreeMap::from([(GroupId(g), servers(g, n))])
}

async fn query(ck: &mut CtrlClerk, num: Option<ConfigNum>) -> ShardConfig {
    match ck.query(num).await {
        Ok(c) => c,
        Err(e) => panic!("query {num:?} failed: {e}"),
    }
}

/// The lab's `check`: the latest configuration has exactly `gids`, every
/// shard on one of them, within one shard of each other.
pub async fn check(ck: &mut CtrlClerk, gids: &[u64]) -> ShardConfig {
    let c = query(ck, None).await;
    let want: BTreeSet<GroupId> = gids.iter().map(|&g| GroupId(g)).collect();
    let have: BTreeSet<GroupId> = c.groups.keys().copied().collect();
    assert_eq!(have, want, "config {} has groups {have:?}, expected {want:?}", c.num);
    if !want.is_empty() {
        for (s, g) in c.shards.iter().enumerate() {
            assert!(want.contains(g), "shard {s} is on group {g}, not a member of config {}", c.num);
        }
        let counts: Vec<usize> = want.iter().map(|g| c.shards.iter().filter(|&s| s == g).count()).collect();
        let (min, max) = (counts.iter().min().copied().unwrap_or(0), counts.iter().max().copied().unwrap_or(0));
        assert!(max - min <= 1, "config {}: shards per group {counts:?} are not balanced", c.num);
    }
    c
}

/// Moving from `before` to `after` by joins: shards moved only to new
/// groups, and at most as many as balance requires.
fn assert_minimal_join(before: &ShardConfig, after: &ShardConfig) {
    let new: BTreeSet<GroupId> = after.groups.keys().filter(|g| !before.groups.contains_key(g)).copied().collect();
    let mut moved = 0;
    for (s, (a, b)) in before.shards.iter().zip(&after.shards).enumerate() {
        if a != b {
            moved += 1;
            assert!(new.contains(b) || *a == GroupId(0), "join: shard {s} moved from {a} to {b}, not a new group");
        }
    }
    let n = after.shards.len();
    let k = after.groups.len().max(1);
    let most = new.len() * n.div_ceil(k);
    assert!(moved <= most, "join of {new:?}: {moved} shards moved, at most {most} needed");
}

/// Moving from `before` to `after` by leaves: shards moved only off the
/// groups that left.
fn assert_minimal_leave(before: &ShardConfig, after: &ShardConfig) {
    let gone: BTreeSet<GroupId> = before.groups.keys().filter(|g| !after.groups.contains_key(g)).copied().collect();
    for (s, (a, b)) in before.shards.iter().zip(&after.shards).enumerate() {
        if a != b {
            assert!(gone.contains(a), "leave: shard {s} moved from {a} (still a member) to {b}");
        }
    }
}

/// `TestBasic5A`: joins and leaves, historical queries with each server
/// down in turn, moves, concurrent joins and leaves, minimal transfers.
pub async fn basic(seed: u64) {
    let mut c = ShardCluster::new(ShardClusterConfig::ctrler_only(), seed).await;
    let mut ck = c.ctrl_clerk();

    // Leave/join.
    let mut saved = vec![check(&mut ck, &[]).await];
    ck.join(one(1, 3)).await.unwrap_or_else(|e| panic!("join 1: {e}"));
    saved.push(check(&mut ck, &[1]).await);
    ck.join(one(2, 3)).await.unwrap_or_else(|e| panic!("join 2: {e}"));
    saved.push(check(&mut ck, &[1, 2]).await);
    let latest = query(&mut ck, None).await;
    assert_eq!(latest.groups.get(&GroupId(1)), Some(&servers(1, 3)), "group 1's servers");
    assert_eq!(latest.groups.get(&GroupId(2)), Some(&servers(2, 3)), "group 2's servers");
    ck.leave(vec![GroupId(1)]).await.unwrap_or_else(|e| panic!("leave 1: {e}"));
    saved.push(check(&mut ck, &[2]).await);
    ck.leave(vec![GroupId(2)]).await.unwrap_or_else(|e| panic!("leave 2: {e}"));
    saved.push(check(&mut ck, &[]).await);

    // Historical queries, with each server down in turn.
    for i in 0..3 {
        c.shutdown_ctrler(i);
        for s in &saved {
            assert_eq!(&query(&mut ck, Some(s.num)).await, s, "config {} read with controller {i} down", s.num);
        }
        c.start_ctrler(i).await;
        c.connect_all();
    }

    // Move.
    ck.join(one(503, 3)).await.unwrap_or_else(|e| panic!("join 503: {e}"));
    ck.join(one(504, 3)).await.unwrap_or_else(|e| panic!("join 504: {e}"));
    for s in 0..10u64 {
        let before = query(&mut ck, None).await;
        let to = if s < 5 { 503 } else { 504 };
        ck.move_shard(ShardId(s), GroupId(to)).await.unwrap_or_else(|e| panic!("move {s}: {e}"));
        let after = query(&mut ck, None).await;
        if before.shards[s as usize] != GroupId(to) {
            assert!(after.num > before.num, "a move that changes an owner makes a new configuration");
        }
    }
    let moved = query(&mut ck, None).await;
    for s in 0..10 {
        assert_eq!(moved.shards[s], GroupId(if s < 5 { 503 } else { 504 }), "shard {s} after the moves");
    }
    ck.leave(vec![GroupId(503)]).await.unwrap_or_else(|e| panic!("leave 503: {e}"));
    ck.leave(vec![GroupId(504)]).await.unwrap_or_else(|e| panic!("leave 504: {e}"));

    // Concurrent leave/join.
    let mut tasks = Vec::new();
    for i in 0..10u64 {
        let mut clerk = c.ctrl_clerk();
        tasks.push(tokio::spawn(async move {
            let g = 100 + 10 * i;
            clerk.join(one(g + 1000, 1)).await.unwrap_or_else(|e| panic!("join {}: {e}", g + 1000));
            clerk.join(one(g, 1)).await.unwrap_or_else(|e| panic!("join {g}: {e}"));
            clerk.leave(vec![GroupId(g + 1000)]).await.unwrap_or_else(|e| panic!("leave {}: {e}", g + 1000));
        }));
    }
    for t in tasks {
        if let Err(e) = t.await {
            panic!("seed {seed}: a concurrent clerk failed: {e}");
        }
    }
    let gids: Vec<u64> = (0..10).map(|i| 100 + 10 * i).collect();
    check(&mut ck, &gids).await;

    // Minimal transfers: join 11..15 one by one, then leave them one by one.
    let mut prev = query(&mut ck, None).await;
    for g in 11..=15 {
        ck.join(one(g, 1)).await.unwrap_or_else(|e| panic!("join {g}: {e}"));
        let next = query(&mut ck, None).await;
        assert_minimal_join(&prev, &next);
        prev = next;
    }
    for g in 11..=15 {
        ck.leave(vec![GroupId(g)]).await.unwrap_or_else(|e| panic!("leave {g}: {e}"));
        let next = query(&mut ck, None).await;
        assert_minimal_leave(&prev, &next);
        prev = next;
    }
    check(&mut ck, &gids).await;
    c.shutdown();
}

/// `TestMulti5A`: joins and leaves of several groups in one call, the same
/// checks, and `AgreeConfig`: with the leader shut down, the others still
/// answer the same latest configuration.
pub async fn multi(seed: u64) {
    let mut c = ShardCluster::new(ShardClusterConfig::ctrler_only(), seed).await;
    let mut ck = c.ctrl_clerk();
    check(&mut ck, &[]).await;
    let two: BTreeMap<GroupId, Vec<String>> =
        [(1, servers(1, 3)), (2, servers(2, 3))].into_iter().map(|(g, s)| (GroupId(g), s)).collect();
    ck.join(two).await.unwrap_or_else(|e| panic!("join 1,2: {e}"));
    check(&mut ck, &[1, 2]).await;
    ck.join(one(3, 3)).await.unwrap_or_else(|e| panic!("join 3: {e}"));
    let latest = check(&mut ck, &[1, 2, 3]).await;
    for g in 1..=3 {
        assert_eq!(latest.groups.get(&GroupId(g)), Some(&servers(g, 3)));
    }
    ck.leave(vec![GroupId(1), GroupId(3)]).await.unwrap_or_else(|e| panic!("leave 1,3: {e}"));
    check(&mut ck, &[2]).await;
    ck.leave(vec![GroupId(2)]).await.unwrap_or_else(|e| panic!("leave 2: {e}"));
    check(&mut ck, &[]).await;

    let mut tasks = Vec::new();
    for i in 0..10u64 {
        let mut clerk = c.ctrl_clerk();
        tasks.push(tokio::spawn(async move {
            let g = 1000 + i;
            let groups: BTreeMap<GroupId, Vec<String>> =
                [(g, servers(g, 3)), (g + 1000, servers(g + 1000, 1)), (g + 2000, servers(g + 2000, 1))]
                    .into_iter()
                    .map(|(g, s)| (GroupId(g), s))
                    .collect();
            clerk.join(groups).await.unwrap_or_else(|e| panic!("join {g}: {e}"));
            clerk.leave(vec![GroupId(g + 1000), GroupId(g + 2000)]).await.unwrap_or_else(|e| panic!("leave: {e}"));
        }));
    }
    for t in tasks {
        if let Err(e) = t.await {
            panic!("seed {seed}: a concurrent clerk failed: {e}");
        }
    }
    let gids: Vec<u64> = (1000..1010).collect();
    check(&mut ck, &gids).await;

    // Minimal transfers with multi-joins and multi-leaves.
    let prev = query(&mut ck, None).await;
    let more: BTreeMap<GroupId, Vec<String>> = (11..=15).map(|g| (GroupId(g), servers(g, 2))).collect();
    ck.join(more).await.unwrap_or_else(|e| panic!("join 11..15: {e}"));
    let next = query(&mut ck, None).await;
    assert_minimal_join(&prev, &next);
    ck.leave((11..=15).map(GroupId).collect()).await.unwrap_or_else(|e| panic!("leave 11..15: {e}"));
    let last = query(&mut ck, None).await;
    assert_minimal_leave(&next, &last);
    check(&mut ck, &gids).await;

    // AgreeConfig: find the leader (sampling until one is found), shut it
    // down, and the rest must agree on the latest configuration.
    let latest = query(&mut ck, None).await;
    let mut leader = None;
    for _ in 0..50 {
        leader = c.ctrl_leader().await;
        if leader.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let Some(leader) = leader else { panic!("seed {seed}: no controller leader") };
    c.shutdown_ctrler(leader);
    assert_eq!(query(&mut ck, None).await, latest, "the surviving controllers agree on the latest configuration");
    c.shutdown();
}

/// `TestMinimalAgain5A`: a third join moves at most 4 shards, all to the
/// new group; a leave moves only the leaving group's shards, at most 4.
pub async fn minimal_again(seed: u64) {
    let mut c = ShardCluster::new(ShardClusterConfig::ctrler_only(), seed).await;
    let mut ck = c.ctrl_clerk();
    ck.join(one(1, 1)).await.unwrap_or_else(|e| panic!("join 1: {e}"));
    ck.join(one(2, 1)).await.unwrap_or_else(|e| panic!("join 2: {e}"));
    let c1 = query(&mut ck, None).await;
    ck.join(one(3, 1)).await.unwrap_or_else(|e| panic!("join 3: {e}"));
    let c2 = query(&mut ck, None).await;
    let moved: Vec<usize> = (0..10).filter(|&s| c1.shards[s] != c2.shards[s]).collect();
    for &s in &moved {
        assert_eq!(c2.shards[s], GroupId(3), "join 3: shard {s} moved elsewhere than the new group");
    }
    assert!(moved.len() <= 4, "join 3 moved {} shards, at most 10/3+1 = 4", moved.len());
    ck.leave(vec![GroupId(1)]).await.unwrap_or_else(|e| panic!("leave 1: {e}"));
    let c3 = query(&mut ck, None).await;
    let moved: Vec<usize> = (0..10).filter(|&s| c2.shards[s] != c3.shards[s]).collect();
    for &s in &moved {
        assert_eq!(c2.shards[s], GroupId(1), "leave 1: shard {s} moved though its group stayed");
    }
    assert!(moved.len() <= 4, "leave 1 moved {} shards, at most 4", moved.len());
    check(&mut ck, &[2, 3]).await;
    c.shutdown();
}
