//! One node: a Raft member (controller or ShardKV) with its service, served
//! by the transport on its own address.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use raftkv_core::api::{NodeStatus, ServiceHandler, ServiceRequest, ServiceResponse};
use raftkv_core::ctrler::{CtrlReply, CtrlService, CtrlStateMachine};
use raftkv_core::metrics::RaftMetrics;
use raftkv_core::raft::core::{RaftConfig, Role, Status};
use raftkv_core::raft::driver::{DriverConfig, Raft, RaftHandle};
use raftkv_core::shardkv::{Applied, ConfigSource, KvLimits, ShardCountCheck, ShardKvOptions, ShardKvServer};
use raftkv_core::{GroupId, NodeId};
use raftkv_wire::net::Routes;

use crate::backend::{Net, Server, Storage};
use crate::config::RaftSettings;

/// The controller's Raft group id.
pub const CTRL_GROUP: GroupId = GroupId(0);

/// What a node is.
#[derive(Clone, Debug)]
pub enum Kind {
    /// A controller member.
    Ctrler,
    /// A member of ShardKV group `group`, learning configurations from `ctrl_peers`.
    Shardkv {
        /// The group.
        group: GroupId,
        /// The controller's addresses.
        ctrl_peers: Vec<String>,
        /// Bytes per run when pulling a shard (one log entry each).
        pull_chunk_bytes: usize,
    },
}

/// How to start a node.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// What it is.
    pub kind: Kind,
    /// Its group's servers, in order.
    pub peers: Vec<String>,
    /// Its position in `peers`, from 1.
    pub me: usize,
    /// Where it listens.
    pub listen: SocketAddr,
    /// Shards in the cluster.
    pub shards: usize,
    /// Raft settings.
    pub raft: RaftSettings,
}

enum Member {
    Ctrler(RaftHandle<CtrlReply>),
    Shardkv(ShardKvServer),
}

/// The Raft handle of a node's member, whatever its state machine.
#[derive(Clone)]
enum MemberRaft {
    Ctrler(RaftHandle<CtrlReply>),
    Shardkv(RaftHandle<Applied>),
}

/// A cheap, clonable view of a running node for operators: its status,
/// counters and health, without the power to stop it.
#[derive(Clone)]
pub struct NodeProbe {
    /// The node's group.
    pub group: GroupId,
    /// The node's id in its group.
    pub me: NodeId,
    /// The address it serves on.
    pub addr: SocketAddr,
    /// `"ctrler"` or `"shardkv"`.
    pub role: &'static str,
    raft: MemberRaft,
    service: Arc<dyn ServiceHandler>,
    routes: Routes,
    shard_count: Option<ShardCountCheck>,
}

impl std::fmt::Debug for NodeProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeProbe").field("group", &self.group).field("me", &self.me).field("addr", &self.addr).finish()
    }
}

impl NodeProbe {
    /// The node's status, as its service reports it.
    pub async fn status(&self) -> Option<NodeStatus> {
        match self.service.handle(ServiceRequest::Status).await {
            ServiceResponse::Status(Ok(s)) => Some(s),
            _ => None,
        }
    }

    /// The Raft member's status.
    pub async fn raft_status(&self) -> Option<Status> {
        match &self.raft {
            MemberRaft::Ctrler(r) => r.status().await.ok(),
            MemberRaft::Shardkv(r) => r.status().await.ok(),
        }
    }

    /// The Raft member's counters and histograms.
    #[must_use]
    pub fn metrics(&self) -> &RaftMetrics {
        match &self.raft {
            MemberRaft::Ctrler(r) => r.metrics(),
            MemberRaft::Shardkv(r) => r.metrics(),
        }
    }

    /// Whether the Raft member is still running.
    #[must_use]
    pub fn is_running(&self) -> bool {
        match &self.raft {
            MemberRaft::Ctrler(r) => r.is_running(),
            MemberRaft::Shardkv(r) => r.is_running(),
        }
    }

    /// Leader only: confirm with a quorum, within `limit`, that it still
    /// leads (a ReadIndex round, no log write).
    pub async fn confirm_leadership(&self, limit: Duration) -> bool {
        let read = async {
            match &self.raft {
                MemberRaft::Ctrler(r) => r.read_index().await.is_ok(),
                MemberRaft::Shardkv(r) => r.read_index().await.is_ok(),
            }
        };
        tokio::time::timeout(limit, read).await.unwrap_or(false)
    }

    async fn transfer_leader(&self, to: NodeId) -> bool {
        match &self.raft {
            MemberRaft::Ctrler(r) => r.transfer_leader(to).await.is_ok(),
            MemberRaft::Shardkv(r) => r.transfer_leader(to).await.is_ok(),
        }
    }

    /// Why the member does its work only in part, though it runs: a ShardKV
    /// member refusing the controller's configurations, whose shard count is
    /// not its own (`None`: nothing is wrong that it knows of).
    #[must_use]
    pub fn fault(&self) -> Option<String> {
        self.shard_count.as_ref().and_then(ShardCountCheck::mismatch).map(|m| m.to_string())
    }

    /// Service requests being answered now.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.routes.in_flight()
    }

    /// Whether the node is draining before it stops.
    #[must_use]
    pub fn is_draining(&self) -> bool {
        self.routes.is_draining()
    }
}

/// A running node.
pub struct Node {
    server: Server,
    probe: NodeProbe,
    member: Member,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("group", &self.probe.group)
            .field("me", &self.probe.me)
            .field("addr", &self.server.addr())
            .finish()
    }
}

/// Resolve `host:port` to a socket address to listen on.
pub async fn resolve(addr: &str) -> Result<SocketAddr> {
    tokio::net::lookup_host(addr)
        .await
        .with_context(|| format!("cannot resolve {addr}"))?
        .next()
        .with_context(|| format!("{addr} resolves to no address"))
}

impl Node {
    /// Start the node: its member from `storage`, reaching peers through `net`.
    pub async fn start(spec: NodeSpec, storage: &Storage, net: &Net) -> Result<Self> {
        let group = match &spec.kind {
            Kind::Ctrler => CTRL_GROUP,
            Kind::Shardkv { group, .. } => *group,
        };
        let me = NodeId(spec.me as u64);
        let members: Vec<NodeId> = (1..=spec.peers.len() as u64).map(NodeId).collect();
        let peers: BTreeMap<NodeId, String> = members.iter().copied().zip(spec.peers.iter().cloned()).collect();
        let mut rcfg = RaftConfig::new(group, me, members.clone());
        rcfg.heartbeat_ticks = spec.raft.heartbeat_ticks;
        rcfg.election_ticks = spec.raft.election_ticks;
        rcfg.seed = group.0.rotate_left(32) ^ me.0 ^ u64::from(std::process::id());
        let driver = DriverConfig {
            tick: Duration::from_millis(spec.raft.tick_ms),
            snapshot_log_bytes: spec.raft.snapshot_log_bytes,
            snapshot_every_entries: 0,
            ..DriverConfig::default()
        };
        let (log, snapshots) = storage.member(group, me).await?;
        let transport = net.raft(group, peers);
        let routes = Routes::new();
        let mut shard_count = None;
        let (member, raft, service): (_, _, Arc<dyn ServiceHandler>) = match spec.kind {
            Kind::Ctrler => {
                let (sm, state) = CtrlStateMachine::new(spec.shards);
                let raft = Raft::start(rcfg, driver, log, snapshots, transport, sm)
                    .await
                    .context("starting the controller member")?;
                let service = Arc::new(CtrlService::new(group, raft.clone(), state, members, Duration::from_secs(2)));
                routes.add_member(group, me, Arc::new(raft.clone()));
                routes.set_service(service.clone());
                (Member::Ctrler(raft.clone()), MemberRaft::Ctrler(raft), service)
            }
            Kind::Shardkv { ctrl_peers, pull_chunk_bytes, .. } => {
                let opts = ShardKvOptions {
                    raft: rcfg,
                    driver,
                    n_shards: spec.shards,
                    members,
                    source: ConfigSource::Controller(ctrl_peers),
                    poll_interval: Duration::from_millis(100),
                    commit_timeout: Duration::from_secs(2),
                    call_timeout: Duration::from_secs(2),
                    limits: KvLimits::default(),
                    pull_chunk_bytes,
                };
                let server = ShardKvServer::start(opts, log, snapshots, transport, net.services())
                    .await
                    .context("starting the ShardKV member")?;
                routes.add_member(group, me, Arc::new(server.raft().clone()));
                routes.set_service(server.service());
                let raft = MemberRaft::Shardkv(server.raft().clone());
                let service = server.service();
                shard_count = Some(server.shard_count_check());
                (Member::Shardkv(server), raft, service)
            }
        };
        let role = match member {
            Member::Ctrler(_) => "ctrler",
            Member::Shardkv(_) => "shardkv",
        };
        let server =
            net.serve(spec.listen, routes.clone()).await.with_context(|| format!("listening on {}", spec.listen))?;
        let probe = NodeProbe { group, me, addr: server.addr(), role, raft, service, routes, shard_count };
        Ok(Self { server, probe, member })
    }

    /// The address the node listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The node's group.
    #[must_use]
    pub fn group(&self) -> GroupId {
        self.probe.group
    }

    /// A view of the node for the admin endpoints.
    #[must_use]
    pub fn probe(&self) -> NodeProbe {
        self.probe.clone()
    }

    /// The node's status, as its service reports it.
    pub async fn status(&self) -> Option<NodeStatus> {
        self.probe.status().await
    }

    /// If this member leads its group, hand leadership to the most caught-up
    /// follower and wait (at most `limit`) until it has taken over, so the
    /// group does not wait an election timeout for a new leader.
    pub async fn hand_off_leadership(&self, limit: Duration) {
        let Some(status) = self.probe.raft_status().await else { return };
        if status.role != Role::Leader {
            return;
        }
        let Some(to) = status.followers.iter().max_by_key(|f| f.match_index).map(|f| f.id) else { return };
        if !self.probe.transfer_leader(to).await {
            return;
        }
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            match self.probe.raft_status().await {
                Some(s) if s.role == Role::Leader => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                _ => return,
            }
        }
    }

    /// Resolves once the member has stopped on its own — its state machine
    /// failed, say a controller started with another shard count than its
    /// replicated configurations (the reason is logged at error level) —
    /// rather than by [`Node::shutdown`].
    pub async fn stopped(&self) {
        while self.probe.is_running() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stop taking service requests and let those being answered finish (at
    /// most `grace`); returns how many were cut short.
    pub async fn drain(&self, grace: Duration) -> usize {
        self.probe.routes.drain(grace).await
    }

    /// Stop serving, then stop the member (its writes are durable when each
    /// returns). Call [`Node::drain`] first to finish in-flight requests.
    pub async fn shutdown(self) {
        self.server.stop().await;
        match self.member {
            Member::Ctrler(raft) => raft.shutdown().await,
            Member::Shardkv(s) => s.shutdown().await,
        }
    }
}
