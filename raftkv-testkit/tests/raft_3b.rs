//! Lab 3B — log replication, ported from MIT 6.5840 to the simulator.

use std::time::Duration;

use bytes::Bytes;
use raftkv_core::LogIndex;
use raftkv_testkit::sim::{cmd, simulate, RaftCluster, RaftClusterConfig};
use tokio::time::sleep;

const RET: Duration = Duration::from_millis(1000);

fn random_bytes(cfg: &mut RaftCluster, n: usize) -> Bytes {
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..n).map(|_| alphabet[cfg.rng.below(alphabet.len())]).collect::<Vec<u8>>().into()
}

#[test]
fn basic_agree_3b() {
    simulate("basic_agree_3b", |seed| async move {
        let mut cfg = RaftCluster::new(RaftClusterConfig::new(3), seed).await;
        for index in 1..=3u64 {
            let (nd, _) = cfg.n_committed(LogIndex(index + 1));
            assert_eq!(nd, 0, "some have committed before Start()");
            let xindex = cfg.one(cmd(index * 100), 3, false).await;
            // Index 1 is the first leader's blank entry; commands follow it.
            assert_eq!(xindex, LogIndex(index + 1), "got index {xindex} but expected {}", index + 1);
        }
        cfg.end();
    });
}

#[test]
fn rpc_bytes_3b() {
    simulate("rpc_bytes_3b", |seed| async move {
        let mut cfg = RaftCluster::new(RaftClusterConfig::new(3), seed).await;
        cfg.one(cmd(99), 3, false).await;
        let bytes0 = cfg.net.total_bytes();
        let mut sent = 0u64;
        for _ in 0..10 {
            let c = random_bytes(&mut cfg, 5000);
            sent += c.len() as u64;
            cfg.one(c, 3, false).await;
        }
        let got = cfg.net.total_bytes() - bytes0;
        let expected = 3 * sent;
        assert!(got <= expected + 50_000, "too many RPC bytes; got {got}, expected at most {}", expected + 50_000);
        cfg.end();
    });
}

#[test]
fn follower_failure_3b() {
    simulate("follower_failure_3b", |seed| async move {
        let mut cfg = RaftCluster::new(RaftClusterConfig::new(3), seed).await;
        cfg.one(cmd(101), 3, false).await;
        let leader1 = cfg.check_one_leader().await;
        cfg.disconnect((leader1 + 1) % 3);
        cfg.one(cmd(102), 2, false).await;
        sleep(RET).await;
        cfg.one(cmd(103), 2, false).await;
        let leader2 = cfg.check_one_leader().await;
        cfg.disconnect((leader2 + 1) % 3);
        cfg.disconnect((leader2 + 2) % 3);
        let (index, _) = cfg.start(leader2, cmd(104)).await.expect("leader rejected Start()");
        assert_eq!(index, LogIndex(5), "expected index 5 (blank + 3 commands + 1), got {index}");
        sleep(2 * RET).await;
        let (n, _) = cfg.n_committed(index);
        assert_eq!(n, 0, "{n} committed but no majority");
        cfg.end();
    });
}

#[test]
fn leader_failure_3b() {
    simulate("leader_failure_3b", |seed| async move {
        let mut cfg = RaftCluster::new(RaftClusterConfig::new(3), seed).await;
        cfg.one(cmd(101), 3, false).await;
        let leader1 = cfg.check_one_leader().await;
        cfg.disconnect(leader1);
        cfg.one(cmd(102), 2, false).await;
        sleep(RET).await;
        cfg.one(cmd(103), 2, false).await;
        let leader2 = cfg.check_one_leader().await;
        cfg.disconnect(leader2);
        let mut started = Vec::new();
        for i in 0..3 {
            if let Some((index, _)) = cfg.start(i, cmd(104)).await {
                started.push(index);
            }
        }
        sleep(2 * RET).await;
        for index in started {
            let (n, v) = cfg.n_committed(index);
            assert!(n == 0 || v != Some(cmd(104)), "{n} committed 104 at {index} but no majority");
        }
        cfg.end();
    });
}

#[test]
fn fail_agree_3b() {
    simulate("fail_agree_3b", |seed| async move {
        let mut cfg = RaftCluster::new(RaftClusterConfig::new(3), seed).await;
        cfg.one(cmd(101), 3, false).await;
        let leader = cfg.check_one_leader().await;
        cfg.disconnect((leader + 1) % 3);
        cfg.one(cmd(102), 2, false).await;
        cfg.one(cmd(103), 2, false).await;
        sleep(RET).await;
        cfg.one(cmd(104), 2, false).await;
        cfg.one(cmd(105), 2, false).await;
        cfg.connect((leader + 1) % 3);
        cfg.one(cmd(106), 3, true).await;
        sleep(RET).await;
        cfg.one(cmd(107), 3, true).await;
        cfg.end();
    });
}

#[test]
fn fail_no_agree_3b() {
    simulate("fail_no_agree_3b", |seed| async move {
        let n = 5;
        let mut cfg = RaftCluster::new(RaftClusterConfig::new(n), seed).await;
        cfg.one(cmd(10), n, false).await;
        let leader = cfg.check_one_leader().await;
        for k in 1..=3 {
            cfg.disconnect((leader + k) % n);
        }
        let (index, _) = cfg.start(leader, cmd(20)).await.expect("leader rejected Start()");
        assert_eq!(index, LogIndex(3), "expected index 3 (blank, 10, 20), got {index}");
        sleep(2 * RET).await;
        let (nd, _) = cfg.n_committed(index);
        assert_eq!(nd, 0, "{nd} committed but no majority");
        for k in 1..=3 {
            cfg.connect((leader + k) % n);
        }
        let leader2 = cfg.check_one_leader().await;
        let (index2, _) = cfg.start(leader2, cmd(30)).await.expect("leader2 rejected Start()");
        assert!((3..=5).contains(&index2.0), "unexpected index {index2}");
        cfg.one(cmd(1000), n, true).await;
        cfg.end();
    });
}

#[test]
fn concurrent_starts_3b() {
    simulate("concurrent_starts_3b", |seed| async move {
        let mut cfg = RaftCluster::new(RaftClusterConfig::new(3), seed).await;
        let mut success = false;
        'tries: for attempt in 0..5 {
            if attempt > 0 {
                sleep(Duration::from_secs(3)).await;
            }
            let leader = cfg.check_one_leader().await;
            let Some((_, term)) = cfg.start(leader, cmd(1)).await else { continue };
            let starts = (0..5u64).map(|i| cfg.start(leader, cmd(100 + i)));
            let results = futures::future::join_all(starts).await;
            let mut indices = Vec::new();
            for r in results {
                match r {
                    Some((index, t)) if t == term => indices.push(index),
                    _ => continue 'tries,
                }
            }
            for j in 0..3 {
                if cfg.state(j).await.0 != term {
                    continue 'tries;
                }
            }
            let mut values = Vec::new();
            for index in indices {
                match cfg.wait(index, 3, Some(term)).await {
                    Some(v) => values.push(v),
                    None => continue 'tries,
                }
            }
            for i in 0..5u64 {
                assert!(values.contains(&cmd(100 + i)), "cmd {} missing in {values:?}", 100 + i);
            }
            success = true;
            break;
        }
        assert!(success, "term changed too often");
        cfg.end();
    });
}

#[test]
fn rejoin_3b() {
    simulate("rejoin_3b", |seed| async move {
        let mut cfg = RaftCluster::new(RaftClusterConfig::new(3), seed).await;
        cfg.one(cmd(101), 3, true).await;
        let leader1 = cfg.check_one_leader().await;
        cfg.disconnect(leader1);
        cfg.start(leader1, cmd(102)).await;
        cfg.start(leader1, cmd(103)).await;
        cfg.start(leader1, cmd(104)).await;
        cfg.one(cmd(103), 2, true).await;
        let leader2 = cfg.check_one_leader().await;
        cfg.disconnect(leader2);
        cfg.connect(leader1);
        cfg.one(cmd(104), 2, true).await;
        cfg.connect(leader2);
        cfg.one(cmd(105), 3, true).await;
        cfg.end();
    });
}

#[test]
fn backup_3b() {
    simulate("backup_3b", |seed| async move {
        let n = 5;
        let mut cfg = RaftCluster::new(RaftClusterConfig::new(n), seed).await;
        let v = cfg.rng.next_u64() % 10_000;
        cfg.one(cmd(v), n, true).await;
        let leader1 = cfg.check_one_leader().await;
        for k in 2..=4 {
            cfg.disconnect((leader1 + k) % n);
        }
        for _ in 0..50 {
            let v = cfg.rng.next_u64() % 10_000;
            cfg.start(leader1, cmd(v)).await;
        }
        sleep(RET / 2).await;
        cfg.disconnect(leader1);
        cfg.disconnect((leader1 + 1) % n);
        for k in 2..=4 {
            cfg.connect((leader1 + k) % n);
        }
        for _ in 0..50 {
            let v = cfg.rng.next_u64() % 10_000;
            cfg.one(cmd(v), 3, true).await;
        }
        let leader2 = cfg.check_one_leader().await;
        let mut other = (leader1 + 2) % n;
        if leader2 == other {
            other = (leader2 + 1) % n;
        }
        cfg.disconnect(other);
        for _ in 0..50 {
            let v = cfg.rng.next_u64() % 10_000;
            cfg.start(leader2, cmd(v)).await;
        }
        sleep(RET / 2).await;
        for i in 0..n {
            cfg.disconnect(i);
        }
        cfg.connect(leader1);
        cfg.connect((leader1 + 1) % n);
        cfg.connect(other);
        for _ in 0..50 {
            let v = cfg.rng.next_u64() % 10_000;
            cfg.one(cmd(v), 3, true).await;
        }
        for i in 0..n {
            cfg.connect(i);
        }
        let v = cfg.rng.next_u64() % 10_000;
        cfg.one(cmd(v), n, true).await;
        cfg.end();
    });
}

#[test]
fn count_3b() {
    simulate("count_3b", |seed| async move {
        let n = 3;
        let mut cfg = RaftCluster::new(RaftClusterConfig::new(n), seed).await;
        let rpcs =
            |cfg: &RaftCluster| (0..n).map(|i| cfg.net.rpcs_served(raftkv_core::NodeId(i as u64 + 1))).sum::<u64>();
        let leader = cfg.check_one_leader().await;
        let mut total1 = rpcs(&cfg);
        assert!((1..=30).contains(&total1), "too many or few RPCs ({total1}) to elect initial leader");
        let mut success = false;
        let mut total2 = 0;
        'tries: for attempt in 0..5 {
            if attempt > 0 {
                sleep(Duration::from_secs(3)).await;
            }
            let leader = cfg.check_one_leader().await;
            total1 = rpcs(&cfg);
            let iters = 10u64;
            let Some((start_index, term)) = cfg.start(leader, cmd(1)).await else { continue };
            let mut cmds = Vec::new();
            for i in 1..iters + 2 {
                let x = cfg.rng.next_u64() % 1_000_000;
                cmds.push(x);
                match cfg.start(leader, cmd(x)).await {
                    Some((index, t)) if t == term => {
                        assert_eq!(index, LogIndex(start_index.0 + i), "Start() failed");
                    }
                    _ => continue 'tries,
                }
            }
            for i in 1..=iters {
                let Some(c) = cfg.wait(LogIndex(start_index.0 + i), n, Some(term)).await else { continue 'tries };
                assert_eq!(c, cmd(cmds[i as usize - 1]), "wrong value committed for index {}", start_index.0 + i);
            }
            for j in 0..n {
                if cfg.state(j).await.0 != term {
                    continue 'tries;
                }
            }
            total2 = rpcs(&cfg);
            let allowed = (iters + 1 + 3) * 3;
            assert!(total2 - total1 <= allowed, "too many RPCs ({}) for {iters} entries", total2 - total1);
            success = true;
            break;
        }
        assert!(success, "term changed too often");
        let _ = leader;
        sleep(RET).await;
        let total3 = rpcs(&cfg);
        assert!(total3 - total2 <= 3 * 20, "too many RPCs ({}) for 1 second of idleness", total3 - total2);
        cfg.end();
    });
}
