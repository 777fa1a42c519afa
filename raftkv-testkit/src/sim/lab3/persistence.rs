//! Lab 3C — persistence: members crash and restart from their durable state.

use std::cell::Cell;
use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::RwLock;
use tokio::time::sleep;

use super::helpers::{churn_client, cluster_config, drive, figure8_pause, one_shared, restart, RET};
use crate::sim::{cmd, cmd_value, MemberStorage, RaftCluster};
use raftkv_core::rng::DetRng;
use raftkv_core::types::LogIndex;

/// Lab `TestPersist13C`: agreement survives crashing and restarting every member, the leader and a follower.
pub async fn persist1_3c(seed: u64, storage: Option<Arc<dyn MemberStorage>>) {
    let servers = 3;
    let mut cfg = RaftCluster::new(cluster_config(servers, false, storage), seed).await;
    cfg.one(cmd(11), servers, true).await;
    // crash and re-start all
    for i in 0..servers {
        cfg.start1(i).await;
    }
    for i in 0..servers {
        cfg.disconnect(i);
        cfg.connect(i);
    }
    cfg.one(cmd(12), servers, true).await;
    let leader1 = cfg.check_one_leader().await;
    cfg.disconnect(leader1);
    restart(&mut cfg, leader1).await;
    cfg.one(cmd(13), servers, true).await;
    let leader2 = cfg.check_one_leader().await;
    cfg.disconnect(leader2);
    // The lab waits for index 4, the index of 14; ours differs by the blanks.
    let index14 = cfg.one(cmd(14), servers - 1, true).await;
    restart(&mut cfg, leader2).await;
    // wait for leader2 to join before killing i3
    let v = cfg.wait(index14, servers, None).await;
    assert_eq!(v, Some(cmd(14)), "wrong value at the index of 14");
    let i3 = (cfg.check_one_leader().await + 1) % servers;
    cfg.disconnect(i3);
    cfg.one(cmd(15), servers - 1, true).await;
    restart(&mut cfg, i3).await;
    cfg.one(cmd(16), servers, true).await;
    cfg.end();
}

/// Lab `TestPersist23C`: five members keep agreeing through repeated partial crashes and restarts.
pub async fn persist2_3c(seed: u64, storage: Option<Arc<dyn MemberStorage>>) {
    let servers = 5;
    let mut cfg = RaftCluster::new(cluster_config(servers, false, storage), seed).await;
    let mut index = 1u64;
    for _ in 0..5 {
        cfg.one(cmd(10 + index), servers, true).await;
        index += 1;
        let leader1 = cfg.check_one_leader().await;
        cfg.disconnect((leader1 + 1) % servers);
        cfg.disconnect((leader1 + 2) % servers);
        cfg.one(cmd(10 + index), servers - 2, true).await;
        index += 1;
        cfg.disconnect(leader1 % servers);
        cfg.disconnect((leader1 + 3) % servers);
        cfg.disconnect((leader1 + 4) % servers);
        cfg.start1((leader1 + 1) % servers).await;
        cfg.start1((leader1 + 2) % servers).await;
        cfg.connect((leader1 + 1) % servers);
        cfg.connect((leader1 + 2) % servers);
        sleep(RET).await;
        restart(&mut cfg, (leader1 + 3) % servers).await;
        cfg.one(cmd(10 + index), servers - 2, true).await;
        index += 1;
        cfg.connect((leader1 + 4) % servers);
        cfg.connect(leader1 % servers);
    }
    cfg.one(cmd(1000), servers, true).await;
    cfg.end();
}

/// Lab `TestPersist33C`: a partitioned leader and a follower crash and restart without losing committed entries.
pub async fn persist3_3c(seed: u64, storage: Option<Arc<dyn MemberStorage>>) {
    let servers = 3;
    let mut cfg = RaftCluster::new(cluster_config(servers, false, storage), seed).await;
    cfg.one(cmd(101), 3, true).await;
    let leader = cfg.check_one_leader().await;
    cfg.disconnect((leader + 2) % servers);
    cfg.one(cmd(102), 2, true).await;
    cfg.crash1(leader % servers);
    cfg.crash1((leader + 1) % servers);
    cfg.connect((leader + 2) % servers);
    restart(&mut cfg, leader % servers).await;
    cfg.one(cmd(103), 2, true).await;
    restart(&mut cfg, (leader + 1) % servers).await;
    cfg.one(cmd(104), servers, true).await;
    cfg.end();
}

/// Lab `TestFigure83C`: leaders crashing right after Start (Figure 8) never make committed entries disappear.
pub async fn figure8_3c(seed: u64, storage: Option<Arc<dyn MemberStorage>>) {
    let servers = 5;
    let mut cfg = RaftCluster::new(cluster_config(servers, false, storage), seed).await;
    let v = cfg.rng.next_u64();
    cfg.one(cmd(v), 1, true).await;
    let mut nup = servers;
    for _ in 0..1000 {
        let mut leader = None;
        for i in 0..servers {
            if cfg.alive(i) {
                let v = cfg.rng.next_u64();
                if cfg.start(i, cmd(v)).await.is_some() {
                    leader = Some(i);
                }
            }
        }
        let pause = figure8_pause(&mut cfg);
        sleep(pause).await;
        if let Some(leader) = leader {
            cfg.crash1(leader);
            nup -= 1;
        }
        if nup < 3 {
            let s = cfg.rng.below(servers);
            if !cfg.alive(s) {
                restart(&mut cfg, s).await;
                nup += 1;
            }
        }
    }
    for i in 0..servers {
        if !cfg.alive(i) {
            restart(&mut cfg, i).await;
        }
    }
    let v = cfg.rng.next_u64();
    cfg.one(cmd(v), servers, true).await;
    cfg.end();
}

/// Lab `TestUnreliableAgree3C`: many concurrent agreements succeed over a lossy, reordering network.
pub async fn unreliable_agree_3c(seed: u64, storage: Option<Arc<dyn MemberStorage>>) {
    let servers = 5;
    let mut cfg = RaftCluster::new(cluster_config(servers, true, storage), seed).await;
    {
        let shared = &cfg;
        let next = Cell::new(0);
        let mut bg = FuturesUnordered::new();
        for iters in 1..50u64 {
            for j in 0..4 {
                bg.push(one_shared(shared, &next, cmd(100 * iters + j), 1, true));
            }
            drive(&mut bg, one_shared(shared, &next, cmd(iters), 1, true)).await;
        }
        shared.net.set_reliable(true);
        while bg.next().await.is_some() {}
    }
    cfg.one(cmd(100), servers, true).await;
    cfg.end();
}

/// Lab `TestFigure8Unreliable3C`: Figure 8 with disconnections on an unreliable, long-reordering network stays safe and live.
pub async fn figure8_unreliable_3c(seed: u64, storage: Option<Arc<dyn MemberStorage>>) {
    let servers = 5;
    let mut cfg = RaftCluster::new(cluster_config(servers, true, storage), seed).await;
    let v = cfg.rng.next_u64() % 10_000;
    cfg.one(cmd(v), 1, true).await;
    let mut nup = servers;
    for iters in 0..1000 {
        if iters == 200 {
            cfg.net.set_long_reordering(true);
        }
        let mut leader = None;
        for i in 0..servers {
            let v = cfg.rng.next_u64() % 10_000;
            if cfg.start(i, cmd(v)).await.is_some() && cfg.connected(i) {
                leader = Some(i);
            }
        }
        let pause = figure8_pause(&mut cfg);
        sleep(pause).await;
        if let Some(leader) = leader {
            if cfg.rng.below(1000) < RET.as_millis() as usize / 2 {
                cfg.disconnect(leader);
                nup -= 1;
            }
        }
        if nup < 3 {
            let s = cfg.rng.below(servers);
            if !cfg.connected(s) {
                cfg.connect(s);
                nup += 1;
            }
        }
    }
    for i in 0..servers {
        if !cfg.connected(i) {
            cfg.connect(i);
        }
    }
    // Still unreliable, with long reordering, as in the lab.
    let v = cfg.rng.next_u64() % 10_000;
    cfg.one(cmd(v), servers, true).await;
    cfg.end();
}

/// The lab's `internalChurn`: clients Start values while members disconnect,
/// crash and restart; every value a client saw committed must be in the log.
async fn internal_churn(name: &str, seed: u64, storage: Option<Arc<dyn MemberStorage>>, unreliable: bool) {
    let servers = 5;
    let ncli = 3;
    let mut cluster = RaftCluster::new(cluster_config(servers, unreliable, storage), seed).await;
    let rngs: Vec<DetRng> = (0..ncli).map(|_| cluster.rng.fork()).collect();
    let cfg = RwLock::new(cluster);
    let stop = Cell::new(false);
    let clients =
        futures::future::join_all(rngs.into_iter().enumerate().map(|(me, rng)| churn_client(&cfg, me, rng, &stop)));
    let schedule = async {
        for _ in 0..20 {
            let mut c = cfg.write().await;
            if c.rng.below(1000) < 200 {
                let i = c.rng.below(servers);
                c.disconnect(i);
            }
            if c.rng.below(1000) < 500 {
                let i = c.rng.below(servers);
                if !c.alive(i) {
                    c.start1(i).await;
                }
                c.connect(i);
            }
            if c.rng.below(1000) < 200 {
                let i = c.rng.below(servers);
                if c.alive(i) {
                    c.crash1(i);
                }
            }
            drop(c);
            // Make crash/restart infrequent enough that the peers can often keep up,
            // but not so infrequent that everything has settled down between changes.
            sleep(RET * 7 / 10).await;
        }
        sleep(RET).await;
        let mut c = cfg.write().await;
        c.net.set_reliable(true);
        for i in 0..servers {
            if !c.alive(i) {
                c.start1(i).await;
            }
            c.connect(i);
        }
        drop(c);
        stop.set(true);
    };
    let (values, ()) = futures::future::join(clients, schedule).await;
    let values: Vec<u64> = values.into_iter().flatten().collect();
    let mut cfg = cfg.into_inner();
    sleep(RET).await;
    let v = cfg.rng.next_u64();
    let last = cfg.one(cmd(v), servers, true).await;
    // Every member applied `last`, so (applying in order, no snapshots here)
    // every earlier command too: an index nobody applied holds a blank.
    let mut really = Vec::new();
    for index in 1..=last.0 {
        let (nd, c) = cfg.n_committed(LogIndex(index));
        if nd == 0 {
            continue;
        }
        let c = cfg.wait(LogIndex(index), servers, None).await.or(c);
        let Some(v) = c.as_ref().and_then(cmd_value) else {
            panic!("seed {seed}: index {index} holds {c:?}, not a numeric command");
        };
        really.push(v);
    }
    for v1 in &values {
        assert!(really.contains(v1), "seed {seed}: didn't find a value ({v1}) the clients saw committed");
    }
    eprintln!("{name}: {} client values committed, {} commands in the log up to {last}", values.len(), really.len());
    cfg.end();
}

/// Lab `TestReliableChurn3C`: values clients saw committed survive crash/restart churn on a reliable network.
pub async fn reliable_churn_3c(seed: u64, storage: Option<Arc<dyn MemberStorage>>) {
    internal_churn("reliable_churn_3c", seed, storage, false).await;
}

/// Lab `TestUnreliableChurn3C`: values clients saw committed survive crash/restart churn on an unreliable network.
pub async fn unreliable_churn_3c(seed: u64, storage: Option<Arc<dyn MemberStorage>>) {
    internal_churn("unreliable_churn_3c", seed, storage, true).await;
}
