//! Lab 3C — persistence, ported from MIT 6.5840 to the simulator.
//!
//! Our leaders append a blank entry at the start of each term, and blanks are
//! not handed to the state machine: log indices are not the lab's, so these
//! tests compare values (or indices returned by `one`), never absolute indices.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use raftkv_core::rng::DetRng;
use raftkv_core::testkit::sim::{cmd, cmd_value, simulate, RaftCluster, RaftClusterConfig};
use raftkv_core::LogIndex;
use tokio::sync::RwLock;
use tokio::time::{sleep, Instant};

const RET: Duration = Duration::from_millis(1000);

/// The lab's `one` over a shared `&RaftCluster`, so that several can run at
/// once: `next` is the round-robin position shared by the concurrent callers.
async fn one_shared(cfg: &RaftCluster, next: &Cell<usize>, command: Bytes, expected: usize, retry: bool) -> LogIndex {
    let n = cfg.n();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        let mut index = None;
        for _ in 0..n {
            let s = (next.get() + 1) % n;
            next.set(s);
            if cfg.connected(s) {
                if let Some((i, _)) = cfg.start(s, command.clone()).await {
                    index = Some(i);
                    break;
                }
            }
        }
        if let Some(index) = index {
            let t1 = Instant::now();
            while t1.elapsed() < Duration::from_secs(2) {
                let (nd, c) = cfg.n_committed(index);
                if nd > 0 && nd >= expected && c.as_ref() == Some(&command) {
                    return index;
                }
                sleep(Duration::from_millis(20)).await;
            }
            assert!(retry, "seed {}: one({command:?}) failed to reach agreement", cfg.seed());
        } else {
            sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("seed {}: one({command:?}) failed to reach agreement in 10s", cfg.seed());
}

/// Run `fg` to completion while also driving the background futures in `bg`
/// (the lab's goroutines that outlive one loop iteration).
async fn drive<B: Future, F: Future>(bg: &mut FuturesUnordered<B>, fg: F) -> F::Output {
    let mut fg = std::pin::pin!(fg);
    loop {
        // `biased` keeps the polling order (and so the run) deterministic.
        tokio::select! {
            biased;
            out = &mut fg => return out,
            Some(_) = bg.next(), if !bg.is_empty() => {}
        }
    }
}

/// Restart member `i` from its disk and connect it.
async fn restart(cfg: &mut RaftCluster, i: usize) {
    cfg.start1(i).await;
    cfg.connect(i);
}

#[test]
fn persist1_3c() {
    simulate("persist1_3c", |seed| async move {
        let servers = 3;
        let mut cfg = RaftCluster::new(RaftClusterConfig::new(servers), seed).await;
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
    });
}

#[test]
fn persist2_3c() {
    simulate("persist2_3c", |seed| async move {
        let servers = 5;
        let mut cfg = RaftCluster::new(RaftClusterConfig::new(servers), seed).await;
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
    });
}

#[test]
fn persist3_3c() {
    simulate("persist3_3c", |seed| async move {
        let servers = 3;
        let mut cfg = RaftCluster::new(RaftClusterConfig::new(servers), seed).await;
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
    });
}

/// The lab's sleep between Figure 8 iterations: U[0,499] ms with p 0.1, else U[0,12] ms.
fn figure8_pause(cfg: &mut RaftCluster) -> Duration {
    let ms = if cfg.rng.below(1000) < 100 { cfg.rng.below(RET.as_millis() as usize / 2) } else { cfg.rng.below(13) };
    Duration::from_millis(ms as u64)
}

#[test]
fn figure8_3c() {
    simulate("figure8_3c", |seed| async move {
        let servers = 5;
        let mut cfg = RaftCluster::new(RaftClusterConfig::new(servers), seed).await;
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
    });
}

#[test]
fn unreliable_agree_3c() {
    simulate("unreliable_agree_3c", |seed| async move {
        let servers = 5;
        let mut cfg =
            RaftCluster::new(RaftClusterConfig { unreliable: true, ..RaftClusterConfig::new(servers) }, seed).await;
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
    });
}

#[test]
fn figure8_unreliable_3c() {
    simulate("figure8_unreliable_3c", |seed| async move {
        let servers = 5;
        let mut cfg =
            RaftCluster::new(RaftClusterConfig { unreliable: true, ..RaftClusterConfig::new(servers) }, seed).await;
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
    });
}

/// A churn client: Start a fresh value on every running member; if one
/// accepted, check that index a few times and keep the value if it committed there.
async fn churn_client(cfg: &RwLock<RaftCluster>, me: usize, mut rng: DetRng, stop: &Cell<bool>) -> Vec<u64> {
    let mut values = Vec::new();
    while !stop.get() {
        let t0 = Instant::now();
        let x = rng.next_u64();
        let mut accepted = None;
        let n = cfg.read().await.n();
        for i in 0..n {
            let c = cfg.read().await;
            if c.alive(i) {
                if let Some((index, _)) = c.start(i, cmd(x)).await {
                    accepted = Some(index);
                }
            }
        }
        if let Some(index) = accepted {
            // maybe the leader will commit our value, maybe not; don't wait forever.
            for to in [10, 20, 50, 100, 200] {
                let (nd, c) = cfg.read().await.n_committed(index);
                if nd > 0 {
                    let v = c.as_ref().and_then(cmd_value);
                    assert!(v.is_some(), "wrong command type at {index}: {c:?}");
                    if v == Some(x) {
                        values.push(x);
                    }
                    break;
                }
                sleep(Duration::from_millis(to)).await;
            }
        } else {
            sleep(Duration::from_millis(79 + me as u64 * 17)).await;
        }
        // On a reliable network a round (Start on all, commit, apply) can take
        // no virtual time at all; in the lab it takes real time. Never loop in
        // zero virtual time (the clock would stand still): wait one poll interval.
        if t0.elapsed().is_zero() {
            sleep(Duration::from_millis(10)).await;
        }
    }
    values
}

fn internal_churn(name: &'static str, unreliable: bool) {
    simulate(name, |seed| async move {
        let servers = 5;
        let ncli = 3;
        let mut cluster =
            RaftCluster::new(RaftClusterConfig { unreliable, ..RaftClusterConfig::new(servers) }, seed).await;
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
        eprintln!(
            "{name}: {} client values committed, {} commands in the log up to {last}",
            values.len(),
            really.len()
        );
        cfg.end();
    });
}

#[test]
fn reliable_churn_3c() {
    internal_churn("reliable_churn_3c", false);
}

#[test]
fn unreliable_churn_3c() {
    internal_churn("unreliable_churn_3c", true);
}
