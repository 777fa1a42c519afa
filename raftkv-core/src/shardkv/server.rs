//! [`ShardKvServer`]: one ShardKV member assembled — the Raft member with
//! the ShardKV state machine, its service, and its migration task.

use std::sync::Arc;
use std::time::Duration;

use super::migration::{ConfigSource, Migrator};
use super::service::{KvLimits, ShardKvService};
use super::shard_count::{CheckedCtrlCalls, ShardCountCheck};
use super::state::Applied;
use super::state_machine::{ShardKvStateMachine, SharedShardKv};
use crate::api::ServiceClient;
use crate::client::{ClerkConfig, CtrlClerk};
use crate::raft::core::RaftConfig;
use crate::raft::driver::{DriverConfig, Raft, RaftError, RaftHandle};
use crate::storage::{LogStore, SnapshotStore};
use crate::transport::Transport;
use crate::types::{ClientId, NodeId};

/// How a ShardKV member runs.
#[derive(Clone, Debug)]
pub struct ShardKvOptions {
    /// The Raft member (its `group` is the ShardKV group id).
    pub raft: RaftConfig,
    /// The Raft driver.
    pub driver: DriverConfig,
    /// Shards in the cluster.
    pub n_shards: usize,
    /// The group's members in the order of its server list in configurations.
    pub members: Vec<NodeId>,
    /// Where configurations come from.
    pub source: ConfigSource,
    /// How often the leader checks for a new configuration and for shards
    /// to pull or collect.
    pub poll_interval: Duration,
    /// A write not committed within this is answered `Unavailable`.
    pub commit_timeout: Duration,
    /// Deadline of one call to the controller or another group.
    pub call_timeout: Duration,
    /// Largest keys and values accepted.
    pub limits: KvLimits,
    /// Bytes of keys and values fetched per run when pulling a shard; each
    /// run is one log entry.
    pub pull_chunk_bytes: usize,
}

/// A running ShardKV member.
pub struct ShardKvServer {
    raft: RaftHandle<Applied>,
    service: Arc<ShardKvService>,
    state: SharedShardKv,
    migration: tokio::task::JoinHandle<()>,
    shard_count: ShardCountCheck,
}

impl std::fmt::Debug for ShardKvServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardKvServer").field("service", &self.service).finish_non_exhaustive()
    }
}

impl ShardKvServer {
    /// Recover the member from its stores and start it; `net` carries its
    /// calls to the controller and to other groups.
    pub async fn start(
        opts: ShardKvOptions,
        log_store: Arc<dyn LogStore>,
        snapshot_store: Arc<dyn SnapshotStore>,
        transport: Arc<dyn Transport>,
        net: Arc<dyn ServiceClient>,
    ) -> Result<Self, RaftError> {
        let group = opts.raft.group;
        let (sm, state) = ShardKvStateMachine::new(group, opts.n_shards);
        let raft =
            Raft::start(opts.raft.clone(), opts.driver.clone(), log_store, snapshot_store, transport, sm).await?;
        let service = ShardKvService {
            group,
            raft: raft.clone(),
            state: state.clone(),
            members: opts.members.clone(),
            limits: opts.limits,
            commit_timeout: opts.commit_timeout,
            net: net.clone(),
            ctrl_servers: match &opts.source {
                ConfigSource::Controller(servers) => servers.clone(),
                ConfigSource::Static(_) => Vec::new(),
            },
            call_timeout: opts.call_timeout,
        };
        // Configurations with another shard count than `n_shards` are
        // refused where they arrive, and never proposed.
        let shard_count = ShardCountCheck::new(group, opts.n_shards);
        if let ConfigSource::Static(config) = &opts.source {
            let _ = shard_count.check(config);
        }
        let ctrl_calls: Arc<dyn ServiceClient> =
            Arc::new(CheckedCtrlCalls { inner: net.clone(), check: shard_count.clone() });
        let ctrl = match &opts.source {
            ConfigSource::Controller(servers) => Some(CtrlClerk::new(
                servers.clone(),
                ctrl_calls,
                // Queries only: the controller deduplicates writes, not reads.
                ClientId(0),
                ClerkConfig { retry_pause: opts.poll_interval, deadline: Some(opts.call_timeout) },
            )),
            ConfigSource::Static(_) => None,
        };
        let migrator = Migrator {
            service: service.clone(),
            source: opts.source.clone(),
            ctrl,
            net,
            interval: opts.poll_interval,
            call_timeout: opts.call_timeout,
            chunk_bytes: opts.pull_chunk_bytes,
        };
        let migration = tokio::spawn(migrator.run());
        Ok(Self { raft, service: Arc::new(service), state, migration, shard_count })
    }

    /// The Raft member (to register with a transport's server).
    #[must_use]
    pub fn raft(&self) -> &RaftHandle<Applied> {
        &self.raft
    }

    /// The service handler (to register with a transport's server).
    #[must_use]
    pub fn service(&self) -> Arc<ShardKvService> {
        self.service.clone()
    }

    /// The check of the controller's configurations against the member's
    /// shard count: its [`ShardCountCheck::mismatch`] says why the member
    /// uses none of them (for status pages; clones share it).
    #[must_use]
    pub fn shard_count_check(&self) -> ShardCountCheck {
        self.shard_count.clone()
    }

    /// The replicated state (for status pages and tests).
    #[must_use]
    pub fn state(&self) -> &SharedShardKv {
        &self.state
    }

    /// Stop the member.
    pub async fn shutdown(&self) {
        self.migration.abort();
        self.raft.shutdown().await;
    }

    /// Crash-stop: end every task at once (simulated crashes).
    pub fn abort(&self) {
        self.migration.abort();
        self.raft.abort();
    }
}

impl Drop for ShardKvServer {
    fn drop(&mut self) {
        self.migration.abort();
    }
}
