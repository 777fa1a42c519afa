//! Lab 3D — snapshots: logs stay bounded, lagging or restarted members catch
//! up through snapshots.

use std::sync::Arc;

use super::helpers::{crash_and_restart_all, one_rand};
use crate::sim::{cmd, MemberStorage, RaftCluster, RaftClusterConfig};

/// The lab's `SnapShotInterval`.
const SNAPSHOT_INTERVAL: u64 = 10;
/// The lab's `MAXLOGSIZE`.
const MAX_LOG_SIZE: u64 = 2000;

fn snapshot_config(servers: usize, unreliable: bool, storage: Option<Arc<dyn MemberStorage>>) -> RaftClusterConfig {
    RaftClusterConfig { unreliable, snapshot_every: SNAPSHOT_INTERVAL, storage, ..RaftClusterConfig::new(servers) }
}

/// The lab's `snapcommon`.
async fn snapcommon(seed: u64, storage: Option<Arc<dyn MemberStorage>>, disconnect: bool, reliable: bool, crash: bool) {
    let iters = 30;
    let servers = 3;
    let mut cfg = RaftCluster::new(snapshot_config(servers, !reliable, storage), seed).await;
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
}

/// Lab `TestSnapshotBasic3D`: members snapshot and keep their durable log bounded while all stay up to date.
pub async fn snapshot_basic_3d(seed: u64, storage: Option<Arc<dyn MemberStorage>>) {
    snapcommon(seed, storage, false, true, false).await;
}

/// Lab `TestSnapshotInstall3D`: a reconnected follower that fell behind catches up through InstallSnapshot.
pub async fn snapshot_install_3d(seed: u64, storage: Option<Arc<dyn MemberStorage>>) {
    snapcommon(seed, storage, true, true, false).await;
}

/// Lab `TestSnapshotInstallUnreliable3D`: InstallSnapshot catch-up of reconnected followers over an unreliable network.
pub async fn snapshot_install_unreliable_3d(seed: u64, storage: Option<Arc<dyn MemberStorage>>) {
    snapcommon(seed, storage, true, false, false).await;
}

/// Lab `TestSnapshotInstallCrash3D`: a crashed follower restarts from its snapshot and catches up.
pub async fn snapshot_install_crash_3d(seed: u64, storage: Option<Arc<dyn MemberStorage>>) {
    snapcommon(seed, storage, false, true, true).await;
}

/// Lab `TestSnapshotInstallUnCrash3D`: crashed followers restart from snapshots and catch up over an unreliable network.
pub async fn snapshot_install_un_crash_3d(seed: u64, storage: Option<Arc<dyn MemberStorage>>) {
    snapcommon(seed, storage, false, false, true).await;
}

/// Lab `TestSnapshotAllCrash3D`: after all members crash and restart from snapshots, log indices never go backwards.
pub async fn snapshot_all_crash_3d(seed: u64, storage: Option<Arc<dyn MemberStorage>>) {
    let servers = 3;
    let iters = 5;
    let mut cfg = RaftCluster::new(snapshot_config(servers, false, storage), seed).await;
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
}

/// Lab `TestSnapshotInit3D`: members restarted twice from a snapshot (with little written since) work correctly.
pub async fn snapshot_init_3d(seed: u64, storage: Option<Arc<dyn MemberStorage>>) {
    let servers = 3;
    let mut cfg = RaftCluster::new(snapshot_config(servers, false, storage), seed).await;
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
}
