//! Requests to the shard controller, and the configurations it publishes.

use std::collections::BTreeMap;

use super::kv::RequestId;
use crate::types::{ConfigNum, GroupId, ShardId};

/// One configuration: which group serves each shard, and the servers of each group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardConfig {
    /// Configuration number; 0 is the initial, empty configuration.
    pub num: ConfigNum,
    /// Owner of each shard `0..n_shards`; `GroupId(0)` means unassigned.
    pub shards: Vec<GroupId>,
    /// Servers (`host:port`) of every group, the Raft member `i + 1` at position `i`.
    pub groups: BTreeMap<GroupId, Vec<String>>,
}

/// One controller operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtrlOp {
    /// Add groups with their servers.
    Join {
        /// The new groups.
        groups: BTreeMap<GroupId, Vec<String>>,
    },
    /// Remove groups; their shards move to the remaining ones.
    Leave {
        /// The leaving groups.
        groups: Vec<GroupId>,
    },
    /// Assign one shard to one group.
    Move {
        /// The shard.
        shard: ShardId,
        /// Its new owner.
        group: GroupId,
    },
    /// Read a configuration: `None` (or a number past the latest) is the latest.
    Query {
        /// Which configuration.
        num: Option<ConfigNum>,
    },
}

impl CtrlOp {
    /// Short name, for traces and routes.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Join { .. } => "join",
            Self::Leave { .. } => "leave",
            Self::Move { .. } => "move",
            Self::Query { .. } => "query",
        }
    }
}

/// A controller request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtrlRequest {
    /// Deduplication identity.
    pub id: RequestId,
    /// The operation.
    pub op: CtrlOp,
}
