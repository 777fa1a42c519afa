//! The `dev` role: a whole cluster — the controllers and every group — in
//! one process on localhost ports, with the groups joined automatically
//! (unless `dev.join = false`).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use raftkv_core::client::{ClerkConfig, CtrlClerk};
use raftkv_core::{ClientId, GroupId};

use crate::backend::Net;
use crate::config::Config;
use crate::datadir::open_storage;
use crate::node::{resolve, Kind, Node, NodeSpec};
use crate::setup::net_config;

/// A running dev cluster.
pub struct DevCluster {
    nodes: Vec<Node>,
    /// The controllers' addresses.
    pub ctrl_peers: Vec<String>,
    /// Every group's servers.
    pub groups: BTreeMap<GroupId, Vec<String>>,
}

impl std::fmt::Debug for DevCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCluster").field("ctrl_peers", &self.ctrl_peers).field("groups", &self.groups).finish()
    }
}

fn port(base: u16, offset: usize) -> Result<u16> {
    u16::try_from(usize::from(base) + offset).ok().context("dev.base_port is too high for this many nodes")
}

impl DevCluster {
    /// Start every node of `cfg.dev` and join the groups the controller does not know yet.
    pub async fn start(cfg: &Config) -> Result<Self> {
        let storage = open_storage(cfg).await?;
        let net = Net::new(cfg.transport, net_config(cfg)?)?;
        let d = &cfg.dev;
        let addr = |offset: usize| -> Result<String> { Ok(format!("{}:{}", d.host, port(d.base_port, offset)?)) };
        let ctrl_peers: Vec<String> = (0..d.ctrlers).map(addr).collect::<Result<_>>()?;
        let mut groups = BTreeMap::new();
        for g in 0..d.groups {
            let servers = (0..d.replicas).map(|i| addr(d.ctrlers + g * d.replicas + i)).collect::<Result<Vec<_>>>()?;
            groups.insert(GroupId(g as u64 + 1), servers);
        }
        let mut specs = Vec::new();
        for (i, a) in ctrl_peers.iter().enumerate() {
            let spec = NodeSpec {
                kind: Kind::Ctrler,
                peers: ctrl_peers.clone(),
                me: i + 1,
                listen: resolve(a).await?,
                shards: cfg.shards,
                raft: cfg.raft.clone(),
            };
            specs.push((spec, format!("controller {a}")));
        }
        for (&group, servers) in &groups {
            for (i, a) in servers.iter().enumerate() {
                let spec = NodeSpec {
                    kind: Kind::Shardkv {
                        group,
                        ctrl_peers: ctrl_peers.clone(),
                        pull_chunk_bytes: cfg.pull_chunk_bytes,
                    },
                    peers: servers.clone(),
                    me: i + 1,
                    listen: resolve(a).await?,
                    shards: cfg.shards,
                    raft: cfg.raft.clone(),
                };
                specs.push((spec, format!("server {a} of group {group}")));
            }
        }
        let mut nodes = Vec::with_capacity(specs.len());
        for (spec, what) in specs {
            match Node::start(spec, &storage, &net).await {
                Ok(node) => nodes.push(node),
                Err(e) => {
                    // Stop what already runs: its ports and database are free again.
                    for n in nodes {
                        n.shutdown().await;
                    }
                    return Err(e.context(format!("starting {what}")));
                }
            }
        }
        let cluster = Self { nodes, ctrl_peers, groups };
        if d.join {
            if let Err(e) = cluster.join_groups(&net).await {
                cluster.shutdown(Duration::ZERO).await;
                return Err(e);
            }
        }
        Ok(cluster)
    }

    async fn join_groups(&self, net: &Net) -> Result<()> {
        let cfg = ClerkConfig { retry_pause: Duration::from_millis(100), deadline: Some(Duration::from_secs(30)) };
        let mut ctrl =
            CtrlClerk::new(self.ctrl_peers.clone(), net.services(), ClientId(std::process::id().into()), cfg);
        let latest = ctrl.query(None).await.context("asking the controller for its configuration")?;
        // One join per group, in gid order, like the controller session of
        // the compatibility contract (see the cli module): the configurations
        // are then the same (`Config #2` holds both groups, shards split 5/5).
        for (group, servers) in self.groups.iter().filter(|(g, _)| !latest.groups.contains_key(g)) {
            ctrl.join(BTreeMap::from([(*group, servers.clone())]))
                .await
                .with_context(|| format!("joining group {group}"))?;
        }
        Ok(())
    }

    /// Every node.
    #[must_use]
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Stop every node: all of them stop taking requests and finish those in
    /// flight (at most `grace`), then each stops. Returns the requests cut short.
    pub async fn shutdown(self, grace: Duration) -> usize {
        let drained = futures::future::join_all(self.nodes.iter().map(|n| n.drain(grace))).await;
        for n in self.nodes {
            n.shutdown().await;
        }
        drained.into_iter().sum()
    }
}
