//! Helpers shared by the lab-3 scenarios: the lab's `one` over a shared
//! cluster, background drivers, churn clients, restarts.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::RwLock;
use tokio::time::{sleep, Instant};

use crate::sim::{cmd, cmd_value, MemberStorage, RaftCluster, RaftClusterConfig};
use raftkv_core::rng::DetRng;
use raftkv_core::types::LogIndex;

/// The lab's `RaftElectionTimeout`.
pub(super) const RET: Duration = Duration::from_millis(1000);

/// `servers` members on `storage`, with everything else at its default.
pub(super) fn cluster_config(
    servers: usize,
    unreliable: bool,
    storage: Option<Arc<dyn MemberStorage>>,
) -> RaftClusterConfig {
    RaftClusterConfig { unreliable, storage, ..RaftClusterConfig::new(servers) }
}

/// The lab's `one` over a shared `&RaftCluster`, so that several can run at
/// once: `next` is the round-robin position shared by the concurrent callers.
pub(super) async fn one_shared(
    cfg: &RaftCluster,
    next: &Cell<usize>,
    command: Bytes,
    expected: usize,
    retry: bool,
) -> LogIndex {
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
pub(super) async fn drive<B: Future, F: Future>(bg: &mut FuturesUnordered<B>, fg: F) -> F::Output {
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
pub(super) async fn restart(cfg: &mut RaftCluster, i: usize) {
    cfg.start1(i).await;
    cfg.connect(i);
}

/// Crash and restart (and connect) every member.
pub(super) async fn crash_and_restart_all(cfg: &mut RaftCluster) {
    for i in 0..cfg.n() {
        cfg.crash1(i);
    }
    for i in 0..cfg.n() {
        cfg.start1(i).await;
        cfg.connect(i);
    }
}

/// `one` with a fresh random value.
pub(super) async fn one_rand(cfg: &mut RaftCluster, expected: usize) -> LogIndex {
    let v = cfg.rng.next_u64();
    cfg.one(cmd(v), expected, true).await
}

/// The lab's sleep between Figure 8 iterations: U[0,499] ms with p 0.1, else U[0,12] ms.
pub(super) fn figure8_pause(cfg: &mut RaftCluster) -> Duration {
    let ms = if cfg.rng.below(1000) < 100 { cfg.rng.below(RET.as_millis() as usize / 2) } else { cfg.rng.below(13) };
    Duration::from_millis(ms as u64)
}

/// A churn client: Start a fresh value on every running member; if one
/// accepted, check that index a few times and keep the value if it committed there.
pub(super) async fn churn_client(cfg: &RwLock<RaftCluster>, me: usize, mut rng: DetRng, stop: &Cell<bool>) -> Vec<u64> {
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
