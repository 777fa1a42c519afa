//! Forged requests: what an outsider (or a confused insider) can send to a
//! group once it gets past the transport's credential checks, and the proof
//! that the engine and ShardKV take none of it as an order.
//!
//! - Raft requests from a node that is not a member, with any term, change
//!   no member's term, vote or leader.
//! - A shard delete is a claim to verify: a holder deletes a frozen shard
//!   only when the group the configuration gave it to reports it installed.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::sleep;

use super::lab5_shardkv::key;
use super::shard_cluster::{gid, server_name};
use super::{cmd, RaftCluster, RaftClusterConfig, ShardCluster, ShardClusterConfig};
use raftkv_core::api::{ApiError, DeleteShardsRequest, ServiceClient, ServiceRequest, ServiceResponse};
use raftkv_core::raft::{
    AppendEntriesRequest, Entry, EntryPayload, HeartbeatRequest, RaftRequest, RaftResponse, TimeoutNowRequest,
    VoteRequest,
};
use raftkv_core::transport::Transport;
use raftkv_core::types::{ConfigNum, GroupId, LogIndex, NodeId, ShardId, Term};

/// The largest term the wire accepts: a member that took it could never
/// hold another election.
const BOMB: Term = Term(i64::MAX as u64);

/// Every kind of Raft request an outsider `from` might forge, claiming the huge term.
pub(crate) fn forgeries(from: NodeId) -> Vec<RaftRequest> {
    let entry = Entry { term: BOMB, index: LogIndex(1), payload: EntryPayload::Command(Bytes::from_static(b"forged")) };
    vec![
        RaftRequest::Heartbeat(HeartbeatRequest { term: BOMB, leader: from, commit: LogIndex(1_000_000), read_seq: 1 }),
        RaftRequest::AppendEntries(AppendEntriesRequest {
            term: BOMB,
            leader: from,
            prev_log_index: LogIndex(0),
            prev_log_term: Term(0),
            entries: vec![entry],
            leader_commit: LogIndex(1),
            read_seq: 1,
        }),
        RaftRequest::Vote(VoteRequest {
            term: BOMB,
            candidate: from,
            last_log_index: LogIndex(1_000_000),
            last_log_term: BOMB,
            pre_vote: false,
            transfer: true,
        }),
        RaftRequest::TimeoutNow(TimeoutNowRequest { term: BOMB, leader: from }),
    ]
}

fn term_of(response: &RaftResponse) -> Term {
    match response {
        RaftResponse::AppendEntries(r) => r.term,
        RaftResponse::Heartbeat(r) => r.term,
        RaftResponse::Vote(r) => r.term,
        RaftResponse::InstallSnapshot(r) => r.term,
        RaftResponse::TimeoutNow(r) => r.term,
    }
}

/// A node outside a 3-member group sends every member a heartbeat, an
/// append, a vote request and a timeout-now with the largest term: each is
/// answered with the member's own term, nothing is granted or appended, and
/// the group keeps its leader, its term and its ability to commit.
pub async fn term_bomb_from_a_non_member(seed: u64) {
    let mut c = RaftCluster::new(RaftClusterConfig::new(3), seed).await;
    let leader = c.check_one_leader().await;
    c.one(cmd(1), 3, false).await;
    let term = c.check_terms().await;

    let outsider = NodeId(99);
    let forger = c.net.boot(outsider);
    c.net.set_reach_nodes(outsider, &[NodeId(1), NodeId(2), NodeId(3)]);
    for member in 1..=3 {
        for request in forgeries(outsider) {
            let name = request.name();
            let answer = forger.call(outsider, NodeId(member), request).await;
            let answer = answer.unwrap_or_else(|e| panic!("seed {seed}: {name} to member {member} was lost: {e}"));
            assert!(term_of(&answer) < BOMB, "seed {seed}: member {member} took the forged term from a {name}");
            if let RaftResponse::Vote(v) = &answer {
                assert!(!v.granted, "seed {seed}: member {member} voted for an outsider");
            }
            if let RaftResponse::AppendEntries(a) = &answer {
                assert!(!a.success, "seed {seed}: member {member} appended an outsider's entries");
            }
        }
    }
    sleep(Duration::from_secs(2)).await;
    assert_eq!(c.check_one_leader().await, leader, "seed {seed}: the forgeries moved leadership");
    assert_eq!(c.check_terms().await, term, "seed {seed}: the forgeries changed the term");
    c.one(cmd(2), 3, false).await;
    c.end();
}

/// Group 1 gains shards from group 0 while all of group 1's servers are
/// down, so the shards sit frozen at group 0, in transit. Forged deletes of
/// them — naming group 1 (which has installed nothing) or group 2 (which the
/// configuration did not give them to) — are refused, and once group 1
/// comes up every key still reads its value.
pub async fn forged_delete_of_a_shard_in_transit(seed: u64) {
    let mut c = ShardCluster::new(ShardClusterConfig::sharded(3, false, 0), seed).await;
    let mut ck = c.recorded_clerk();
    c.join(&[0]).await;
    let n = 10;
    let mut values = Vec::new();
    for i in 0..n {
        let v = format!("value-{i}");
        ck.put(&key(i), &v).await;
        values.push(v);
    }
    c.shutdown_group(1);
    c.join(&[1]).await;
    let config = c.query().await;
    let moving: Vec<ShardId> =
        (0..config.shards.len()).filter(|&s| config.shards[s] == gid(1)).map(|s| ShardId(s as u64)).collect();
    assert!(!moving.is_empty(), "seed {seed}: the join gave group 1 no shard");
    // Group 0 moves to the new configuration and freezes the shards.
    sleep(Duration::from_secs(2)).await;

    let forger_id = NodeId(77_777);
    let forger = c.net.service_client(forger_id);
    c.net.connect(forger_id);
    c.net.set_reach(forger_id, &c.group_names(0));
    for claimed in [gid(1), gid(2), GroupId(0)] {
        let request = DeleteShardsRequest { config: config.num, shards: moving.clone(), group: claimed };
        for i in 0..c.config().group_size {
            let answer = forger.call_service(&server_name(0, i), ServiceRequest::DeleteShards(request.clone())).await;
            let deleted = matches!(answer, Ok(ServiceResponse::DeleteShards(Ok(()))));
            assert!(!deleted, "seed {seed}: a forged delete claiming group {claimed} was carried out: {answer:?}");
            if let Ok(ServiceResponse::DeleteShards(Err(e))) = &answer {
                assert!(
                    !matches!(e, ApiError::Invalid { reason } if reason.is_empty()),
                    "seed {seed}: a refusal must say why"
                );
            }
        }
    }
    let held = c.server(0, 0).map(|s| {
        let state = s.state().read();
        moving.iter().filter(|&&shard| state.holds_frozen(ConfigNum(config.num.0), shard)).count()
    });
    if let Some(held) = held {
        assert_eq!(held, moving.len(), "seed {seed}: group 0 no longer holds every frozen shard");
    }

    c.start_group(1).await;
    for (i, v) in values.iter().enumerate() {
        assert_eq!(ck.get(&key(i)).await, *v, "seed {seed}: key {i} lost its value");
    }
    c.shutdown();
}
