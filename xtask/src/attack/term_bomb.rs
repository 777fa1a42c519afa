//! `term_bomb`: a forged Raft heartbeat with term 2^63 − 1 from a caller
//! without the cluster token (or with a wrong one) is refused, and no
//! member's term moves — before and after the attacked member restarts.
//!
//! Were it delivered, every member it reached would adopt the term, the
//! leader would step down, and the group would go on at a term no real
//! election reaches.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Result};
use raftkv_core::raft::{HeartbeatRequest, RaftRequest, RaftResponse};
use raftkv_core::transport::{Transport, TransportError};
use raftkv_core::{GroupId, LogIndex, NodeId, Term};
use raftkv_transport_grpc::GrpcClient;

use super::cluster::{describe, leaders, Cluster, Setup};
use super::findings::Findings;
use super::forgery::{check_refused, net_config, ATTEMPTS};
use super::legit::Legit;

/// The forged term.
const BOMB: u64 = i64::MAX as u64;
/// A term the group does not pass in this run by real elections.
const SMALL_TERM: u64 = 1_000;

/// Send the forged heartbeat, as member `from` of `group`, to member `to` at `addr`.
async fn forge(
    group: GroupId,
    from: NodeId,
    to: NodeId,
    addr: &str,
    token: Option<&str>,
) -> Result<Result<RaftResponse, TransportError>> {
    let client = GrpcClient::new(net_config(token)?)?;
    let transport = client.raft(group, BTreeMap::from([(to, addr.to_string())]));
    let heartbeat = HeartbeatRequest { term: Term(BOMB), leader: from, commit: LogIndex(0), read_seq: 1 };
    Ok(transport.call(from, to, RaftRequest::Heartbeat(heartbeat)).await)
}

/// Forge a heartbeat to every member of group 1 with each attempt's
/// credentials, claiming to come from the next member; check each refusal,
/// then every member's term and a legitimate write.
async fn bomb(cluster: &Cluster, f: &mut Findings, when: &str) -> Result<()> {
    let addrs = cluster.groups[&GroupId(1)].clone();
    for (label, token) in ATTEMPTS {
        let mut answers = Vec::new();
        for (i, addr) in addrs.iter().enumerate() {
            let to = NodeId(i as u64 + 1);
            let from = NodeId((i as u64 + 1) % addrs.len() as u64 + 1);
            answers.push((cluster.name(addr), forge(GroupId(1), from, to, addr, token).await?));
        }
        check_refused(f, &format!("{when}: a heartbeat at term {BOMB} with {label}"), &answers);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let view = cluster.group_status(GroupId(1)).await;
    f.note(format!("group 1 {when}: {}", describe(&view)));
    let terms: Vec<u64> = view.iter().filter_map(|(_, s)| s.as_ref().map(|s| s.raft.term.0)).collect();
    f.check(
        terms.len() == addrs.len() && terms.iter().all(|&t| t < SMALL_TERM),
        format!("{when}: every member answers with a term below {SMALL_TERM} (terms {terms:?})"),
    );
    f.check(leaders(&view).len() == 1, format!("{when}: group 1 has one leader"));
    Legit::once(cluster, &format!("term-{}", when.replace(' ', "-"))).await.report(f, when);
    Ok(())
}

pub async fn run(setup: &Setup) -> Result<Findings> {
    let mut cluster = Cluster::start(setup, 1, &[]).await?;
    let mut f = Findings::default();
    if !setup.token {
        f.note("the cluster is open (--token off): anyone is a member, the heartbeat will be delivered");
    }
    let outcome = attack(&mut cluster, &mut f).await;
    Ok(cluster.conclude(f, outcome))
}

async fn attack(cluster: &mut Cluster, f: &mut Findings) -> Result<()> {
    let leader = cluster.leader(GroupId(1), Duration::from_secs(10)).await?;
    cluster.watch(&leader);
    f.note(format!("group 1 before: {}", describe(&cluster.group_status(GroupId(1)).await)));
    bomb(cluster, f, "after the forgery").await?;

    f.note(format!("restarting {} (kill -9, then the same data dir)", cluster.name(&leader)));
    tokio::task::block_in_place(|| cluster.restart(&leader))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while cluster.status(&leader).await.is_none() {
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "{} did not answer within 15 s of its restart:\n{}",
                cluster.name(&leader),
                cluster.log_tail(&leader)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.leader(GroupId(1), Duration::from_secs(10)).await?;
    bomb(cluster, f, "after the restart").await?;
    Ok(())
}
