//! Engine features beyond the lab: ReadIndex reads, leadership transfer,
//! check-quorum and pre-vote, exercised end to end in the simulator.

use std::time::Duration;

use raftkv_core::raft::core::Role;
use raftkv_testkit::sim::{cmd, simulate, RaftCluster, RaftClusterConfig};
use tokio::time::{sleep, timeout};

#[test]
fn read_index_waits_for_applied_and_refuses_on_followers() {
    simulate("read_index_waits_for_applied_and_refuses_on_followers", |seed| async move {
        let mut cfg = RaftCluster::new(RaftClusterConfig::new(3), seed).await;
        let leader = cfg.check_one_leader().await;
        let index = cfg.one(cmd(7), 3, false).await;
        let read = cfg.read_index(leader).await.expect("leader serves a read");
        assert!(read >= index, "read index {read} must cover the committed write at {index}");
        let status = cfg.status(leader).await.expect("leader runs");
        assert!(status.applied >= read, "read returned before applying {read} (applied {})", status.applied);
        let follower = (leader + 1) % 3;
        assert!(cfg.read_index(follower).await.is_none(), "a follower must refuse ReadIndex");
        cfg.end();
    });
}

#[test]
fn isolated_leader_cannot_serve_reads_and_steps_down() {
    simulate("isolated_leader_cannot_serve_reads_and_steps_down", |seed| async move {
        let mut cfg = RaftCluster::new(RaftClusterConfig::new(3), seed).await;
        let old = cfg.check_one_leader().await;
        cfg.one(cmd(1), 3, false).await;
        cfg.disconnect(old);
        let read = timeout(Duration::from_secs(5), cfg.read_index(old)).await;
        assert!(!matches!(read, Ok(Some(_))), "an isolated leader confirmed a read: {read:?}");
        let status = cfg.status(old).await.expect("old leader runs");
        assert_ne!(status.role, Role::Leader, "check-quorum must make an isolated leader step down");
        let new = cfg.check_one_leader().await;
        assert_ne!(new, old);
        cfg.end();
    });
}

#[test]
fn pre_vote_keeps_a_rejoining_node_from_disrupting_the_leader() {
    simulate("pre_vote_keeps_a_rejoining_node_from_disrupting_the_leader", |seed| async move {
        let mut cfg = RaftCluster::new(RaftClusterConfig::new(3), seed).await;
        let leader = cfg.check_one_leader().await;
        let (term, _) = cfg.state(leader).await;
        let isolated = (leader + 1) % 3;
        cfg.disconnect(isolated);
        sleep(Duration::from_secs(10)).await;
        let (isolated_term, _) = cfg.state(isolated).await;
        assert_eq!(isolated_term, term, "pre-vote must keep an isolated node's term from growing");
        cfg.connect(isolated);
        sleep(Duration::from_secs(2)).await;
        let (after, is_leader) = cfg.state(leader).await;
        assert!(is_leader && after == term, "rejoin disrupted the leader: term {term} -> {after}, leader {is_leader}");
        cfg.end();
    });
}

#[test]
fn leadership_transfer_hands_over_to_the_target() {
    simulate("leadership_transfer_hands_over_to_the_target", |seed| async move {
        let mut cfg = RaftCluster::new(RaftClusterConfig::new(5), seed).await;
        let leader = cfg.check_one_leader().await;
        for i in 0..20 {
            cfg.one(cmd(i), 5, false).await;
        }
        let target = (leader + 3) % 5;
        assert!(cfg.transfer_leader(leader, target).await, "leader refused the transfer");
        sleep(Duration::from_millis(300)).await;
        let (_, target_leads) = cfg.state(target).await;
        assert!(target_leads, "member {target} should lead within 300 ms of the transfer");
        assert!(cfg.propose(target, cmd(99)).await.is_some(), "new leader commits proposals");
        cfg.end();
    });
}

#[test]
fn metrics_count_proposals_writes_snapshots_and_a_change_of_leader() {
    simulate("metrics_count_proposals_writes_snapshots_and_a_change_of_leader", |seed| async move {
        let mut cfg = RaftCluster::new(RaftClusterConfig::new(3), seed).await;
        let old = cfg.check_one_leader().await;
        for i in 0..5 {
            assert!(cfg.propose(old, cmd(i)).await.is_some(), "the leader takes proposal {i}");
        }
        let follower = (old + 1) % 3;
        assert!(cfg.propose(follower, cmd(99)).await.is_none(), "a follower refuses proposals");
        let m = cfg.metrics(old).expect("leader runs");
        assert_eq!(m.proposals.get(), 5);
        assert_eq!(m.proposal_failures.get(), 0);
        let latency = m.proposal_latency.snapshot();
        assert_eq!(latency.count, 5, "every answered proposal is timed");
        assert!(m.log_write_latency.snapshot().count >= 1, "the leader's appends are durable writes");
        assert!(m.entries_persisted.get() >= 6, "a blank entry and five commands");
        assert_eq!(m.leader_changes.get(), 1);
        let f = cfg.metrics(follower).expect("follower runs");
        assert_eq!((f.proposals.get(), f.proposal_failures.get()), (1, 1));
        assert_eq!(f.leader_changes.get(), 1, "a follower counts the leader it learned of");

        cfg.disconnect(old);
        let new = cfg.check_one_leader().await;
        let n = cfg.metrics(new).expect("new leader runs");
        assert_eq!(n.leader_changes.get(), 2, "the old leader, then itself");
        assert!(n.elections.get() >= 1, "the new leader won an election it started");
        cfg.end();
    });
}

#[test]
fn reads_are_confirmed_while_a_slow_log_write_is_in_progress() {
    simulate("reads_are_confirmed_while_a_slow_log_write_is_in_progress", |seed| async move {
        let disk = Duration::from_millis(80);
        let mut config = RaftClusterConfig::new(3);
        config.disk_latency = disk;
        let mut cfg = RaftCluster::new(config, seed).await;
        let leader = cfg.check_one_leader().await;
        cfg.one(cmd(1), 3, false).await;
        for round in 0..5 {
            // A write every member now spends `disk` persisting…
            let (index, _) = cfg.start(leader, cmd(100 + round)).await.expect("leader takes the write");
            sleep(Duration::from_millis(5)).await;
            // …while a read needs the followers to answer a heartbeat.
            let started = tokio::time::Instant::now();
            let read = cfg.read_index(leader).await.expect("leader serves a read");
            let took = started.elapsed();
            assert!(took < disk / 2, "round {round}: a read waited {took:?} behind a {disk:?} log write");
            assert!(read < index, "round {round}: the read needs only what was committed before it");
            cfg.wait(index, 3, None).await.expect("the write commits");
        }
        cfg.end();
    });
}
