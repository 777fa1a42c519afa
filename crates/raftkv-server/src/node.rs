//! One node: a Raft member (controller or ShardKV) with its service, served
//! by the transport on its own address.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use raftkv_core::api::{NodeStatus, ServiceHandler, ServiceRequest, ServiceResponse};
use raftkv_core::ctrler::{CtrlReply, CtrlService, CtrlStateMachine};
use raftkv_core::raft::core::RaftConfig;
use raftkv_core::raft::driver::{DriverConfig, Raft, RaftHandle};
use raftkv_core::shardkv::{ConfigSource, KvLimits, ShardKvOptions, ShardKvServer};
use raftkv_core::transport::Routes;
use raftkv_core::{GroupId, NodeId};

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
    Ctrler { raft: RaftHandle<CtrlReply>, service: Arc<CtrlService> },
    Shardkv(ShardKvServer),
}

/// A running node.
pub struct Node {
    server: Server,
    routes: Routes,
    member: Member,
    group: GroupId,
    me: NodeId,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("group", &self.group)
            .field("me", &self.me)
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
        let member = match spec.kind {
            Kind::Ctrler => {
                let (sm, state) = CtrlStateMachine::new(spec.shards);
                let raft = Raft::start(rcfg, driver, log, snapshots, transport, sm)
                    .await
                    .context("starting the controller member")?;
                let service = Arc::new(CtrlService::new(group, raft.clone(), state, members, Duration::from_secs(2)));
                routes.add_member(group, me, Arc::new(raft.clone()));
                routes.set_service(service.clone());
                Member::Ctrler { raft, service }
            }
            Kind::Shardkv { ctrl_peers, .. } => {
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
                };
                let server = ShardKvServer::start(opts, log, snapshots, transport, net.services())
                    .await
                    .context("starting the ShardKV member")?;
                routes.add_member(group, me, Arc::new(server.raft().clone()));
                routes.set_service(server.service());
                Member::Shardkv(server)
            }
        };
        let server =
            net.serve(spec.listen, routes.clone()).await.with_context(|| format!("listening on {}", spec.listen))?;
        Ok(Self { server, routes, member, group, me })
    }

    /// The address the node listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The node's group.
    #[must_use]
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// The node's status, as its service reports it.
    pub async fn status(&self) -> Option<NodeStatus> {
        let answer = match &self.member {
            Member::Ctrler { service, .. } => service.handle(ServiceRequest::Status).await,
            Member::Shardkv(s) => s.service().handle(ServiceRequest::Status).await,
        };
        match answer {
            ServiceResponse::Status(Ok(s)) => Some(s),
            _ => None,
        }
    }

    /// The node's Raft member's status.
    async fn raft_status(&self) -> Option<raftkv_core::raft::core::Status> {
        match &self.member {
            Member::Ctrler { raft, .. } => raft.status().await.ok(),
            Member::Shardkv(s) => s.raft().status().await.ok(),
        }
    }

    async fn transfer_leader(&self, to: NodeId) -> bool {
        let asked = match &self.member {
            Member::Ctrler { raft, .. } => raft.transfer_leader(to).await,
            Member::Shardkv(s) => s.raft().transfer_leader(to).await,
        };
        asked.is_ok()
    }

    /// If this member leads its group, hand leadership to the most caught-up
    /// follower and wait (at most `limit`) until it has taken over, so the
    /// group does not wait an election timeout for a new leader.
    pub async fn hand_off_leadership(&self, limit: Duration) {
        let Some(status) = self.raft_status().await else { return };
        if status.role != raftkv_core::raft::core::Role::Leader {
            return;
        }
        let Some(to) = status.followers.iter().max_by_key(|f| f.match_index).map(|f| f.id) else { return };
        if !self.transfer_leader(to).await {
            return;
        }
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            match self.raft_status().await {
                Some(s) if s.role == raftkv_core::raft::core::Role::Leader => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                _ => return,
            }
        }
    }

    /// Stop taking service requests and let those being answered finish (at
    /// most `grace`); returns how many were cut short.
    pub async fn drain(&self, grace: Duration) -> usize {
        self.routes.drain(grace).await
    }

    /// Stop serving, then stop the member (its writes are durable when each
    /// returns). Call [`Node::drain`] first to finish in-flight requests.
    pub async fn shutdown(self) {
        self.server.stop().await;
        match self.member {
            Member::Ctrler { raft, .. } => raft.shutdown().await,
            Member::Shardkv(s) => s.shutdown().await,
        }
    }
}
