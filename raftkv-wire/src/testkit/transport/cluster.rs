//! A real 3-member Raft group over a transport's loopback sockets: one
//! server per member, in-memory disks, the recording state machine; short,
//! bounded real-time scenarios.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{any_port, test_config, RunningServer, TransportFixture};
use crate::net::Routes;
use raftkv_core::raft::core::{RaftConfig, Role};
use raftkv_core::raft::driver::{DriverConfig, Raft, RaftHandle};
use raftkv_core::storage::MemDisk;
use raftkv_core::types::{GroupId, LogIndex, NodeId};
use raftkv_testkit::sim::{cmd, AppliedView, RecordingStateMachine};

const GROUP: GroupId = GroupId(7);
const MEMBERS: u64 = 3;
/// Longest wait for any one condition.
const PATIENCE: Duration = Duration::from_secs(20);

struct Member {
    addr: SocketAddr,
    routes: Routes,
    server: Option<Box<dyn RunningServer>>,
    raft: Option<RaftHandle<LogIndex>>,
    disk: MemDisk,
}

struct Cluster<'f, F: TransportFixture> {
    f: &'f F,
    members: BTreeMap<NodeId, Member>,
    view: AppliedView,
    driver: DriverConfig,
}

impl<'f, F: TransportFixture> Cluster<'f, F> {
    async fn start(f: &'f F, snapshot_every_entries: u64) -> Self {
        let mut members = BTreeMap::new();
        for id in (1..=MEMBERS).map(NodeId) {
            let routes = Routes::new();
            let server = super::cases::start(f, any_port(), routes.clone(), test_config()).await;
            members.insert(
                id,
                Member { addr: server.addr(), routes, server: Some(server), raft: None, disk: MemDisk::new() },
            );
        }
        let driver = DriverConfig {
            tick: Duration::from_millis(10),
            snapshot_every_entries,
            snapshot_chunk_bytes: 512,
            ..DriverConfig::default()
        };
        let mut cluster = Self { f, members, view: AppliedView::default(), driver };
        for id in (1..=MEMBERS).map(NodeId) {
            cluster.start_member(id).await;
        }
        cluster
    }

    fn peers(&self) -> BTreeMap<NodeId, String> {
        self.members.iter().map(|(&id, m)| (id, m.addr.to_string())).collect()
    }

    async fn start_member(&mut self, id: NodeId) {
        let transport = self.f.raft_client(GROUP, self.peers(), test_config());
        let voters: Vec<NodeId> = (1..=MEMBERS).map(NodeId).collect();
        let m = self.members.get_mut(&id).unwrap();
        let raft = Raft::start(
            RaftConfig::new(GROUP, id, voters),
            self.driver.clone(),
            Arc::new(m.disk.log_store()),
            Arc::new(m.disk.snapshot_store()),
            transport,
            RecordingStateMachine::new(usize::try_from(id.0).unwrap(), self.view.clone()),
        )
        .await
        .unwrap();
        m.routes.add_member(GROUP, id, Arc::new(raft.clone()));
        m.raft = Some(raft);
    }

    /// Crash-stop a member: its server goes away and its tasks end; its disk stays.
    async fn stop_member(&mut self, id: NodeId) {
        let m = self.members.get_mut(&id).unwrap();
        if let Some(server) = m.server.take() {
            server.stop().await;
        }
        m.routes.remove_member(GROUP, id);
        if let Some(raft) = m.raft.take() {
            raft.shutdown().await;
        }
    }

    async fn stop_server(&mut self, id: NodeId) {
        if let Some(server) = self.members.get_mut(&id).unwrap().server.take() {
            server.stop().await;
        }
    }

    async fn start_server(&mut self, id: NodeId) {
        let m = self.members.get_mut(&id).unwrap();
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.f.serve(m.addr, m.routes.clone(), test_config()).await {
                Ok(server) => {
                    m.server = Some(server);
                    return;
                }
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "port not free yet");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot restart the server of node {id} on {}: {e}", m.addr),
            }
        }
    }

    fn raft(&self, id: NodeId) -> &RaftHandle<LogIndex> {
        self.members[&id].raft.as_ref().expect("member is running")
    }

    /// The one leader among running members, once there is exactly one.
    async fn leader(&self) -> NodeId {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut leaders = Vec::new();
            for (&id, m) in &self.members {
                if let Some(raft) = &m.raft {
                    if raft.status().await.is_ok_and(|s| s.role == Role::Leader) {
                        leaders.push(id);
                    }
                }
            }
            if let [one] = leaders[..] {
                return one;
            }
            assert!(Instant::now() < deadline, "no single leader after {PATIENCE:?} (leaders: {leaders:?})");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Commit command `v` through whichever member leads; returns its index.
    async fn commit(&self, v: u64) -> LogIndex {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let leader = self.leader().await;
            match self.raft(leader).propose(cmd(v)).await {
                Ok(index) => return index,
                Err(e) => {
                    assert!(Instant::now() < deadline, "command {v} not committed within {PATIENCE:?}: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Wait until `count` members applied `index`, with command `v`.
    async fn applied_by(&self, index: LogIndex, v: u64, count: usize) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (n, value) = self.view.n_committed(index);
            assert!(self.view.errors().is_empty(), "members disagree: {:?}", self.view.errors());
            if n >= count {
                assert_eq!(value, Some(cmd(v)), "index {index} holds command {v}");
                return;
            }
            assert!(Instant::now() < deadline, "index {index} applied by {n} of {count} members after {PATIENCE:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn shutdown(mut self) {
        let ids: Vec<NodeId> = self.members.keys().copied().collect();
        for id in ids {
            self.stop_member(id).await;
        }
    }
}

/// Three members elect one leader and every command reaches all of them, in order.
pub async fn cluster_basic_agreement<F: TransportFixture>(f: &F) {
    let cluster = Cluster::start(f, 0).await;
    cluster.leader().await;
    for v in 1..=30 {
        let index = cluster.commit(v).await;
        cluster.applied_by(index, v, 3).await;
    }
    cluster.shutdown().await;
}

/// When the leader dies the other two elect a new one and go on; the old
/// leader, restarted from its disk, catches up.
pub async fn cluster_leader_failure<F: TransportFixture>(f: &F) {
    let mut cluster = Cluster::start(f, 0).await;
    let first = cluster.leader().await;
    let index = cluster.commit(1).await;
    cluster.applied_by(index, 1, 3).await;

    cluster.stop_member(first).await;
    let second = cluster.leader().await;
    assert_ne!(second, first, "a new leader among the survivors");
    let mut last = (index, 1);
    for v in 2..=10 {
        last = (cluster.commit(v).await, v);
        cluster.applied_by(last.0, v, 2).await;
    }

    cluster.start_server(first).await;
    cluster.start_member(first).await;
    cluster.applied_by(last.0, last.1, 3).await;
    cluster.shutdown().await;
}

/// A follower cut off while the others compact their logs is brought back
/// by a snapshot streamed over the transport, then follows the log again.
pub async fn cluster_snapshot_install<F: TransportFixture>(f: &F) {
    let mut cluster = Cluster::start(f, 20).await;
    let leader = cluster.leader().await;
    let follower = NodeId(leader.0 % MEMBERS + 1);
    cluster.stop_server(follower).await;
    let mut last = (LogIndex(0), 0);
    for v in 1..=100 {
        last = (cluster.commit(v).await, v);
    }
    cluster.applied_by(last.0, last.1, 2).await;
    let deadline = Instant::now() + PATIENCE;
    while cluster.raft(leader).status().await.unwrap().snapshot_index == LogIndex(0) {
        assert!(Instant::now() < deadline, "the leader never compacted its log");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cluster.raft(follower).status().await.unwrap().snapshot_index, LogIndex(0));

    cluster.start_server(follower).await;
    cluster.applied_by(last.0, last.1, 3).await;
    let status = cluster.raft(follower).status().await.unwrap();
    assert!(status.snapshot_index > LogIndex(0), "the follower caught up through a snapshot: {status:?}");
    let index = cluster.commit(101).await;
    cluster.applied_by(index, 101, 3).await;
    cluster.shutdown().await;
}
