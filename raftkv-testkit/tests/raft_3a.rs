//! Lab 3A — leader election, ported from MIT 6.5840 to the simulator.

use std::time::Duration;

use raftkv_testkit::sim::{simulate, RaftCluster, RaftClusterConfig};
use tokio::time::sleep;

const RET: Duration = Duration::from_millis(1000);

#[test]
fn initial_election_3a() {
    simulate("initial_election_3a", |seed| async move {
        let mut cfg = RaftCluster::new(RaftClusterConfig::new(3), seed).await;
        cfg.check_one_leader().await;
        sleep(Duration::from_millis(50)).await;
        let term1 = cfg.check_terms().await;
        assert!(term1.0 >= 1, "term is {term1}, but should be at least 1");
        sleep(2 * RET).await;
        let term2 = cfg.check_terms().await;
        if term1 != term2 {
            eprintln!("warning: term changed even though there were no failures");
        }
        cfg.check_one_leader().await;
        cfg.end();
    });
}

#[test]
fn re_election_3a() {
    simulate("re_election_3a", |seed| async move {
        let n = 3;
        let mut cfg = RaftCluster::new(RaftClusterConfig::new(n), seed).await;
        let leader1 = cfg.check_one_leader().await;
        cfg.disconnect(leader1);
        cfg.check_one_leader().await;
        cfg.connect(leader1);
        let leader2 = cfg.check_one_leader().await;
        cfg.disconnect(leader2);
        cfg.disconnect((leader2 + 1) % n);
        sleep(2 * RET).await;
        cfg.check_no_leader().await;
        cfg.connect((leader2 + 1) % n);
        cfg.check_one_leader().await;
        cfg.connect(leader2);
        cfg.check_one_leader().await;
        cfg.end();
    });
}

#[test]
fn many_elections_3a() {
    simulate("many_elections_3a", |seed| async move {
        let n = 7;
        let mut cfg = RaftCluster::new(RaftClusterConfig::new(n), seed).await;
        cfg.check_one_leader().await;
        for _ in 0..10 {
            let i1 = cfg.rng.below(n);
            let i2 = cfg.rng.below(n);
            let i3 = cfg.rng.below(n);
            cfg.disconnect(i1);
            cfg.disconnect(i2);
            cfg.disconnect(i3);
            cfg.check_one_leader().await;
            cfg.connect(i1);
            cfg.connect(i2);
            cfg.connect(i3);
        }
        cfg.check_one_leader().await;
        cfg.end();
    });
}
