//! The course's lab 4 (fault-tolerant key-value service) as scenario
//! functions on the simulator: one ShardKV group with a fixed configuration
//! plays the lab's kvraft service. Each function is one original test (or
//! the generic test with the original flags); `tests/kvraft_4*.rs` run them.

#![allow(clippy::missing_panics_doc)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{sleep, Instant};

use super::shard_cluster::{server_name, RecordedClerk, ShardCluster, ShardClusterConfig};
use crate::linearizability::assert_linearizable;
use raftkv_core::rng::DetRng;

/// The lab's election-timeout constant.
pub const ET: Duration = Duration::from_secs(1);

/// The flags of the lab's `GenericTest`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Generic {
    /// Concurrent clients.
    pub clients: usize,
    /// Servers.
    pub servers: usize,
    /// Drop and delay messages.
    pub unreliable: bool,
    /// Crash and restart every server after each round.
    pub crash: bool,
    /// Partition the servers at random during each round.
    pub partitions: bool,
    /// The lab's `maxraftstate` (bytes of log before a snapshot); `None`: no snapshots.
    pub maxraftstate: Option<u64>,
    /// Clients use random keys (checked only by the linearizability checker).
    pub random_keys: bool,
}

/// `x <client> <j> y`, the value of a client's `j`-th append.
fn append_value(client: usize, j: usize) -> String {
    format!("x {client} {j} y")
}

/// Every append of `client` (0..count) is in `value` exactly once, in order.
fn check_client_appends(client: usize, value: &str, count: usize) {
    let mut last = None;
    for j in 0..count {
        let wanted = append_value(client, j);
        let Some(at) = value.find(&wanted) else {
            panic!("client {client}: append {j} ({wanted:?}) missing from {value:?}");
        };
        assert!(value.rfind(&wanted) == Some(at), "client {client}: append {j} applied twice in {value:?}");
        if let Some(prev) = last {
            assert!(at > prev, "client {client}: append {j} out of order in {value:?}");
        }
        last = Some(at);
    }
}

async fn client_loop(
    mut ck: RecordedClerk,
    me: usize,
    clients: usize,
    random_keys: bool,
    stop: Arc<AtomicBool>,
    mut rng: DetRng,
) -> usize {
    let mut j = 0;
    let own = me.to_string();
    let mut expected = String::new();
    if !random_keys {
        ck.put(&own, "").await;
    }
    while !stop.load(Ordering::SeqCst) {
        if random_keys {
            let key = rng.below(clients).to_string();
            if rng.chance(1, 2) {
                ck.append(&key, &append_value(me, j)).await;
                j += 1;
            } else if rng.chance(1, 10) {
                ck.put(&key, &append_value(me, j)).await;
                j += 1;
            } else {
                ck.get(&key).await;
            }
        } else if rng.chance(1, 2) {
            let v = append_value(me, j);
            ck.append(&own, &v).await;
            expected.push_str(&v);
            j += 1;
        } else {
            let got = ck.get(&own).await;
            assert_eq!(got, expected, "client {me}: get of its own key");
        }
    }
    j
}

/// The lab's `GenericTest`: three rounds of concurrent clients under the
/// given faults, each round's appends checked, then the whole history
/// through the linearizability checker.
pub async fn generic_test(seed: u64, g: Generic) {
    let cfg = ShardClusterConfig::kv(g.servers, g.unreliable, g.maxraftstate.unwrap_or(0));
    let mut c = ShardCluster::new(cfg, seed).await;
    let mut ck = c.recorded_clerk();
    for round in 0..3 {
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = Vec::new();
        for me in 0..g.clients {
            let clerk = c.recorded_clerk();
            let rng = c.rng.fork();
            clients.push(tokio::spawn(client_loop(clerk, me, g.clients, g.random_keys, stop.clone(), rng)));
        }
        let partitioner = if g.partitions {
            sleep(Duration::from_secs(1)).await;
            Some(tokio::spawn(c.partitioner().run(stop.clone())))
        } else {
            None
        };
        sleep(Duration::from_secs(5)).await;
        stop.store(true, Ordering::SeqCst);
        if let Some(p) = partitioner {
            let _ = p.await;
            c.connect_all();
            sleep(ET).await;
        }
        let mut counts = Vec::new();
        for (me, h) in clients.into_iter().enumerate() {
            match h.await {
                Ok(n) => counts.push(n),
                Err(e) => panic!("seed {seed}: round {round}: client {me} failed: {e}"),
            }
        }
        if g.crash {
            c.shutdown_group(0);
            sleep(ET).await;
            c.start_group(0).await;
            c.connect_all();
        }
        if !g.random_keys {
            for (me, &n) in counts.iter().enumerate() {
                let value = ck.get(&me.to_string()).await;
                check_client_appends(me, &value, n);
            }
        }
        match g.maxraftstate {
            Some(max) => {
                let size = c.max_raft_state();
                assert!(size <= 8 * max, "seed {seed}: raft state of {size} bytes exceeds 8 × maxraftstate {max}");
            }
            None => {
                for i in 0..g.servers {
                    assert_eq!(c.snapshot_size(0, i), 0, "seed {seed}: server {i} snapshotted without maxraftstate");
                }
            }
        }
    }
    assert_linearizable(&c.recorder.operations());
    c.shutdown();
}

/// The lab's `GenericTestSpeed`: 1000 sequential appends by one client
/// take at most 33.3 ms each on average (virtual time).
pub async fn speed_test(seed: u64, maxraftstate: Option<u64>) {
    let mut c = ShardCluster::new(ShardClusterConfig::kv(3, false, maxraftstate.unwrap_or(0)), seed).await;
    let mut ck = c.recorded_clerk();
    ck.get("x").await;
    let started = Instant::now();
    let mut expected = String::new();
    for i in 0..1000 {
        let v = format!("x 0 {i} y");
        ck.append("x", &v).await;
        expected.push_str(&v);
    }
    let took = started.elapsed();
    assert!(took <= Duration::from_millis(33_333), "seed {seed}: 1000 appends took {took:?}, more than 33.3 s");
    assert_eq!(ck.get("x").await, expected);
    eprintln!("1000 appends in {took:?} of virtual time ({:?} per op)", took / 1000);
    c.shutdown();
}

/// `TestUnreliableOneKey4A`: 5 clients × 10 appends to one key over an
/// unreliable network; each append lands exactly once, in each client's order.
pub async fn unreliable_one_key(seed: u64) {
    let mut c = ShardCluster::new(ShardClusterConfig::kv(3, true, 0), seed).await;
    let mut ck = c.recorded_clerk();
    ck.put("k", "").await;
    let mut clients = Vec::new();
    for me in 0..5 {
        let mut clerk = c.recorded_clerk();
        clients.push(tokio::spawn(async move {
            for n in 0..10 {
                clerk.append("k", &append_value(me, n)).await;
            }
        }));
    }
    for h in clients {
        let _ = h.await;
    }
    let value = ck.get("k").await;
    for me in 0..5 {
        check_client_appends(me, &value, 10);
    }
    assert_linearizable(&c.recorder.operations());
    c.shutdown();
}

/// `TestOnePartition4A`: a minority holding the old leader cannot complete
/// operations; the majority goes on; after healing the pending write lands.
pub async fn one_partition(seed: u64) {
    let mut c = ShardCluster::new(ShardClusterConfig::kv(5, false, 0), seed).await;
    let mut ck = c.recorded_clerk();
    ck.put("1", "13").await;
    let leader = c.group_leader(0).await.unwrap_or(0);
    // Majority: the first three non-leaders; minority: the rest and the leader.
    let others: Vec<usize> = (0..5).filter(|&i| i != leader).collect();
    let majority: Vec<usize> = others[..3].to_vec();
    let minority: Vec<usize> = others[3..].iter().copied().chain([leader]).collect();
    c.partition(&majority, &minority);
    let names = |ids: &[usize]| ids.iter().map(|&i| server_name(0, i)).collect::<Vec<_>>();
    let mut ck_major = c.recorded_clerk_reaching(&names(&majority));
    let mut ck_minor1 = c.recorded_clerk_reaching(&names(&minority));
    let mut ck_minor2 = c.recorded_clerk_reaching(&names(&minority));
    let minor1 = ck_minor1.node();
    let minor2 = ck_minor2.node();

    ck_major.put("1", "14").await;
    assert_eq!(ck_major.get("1").await, "14");

    let put = tokio::spawn(async move { ck_minor1.put("1", "15").await });
    let get = tokio::spawn(async move { ck_minor2.get("1").await });
    sleep(Duration::from_secs(1)).await;
    assert!(!put.is_finished(), "seed {seed}: a Put in the minority completed");
    assert!(!get.is_finished(), "seed {seed}: a Get in the minority completed");

    assert_eq!(ck_major.get("1").await, "14");
    ck_major.put("1", "16").await;
    assert_eq!(ck_major.get("1").await, "16");

    c.connect_all();
    let all = names(&(0..5).collect::<Vec<_>>());
    c.net.set_reach(minor1, &all);
    c.net.set_reach(minor2, &all);
    sleep(ET).await;
    let started = Instant::now();
    while !put.is_finished() {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "seed {seed}: the minority's Put did not finish after healing"
        );
        sleep(Duration::from_millis(10)).await;
    }
    let _ = put.await;
    assert_eq!(ck.get("1").await, "15");
    get.abort();
    assert_linearizable(&c.recorder.operations());
    c.shutdown();
}

/// `TestSnapshotRPC4B`: a server cut off while the others snapshot catches
/// up through InstallSnapshot; the log stays within 8000 bytes.
pub async fn snapshot_rpc(seed: u64) {
    let maxraftstate = 1000;
    let mut c = ShardCluster::new(ShardClusterConfig::kv(3, false, maxraftstate), seed).await;
    let mut ck = c.recorded_clerk();
    ck.put("a", "A").await;
    c.partition(&[0, 1], &[2]);
    let mut ck01 = c.recorded_clerk_reaching(&[server_name(0, 0), server_name(0, 1)]);
    for i in 0..50 {
        ck01.put(&i.to_string(), &i.to_string()).await;
    }
    sleep(ET).await;
    ck01.put("b", "B").await;
    let size = c.max_raft_state();
    assert!(size <= 8 * maxraftstate, "seed {seed}: raft state {size} > {}", 8 * maxraftstate);

    c.partition(&[0, 2], &[1]);
    let mut ck02 = c.recorded_clerk_reaching(&[server_name(0, 0), server_name(0, 2)]);
    ck02.put("c", "C").await;
    ck02.put("d", "D").await;
    assert_eq!(ck02.get("a").await, "A");
    assert_eq!(ck02.get("b").await, "B");
    assert_eq!(ck02.get("1").await, "1");
    assert_eq!(ck02.get("49").await, "49");

    c.connect_all();
    ck.put("e", "E").await;
    assert_eq!(ck.get("c").await, "C");
    assert_eq!(ck.get("e").await, "E");
    assert_eq!(ck.get("1").await, "1");
    assert_linearizable(&c.recorder.operations());
    c.shutdown();
}

/// `TestSnapshotSize4B`: 200 rounds of small writes keep the log within
/// 8000 bytes and the snapshot within 500 bytes.
pub async fn snapshot_size(seed: u64) {
    let maxraftstate = 1000;
    let mut c = ShardCluster::new(ShardClusterConfig::kv(3, false, maxraftstate), seed).await;
    let mut ck = c.recorded_clerk();
    for _ in 0..200 {
        ck.put("x", "0").await;
        assert_eq!(ck.get("x").await, "0");
        ck.put("x", "1").await;
        assert_eq!(ck.get("x").await, "1");
    }
    let raft = c.max_raft_state();
    assert!(raft <= 8 * maxraftstate, "seed {seed}: raft state {raft} > {}", 8 * maxraftstate);
    for i in 0..3 {
        let snap = c.snapshot_size(0, i);
        assert!(snap <= 500, "seed {seed}: server {i}'s snapshot is {snap} bytes, more than 500");
    }
    c.shutdown();
}
