//! Lab 3D — snapshots, ported from MIT 6.5840 to the simulator.
//!
//! Members snapshot every 10 applied entries (the lab's `SnapShotInterval`);
//! where the lab bounds the persisted raft state we bound the durable log
//! (entries + hard state) of every member.

use raftkv_core::testkit::sim::{cmd, simulate, RaftCluster, RaftClusterConfig};

/// The lab's `SnapShotInterval`.
const SNAPSHOT_INTERVAL: u64 = 10;
/// The lab's `MAXLOGSIZE`.
const MAX_LOG_SIZE: u64 = 2000;

fn snapshot_config(servers: usize, unreliable: bool) -> RaftClusterConfig {
    RaftClusterConfig { unreliable, snapshot_every: SNAPSHOT_INTERVAL, ..RaftClusterConfig::new(servers) }
}

/// `one` with a fresh random value.
async fn one_rand(cfg: &mut RaftCluster, expected: usize) -> raftkv_core::LogIndex {
    let v = cfg.rng.next_u64();
    cfg.one(cmd(v), expected, true).await
}

/// The lab's `snapcommon`.
fn snapcommon(name: &'static str, disconnect: bool, reliable: bool, crash: bool) {
    simulate(name, |seed| async move {
        let iters = 30;
        let servers = 3;
        let mut cfg = RaftCluster::new(snapshot_config(servers, !reliable), seed).await;
        one_rand(&mut cfg, servers).await;
        let mut leader1 = cfg.check_one_leader().await;
        for i in 0..iters {
            let mut victim = (leader1 + 1) % servers;
            let mut sender = leader1;
            if i % 3 == 1 {
                sender = (leader1 + 1) % servers;
                victim = leader1;
            }
            if disconnect {
                cfg.disconnect(victim);
                one_rand(&mut cfg, servers - 1).await;
            }
            if crash {
                cfg.crash1(victim);
                one_rand(&mut cfg, servers - 1).await;
            }
            // perhaps send enough to get a snapshot
            let nn = SNAPSHOT_INTERVAL / 2 + cfg.rng.next_u64() % SNAPSHOT_INTERVAL;
            for _ in 0..nn {
                let v = cfg.rng.next_u64();
                cfg.start(sender, cmd(v)).await;
            }
            // let applier threads catch up with the Start()'s
            if !disconnect && !crash {
                // make sure all followers have caught up, so that an
                // InstallSnapshot RPC isn't required for snapshot_basic_3d.
                one_rand(&mut cfg, servers).await;
            } else {
                one_rand(&mut cfg, servers - 1).await;
            }
            let size = cfg.max_log_size();
            assert!(size < MAX_LOG_SIZE, "seed {seed}: log size too large ({size} bytes) in iteration {i}");
            if disconnect {
                // reconnect a follower, who maybe behind and needs to receive a snapshot to catch up.
                cfg.connect(victim);
                one_rand(&mut cfg, servers).await;
                leader1 = cfg.check_one_leader().await;
            }
            if crash {
                cfg.start1(victim).await;
                cfg.connect(victim);
                one_rand(&mut cfg, servers).await;
                leader1 = cfg.check_one_leader().await;
            }
        }
        cfg.end();
    });
}

#[test]
fn snapshot_basic_3d() {
    snapcommon("snapshot_basic_3d", false, true, false);
}

#[test]
fn snapshot_install_3d() {
    snapcommon("snapshot_install_3d", true, true, false);
}

#[test]
fn snapshot_install_unreliable_3d() {
    snapcommon("snapshot_install_unreliable_3d", true, false, false);
}

#[test]
fn snapshot_install_crash_3d() {
    snapcommon("snapshot_install_crash_3d", false, true, true);
}

#[test]
fn snapshot_install_un_crash_3d() {
    snapcommon("snapshot_install_un_crash_3d", false, false, true);
}

/// Crash and restart (and connect) every member.
async fn crash_and_restart_all(cfg: &mut RaftCluster) {
    for i in 0..cfg.n() {
        cfg.crash1(i);
    }
    for i in 0..cfg.n() {
        cfg.start1(i).await;
        cfg.connect(i);
    }
}

#[test]
fn snapshot_all_crash_3d() {
    simulate("snapshot_all_crash_3d", |seed| async move {
        let servers = 3;
        let iters = 5;
        let mut cfg = RaftCluster::new(snapshot_config(servers, false), seed).await;
        one_rand(&mut cfg, servers).await;
        for _ in 0..iters {
            // perhaps enough to get a snapshot
            let nn = SNAPSHOT_INTERVAL / 2 + cfg.rng.next_u64() % SNAPSHOT_INTERVAL;
            for _ in 0..nn {
                one_rand(&mut cfg, servers).await;
            }
            let index1 = one_rand(&mut cfg, servers).await;
            crash_and_restart_all(&mut cfg).await;
            let index2 = one_rand(&mut cfg, servers).await;
            assert!(index2.0 > index1.0, "seed {seed}: index decreased from {index1} to {index2}");
        }
        cfg.end();
    });
}

#[test]
fn snapshot_init_3d() {
    simulate("snapshot_init_3d", |seed| async move {
        let servers = 3;
        let mut cfg = RaftCluster::new(snapshot_config(servers, false), seed).await;
        one_rand(&mut cfg, servers).await;
        // enough ops to make a snapshot
        for _ in 0..=SNAPSHOT_INTERVAL {
            one_rand(&mut cfg, servers).await;
        }
        crash_and_restart_all(&mut cfg).await;
        // a single op, to get something to be written back to persistent storage.
        one_rand(&mut cfg, servers).await;
        crash_and_restart_all(&mut cfg).await;
        // do another op to trigger potential bug
        one_rand(&mut cfg, servers).await;
        cfg.end();
    });
}
