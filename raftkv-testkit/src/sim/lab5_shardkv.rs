//! The course's lab 5 ShardKV tests (5A static shards and rejection, 5B,
//! and the challenges) as scenario functions on the simulator.
//!
//! The course maps a key to a shard by its first byte, so its keys "0".."9"
//! fall in distinct shards; here [`key`] picks, for index `i`, a key of
//! shard `i % 10` under our hash, keeping that property.

#![allow(clippy::missing_panics_doc)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{sleep, Instant};

use super::shard_cluster::{gid, RecordedClerk, ShardCluster, ShardClusterConfig};
use crate::linearizability::assert_linearizable;
use raftkv_core::api::shard_of;
use raftkv_core::rng::DetRng;
use raftkv_core::types::ShardId;

/// The key of index `i`: one in shard `i % 10`.
#[must_use]
pub fn key(i: usize) -> String {
    let shard = ShardId((i % 10) as u64);
    (0..).map(|n| format!("{i}-{n}")).find(|k| shard_of(k.as_bytes(), 10) == shard).unwrap_or_default()
}

fn random_string(rng: &mut DetRng, n: usize) -> String {
    (0..n).map(|_| char::from(b'a' + rng.below(26) as u8)).collect()
}

async fn check(ck: &mut RecordedClerk, i: usize, value: &str) {
    let got = ck.get(&key(i)).await;
    assert_eq!(got, value, "key {i} ({})", key(i));
}

/// Put `n` keys with random values of `len` characters; returns the values.
async fn fill(c: &mut ShardCluster, ck: &mut RecordedClerk, n: usize, len: usize) -> Vec<String> {
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        let v = random_string(&mut c.rng, len);
        ck.put(&key(i), &v).await;
        values.push(v);
    }
    values
}

/// Check every key, then append `len` random characters to each.
async fn check_and_append(c: &mut ShardCluster, ck: &mut RecordedClerk, values: &mut [String], len: usize) {
    for (i, v) in values.iter_mut().enumerate() {
        check(ck, i, v).await;
        let x = random_string(&mut c.rng, len);
        ck.append(&key(i), &x).await;
        v.push_str(&x);
    }
}

async fn check_all(ck: &mut RecordedClerk, values: &[String]) {
    for (i, v) in values.iter().enumerate() {
        check(ck, i, v).await;
    }
}

fn assert_no_snapshots(c: &ShardCluster, seed: u64) {
    for g in 0..c.config().groups {
        for i in 0..c.config().group_size {
            assert_eq!(c.snapshot_size(g, i), 0, "seed {seed}: server {g}/{i} took a snapshot without maxraftstate");
        }
    }
}

/// Start one fresh clerk per key reading it; report `(key, value)` as each finishes.
fn spawn_readers(
    c: &mut ShardCluster,
    n: usize,
    clerk: impl Fn(&mut ShardCluster) -> RecordedClerk,
) -> mpsc::UnboundedReceiver<(usize, String)> {
    let (tx, rx) = mpsc::unbounded_channel();
    for i in 0..n {
        let mut ck = clerk(c);
        let tx = tx.clone();
        tokio::spawn(async move {
            let v = ck.get(&key(i)).await;
            let _ = tx.send((i, v));
        });
    }
    rx
}

/// Collect completions until `quiet` passes without one.
async fn completions(rx: &mut mpsc::UnboundedReceiver<(usize, String)>, quiet: Duration) -> Vec<(usize, String)> {
    let mut done = Vec::new();
    while let Ok(Some(x)) = tokio::time::timeout(quiet, rx.recv()).await {
        done.push(x);
    }
    done
}

/// `TestStaticShards5A`: with one of two groups down, exactly the keys of
/// the other group's shards can be read; after a restart, all of them.
pub async fn static_shards(seed: u64) {
    let mut c = ShardCluster::new(ShardClusterConfig::sharded(2, false, 0), seed).await;
    let mut ck = c.recorded_clerk();
    c.join(&[0]).await;
    c.join(&[1]).await;
    let values = fill(&mut c, &mut ck, 10, 20).await;
    check_all(&mut ck, &values).await;
    c.shutdown_group(1);
    assert_no_snapshots(&c, seed);
    let mut rx = spawn_readers(&mut c, 10, ShardCluster::recorded_clerk);
    let done = completions(&mut rx, Duration::from_secs(2)).await;
    for (i, v) in &done {
        assert_eq!(v, &values[*i], "seed {seed}: key {i} read wrong");
    }
    assert_eq!(done.len(), 5, "seed {seed}: {} reads completed with one of two groups down, expected 5", done.len());
    c.start_group(1).await;
    check_all(&mut ck, &values).await;
    assert_linearizable(&c.recorder.operations());
    c.shutdown();
}

/// `TestRejection5A`: clerks of a second controller that gives every shard
/// to group 100 get answers only for the shards group 100 really owns.
pub async fn rejection(seed: u64) {
    let mut c = ShardCluster::new(ShardClusterConfig::sharded(2, false, 0), seed).await;
    let mut ck = c.recorded_clerk();
    c.join(&[0]).await;
    c.join(&[1]).await;
    let values = fill(&mut c, &mut ck, 10, 20).await;
    check_all(&mut ck, &values).await;
    let shadow = c.start_shadow_ctrler().await;
    let mut admin = c.ctrl_clerk_using(&shadow);
    let group0 = std::collections::BTreeMap::from([(gid(0), c.group_names(0))]);
    admin.join(group0).await.unwrap_or_else(|e| panic!("seed {seed}: join on the shadow controller: {e}"));
    let mut rx = spawn_readers(&mut c, 10, |c| c.recorded_clerk_using(&shadow));
    let done = completions(&mut rx, Duration::from_secs(2)).await;
    for (i, v) in &done {
        assert_eq!(v, &values[*i], "seed {seed}: key {i}: a group answered for a shard it does not own");
    }
    assert_eq!(done.len(), 5, "seed {seed}: {} reads completed through the shadow controller, expected 5", done.len());
    assert_linearizable(&c.recorder.operations());
    c.shutdown();
}

/// `TestJoinLeave5B`.
pub async fn join_leave(seed: u64) {
    let mut c = ShardCluster::new(ShardClusterConfig::sharded(3, false, 0), seed).await;
    let mut ck = c.recorded_clerk();
    c.join(&[0]).await;
    let mut values = fill(&mut c, &mut ck, 10, 5).await;
    check_all(&mut ck, &values).await;
    c.join(&[1]).await;
    check_and_append(&mut c, &mut ck, &mut values, 5).await;
    c.leave(&[0]).await;
    check_and_append(&mut c, &mut ck, &mut values, 5).await;
    sleep(Duration::from_secs(1)).await;
    assert_no_snapshots(&c, seed);
    c.shutdown_group(0);
    check_all(&mut ck, &values).await;
    assert_linearizable(&c.recorder.operations());
    c.shutdown();
}

/// `TestSnapshot5B`.
pub async fn snapshot(seed: u64) {
    let mut c = ShardCluster::new(ShardClusterConfig::sharded(3, false, 1000), seed).await;
    let mut ck = c.recorded_clerk();
    c.join(&[0]).await;
    let mut values = fill(&mut c, &mut ck, 30, 20).await;
    check_all(&mut ck, &values).await;
    c.join(&[1]).await;
    c.join(&[2]).await;
    c.leave(&[0]).await;
    check_and_append(&mut c, &mut ck, &mut values, 20).await;
    c.leave(&[1]).await;
    c.join(&[0]).await;
    check_and_append(&mut c, &mut ck, &mut values, 20).await;
    sleep(Duration::from_secs(1)).await;
    check_all(&mut ck, &values).await;
    sleep(Duration::from_secs(1)).await;
    let size = c.max_raft_state();
    assert!(size <= 8000, "seed {seed}: raft state of {size} bytes exceeds 8000");
    for g in 0..3 {
        c.shutdown_group(g);
    }
    for g in 0..3 {
        c.start_group(g).await;
    }
    check_all(&mut ck, &values).await;
    assert_linearizable(&c.recorder.operations());
    c.shutdown();
}

/// `TestMissChange5B`: servers down across several reconfigurations catch up.
pub async fn miss_change(seed: u64) {
    let mut c = ShardCluster::new(ShardClusterConfig::sharded(3, false, 1000), seed).await;
    let mut ck = c.recorded_clerk();
    c.join(&[0]).await;
    let mut values = fill(&mut c, &mut ck, 10, 20).await;
    check_all(&mut ck, &values).await;
    c.join(&[1]).await;
    for g in 0..3 {
        c.shutdown_server(g, 0);
    }
    c.join(&[2]).await;
    c.leave(&[1]).await;
    c.leave(&[0]).await;
    check_and_append(&mut c, &mut ck, &mut values, 20).await;
    c.join(&[1]).await;
    check_and_append(&mut c, &mut ck, &mut values, 20).await;
    for g in 0..3 {
        c.start_server(g, 0).await;
    }
    check_and_append(&mut c, &mut ck, &mut values, 20).await;
    sleep(Duration::from_secs(2)).await;
    for g in 0..3 {
        c.shutdown_server(g, 1);
    }
    c.join(&[0]).await;
    c.leave(&[2]).await;
    check_and_append(&mut c, &mut ck, &mut values, 20).await;
    for g in 0..3 {
        c.start_server(g, 1).await;
    }
    check_all(&mut ck, &values).await;
    assert_linearizable(&c.recorder.operations());
    c.shutdown();
}

/// A client appending random strings of `len` to key `i` until stopped,
/// pausing `pause` between appends; returns the value it expects.
async fn appender(
    mut ck: RecordedClerk,
    i: usize,
    len: usize,
    pause: Duration,
    start: String,
    stop: Arc<AtomicBool>,
    mut rng: DetRng,
) -> String {
    let mut value = start;
    while !stop.load(Ordering::SeqCst) {
        let x = random_string(&mut rng, len);
        ck.append(&key(i), &x).await;
        value.push_str(&x);
        if !pause.is_zero() {
            sleep(pause).await;
        }
    }
    value
}

struct Appenders {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<String>>,
}

fn start_appenders(c: &mut ShardCluster, values: &[String], len: usize, pause: Duration) -> Appenders {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let ck = c.recorded_clerk();
            let rng = c.rng.fork();
            tokio::spawn(appender(ck, i, len, pause, v.clone(), stop.clone(), rng))
        })
        .collect();
    Appenders { stop, tasks }
}

impl Appenders {
    async fn finish(self, seed: u64) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        let mut out = Vec::new();
        for t in self.tasks {
            match t.await {
                Ok(v) => out.push(v),
                Err(e) => panic!("seed {seed}: an appender failed: {e}"),
            }
        }
        out
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `TestConcurrent1_5B`.
pub async fn concurrent1(seed: u64) {
    let mut c = ShardCluster::new(ShardClusterConfig::sharded(3, false, 100), seed).await;
    let mut ck = c.recorded_clerk();
    c.join(&[0]).await;
    let values = fill(&mut c, &mut ck, 10, 5).await;
    let appenders = start_appenders(&mut c, &values, 5, ms(10));
    sleep(ms(150)).await;
    c.join(&[1]).await;
    sleep(ms(500)).await;
    c.join(&[2]).await;
    sleep(ms(500)).await;
    c.leave(&[0]).await;
    for g in 0..3 {
        c.shutdown_group(g);
        sleep(ms(100)).await;
    }
    c.leave(&[2]).await;
    sleep(ms(100)).await;
    for g in 0..3 {
        c.start_group(g).await;
    }
    sleep(ms(100)).await;
    c.join(&[0]).await;
    c.leave(&[1]).await;
    sleep(ms(500)).await;
    c.join(&[1]).await;
    sleep(Duration::from_secs(1)).await;
    let values = appenders.finish(seed).await;
    check_all(&mut ck, &values).await;
    assert_linearizable(&c.recorder.operations());
    c.shutdown();
}

/// `TestConcurrent2_5B`.
pub async fn concurrent2(seed: u64) {
    let mut c = ShardCluster::new(ShardClusterConfig::sharded(3, false, 0), seed).await;
    let mut ck = c.recorded_clerk();
    c.join(&[1]).await;
    c.join(&[0]).await;
    c.join(&[2]).await;
    let values = fill(&mut c, &mut ck, 10, 1).await;
    let appenders = start_appenders(&mut c, &values, 1, ms(50));
    c.leave(&[0]).await;
    c.leave(&[2]).await;
    sleep(Duration::from_secs(3)).await;
    c.join(&[0]).await;
    c.join(&[2]).await;
    c.leave(&[1]).await;
    sleep(Duration::from_secs(3)).await;
    c.join(&[1]).await;
    c.leave(&[0]).await;
    c.leave(&[2]).await;
    sleep(Duration::from_secs(3)).await;
    c.shutdown_group(1);
    c.shutdown_group(2);
    sleep(Duration::from_secs(1)).await;
    c.start_group(1).await;
    c.start_group(2).await;
    sleep(Duration::from_secs(2)).await;
    let values = appenders.finish(seed).await;
    check_all(&mut ck, &values).await;
    assert_linearizable(&c.recorder.operations());
    c.shutdown();
}

/// `TestConcurrent3_5B`.
pub async fn concurrent3(seed: u64) {
    let mut c = ShardCluster::new(ShardClusterConfig::sharded(3, false, 300), seed).await;
    let mut ck = c.recorded_clerk();
    c.join(&[0]).await;
    let values = fill(&mut c, &mut ck, 10, 1).await;
    let appenders = start_appenders(&mut c, &values, 1, Duration::ZERO);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(12) {
        c.join(&[2]).await;
        c.join(&[1]).await;
        sleep(ms(c.rng.range_inclusive(0, 899))).await;
        for g in 0..3 {
            c.shutdown_group(g);
        }
        for g in 0..3 {
            c.start_group(g).await;
        }
        sleep(ms(c.rng.range_inclusive(0, 899))).await;
        c.leave(&[1]).await;
        c.leave(&[2]).await;
        sleep(ms(c.rng.range_inclusive(0, 899))).await;
    }
    sleep(Duration::from_secs(2)).await;
    let values = appenders.finish(seed).await;
    check_all(&mut ck, &values).await;
    assert_linearizable(&c.recorder.operations());
    c.shutdown();
}

/// `TestUnreliable1_5B`.
pub async fn unreliable1(seed: u64) {
    let mut c = ShardCluster::new(ShardClusterConfig::sharded(3, true, 100), seed).await;
    let mut ck = c.recorded_clerk();
    c.join(&[0]).await;
    let mut values = fill(&mut c, &mut ck, 10, 5).await;
    c.join(&[1]).await;
    c.join(&[2]).await;
    c.leave(&[0]).await;
    for ii in 0..20 {
        let i = ii % 10;
        check(&mut ck, i, &values[i]).await;
        let x = random_string(&mut c.rng, 5);
        ck.append(&key(i), &x).await;
        values[i].push_str(&x);
    }
    c.join(&[0]).await;
    c.leave(&[1]).await;
    for ii in 0..20 {
        let i = ii % 10;
        check(&mut ck, i, &values[i]).await;
    }
    assert_linearizable(&c.recorder.operations());
    c.shutdown();
}

async fn unreliable_schedule(c: &mut ShardCluster) {
    sleep(ms(150)).await;
    c.join(&[1]).await;
    sleep(ms(500)).await;
    c.join(&[2]).await;
    sleep(ms(500)).await;
    c.leave(&[0]).await;
    sleep(ms(500)).await;
    c.leave(&[1]).await;
    sleep(ms(500)).await;
    c.join(&[1]).await;
    c.join(&[0]).await;
    sleep(Duration::from_secs(2)).await;
}

/// `TestUnreliable2_5B`.
pub async fn unreliable2(seed: u64) {
    let mut c = ShardCluster::new(ShardClusterConfig::sharded(3, true, 100), seed).await;
    let mut ck = c.recorded_clerk();
    c.join(&[0]).await;
    let values = fill(&mut c, &mut ck, 10, 5).await;
    let appenders = start_appenders(&mut c, &values, 5, Duration::ZERO);
    unreliable_schedule(&mut c).await;
    let values = appenders.finish(seed).await;
    c.net.set_reliable(true);
    check_all(&mut ck, &values).await;
    assert_linearizable(&c.recorder.operations());
    c.shutdown();
}

/// `TestUnreliable3_5B`: random operations on random keys through the same
/// schedule, every one recorded and checked for linearizability.
pub async fn unreliable3(seed: u64) {
    let mut c = ShardCluster::new(ShardClusterConfig::sharded(3, true, 100), seed).await;
    let mut ck = c.recorded_clerk();
    c.join(&[0]).await;
    let n = 10;
    fill(&mut c, &mut ck, n, 5).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let mut clerk = c.recorded_clerk();
        let mut rng = c.rng.fork();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let k = key(rng.below(n));
                let x = random_string(&mut rng, 5);
                let dice = rng.below(100);
                if dice < 50 {
                    clerk.append(&k, &x).await;
                } else if dice < 55 {
                    clerk.put(&k, &x).await;
                } else {
                    clerk.get(&k).await;
                }
            }
        }));
    }
    unreliable_schedule(&mut c).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        if let Err(e) = t.await {
            panic!("seed {seed}: a client failed: {e}");
        }
    }
    c.net.set_reliable(true);
    assert_linearizable(&c.recorder.operations());
    c.shutdown();
}

/// `TestChallenge1Delete`: shards that moved away are deleted: with
/// snapshots after every entry, all servers together hold at most 117,000
/// bytes of Raft state and snapshots at the end.
pub async fn challenge1_delete(seed: u64) {
    let mut c = ShardCluster::new(ShardClusterConfig::sharded(3, false, 1), seed).await;
    let mut ck = c.recorded_clerk();
    c.join(&[0]).await;
    let n = 30;
    let values = fill(&mut c, &mut ck, n, 1000).await;
    check_all(&mut ck, &values[..3]).await;
    for _ in 0..2 {
        c.join(&[1]).await;
        c.leave(&[0]).await;
        c.join(&[2]).await;
        sleep(Duration::from_secs(3)).await;
        check_all(&mut ck, &values[..3]).await;
        c.leave(&[1]).await;
        c.join(&[0]).await;
        c.leave(&[2]).await;
        sleep(Duration::from_secs(3)).await;
        check_all(&mut ck, &values[..3]).await;
    }
    c.join(&[1]).await;
    c.join(&[2]).await;
    for _ in 0..3 {
        sleep(Duration::from_secs(1)).await;
        check_all(&mut ck, &values[..3]).await;
    }
    let total: u64 = (0..3)
        .flat_map(|g| (0..3).map(move |i| (g, i)))
        .map(|(g, i)| c.raft_state_size(g, i) + c.snapshot_size(g, i))
        .sum();
    let limit = 3 * (27 * 1000 + 2 * 3 * 1000 + 6000);
    assert!(total <= limit, "seed {seed}: servers hold {total} bytes of raft state and snapshots, more than {limit}");
    check_all(&mut ck, &values).await;
    assert_linearizable(&c.recorder.operations());
    c.shutdown();
}

/// The shards group `g` owns in the latest configuration.
async fn shards_of(c: &mut ShardCluster, g: usize) -> BTreeSet<usize> {
    let config = c.query().await;
    (0..config.shards.len()).filter(|&s| config.shards[s] == gid(g)).collect()
}

/// `TestChallenge2Unaffected`: shards that stay put keep serving while
/// another group's shards cannot be moved.
pub async fn challenge2_unaffected(seed: u64) {
    let mut c = ShardCluster::new(ShardClusterConfig::sharded(3, true, 100), seed).await;
    let mut ck = c.recorded_clerk();
    c.join(&[0]).await;
    for i in 0..10 {
        ck.put(&key(i), "100").await;
    }
    c.join(&[1]).await;
    let owned = shards_of(&mut c, 1).await;
    sleep(Duration::from_secs(1)).await;
    for &i in &owned {
        ck.put(&key(i), "101").await;
    }
    c.shutdown_group(0);
    c.leave(&[0]).await;
    sleep(Duration::from_secs(1)).await;
    for &i in &owned {
        check(&mut ck, i, "101").await;
        ck.put(&key(i), "101-1").await;
        check(&mut ck, i, "101-1").await;
    }
    assert_linearizable(&c.recorder.operations());
    c.shutdown();
}

/// `TestChallenge2Partial`: a group serves the shards it could install
/// though others it gained in the same configuration never arrive.
pub async fn challenge2_partial(seed: u64) {
    let mut c = ShardCluster::new(ShardClusterConfig::sharded(3, true, 100), seed).await;
    let mut ck = c.recorded_clerk();
    c.join(&[0, 1, 2]).await;
    sleep(Duration::from_secs(1)).await;
    for i in 0..10 {
        ck.put(&key(i), "100").await;
    }
    let from_102 = shards_of(&mut c, 2).await;
    c.shutdown_group(0);
    c.leave(&[0, 2]).await;
    sleep(Duration::from_secs(1)).await;
    for &i in &from_102 {
        check(&mut ck, i, "100").await;
        ck.put(&key(i), "100-2").await;
        check(&mut ck, i, "100-2").await;
    }
    assert_linearizable(&c.recorder.operations());
    c.shutdown();
}
