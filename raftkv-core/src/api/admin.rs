//! What a node reports about itself to operators.

use crate::raft::core::Status;
use crate::types::{ConfigNum, GroupId, ShardId};

/// Where a shard stands on one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardState {
    /// Owned and serving requests.
    Serving,
    /// Gained in the current configuration; waiting for its data.
    Pulling,
    /// Lost in the current configuration; held until the new owner has it.
    Sending,
    /// Installed here; the previous owner has not yet confirmed deleting its copy.
    Collecting,
}

/// One shard's state on a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardStatus {
    /// The shard.
    pub shard: ShardId,
    /// Its state.
    pub state: ShardState,
    /// Pulling or collecting: the group the shard comes from.
    pub from: Option<GroupId>,
    /// Pulling, collecting or sending: the configuration in which its
    /// previous holder lost it (what a pull or a delete names).
    pub frozen_at: Option<ConfigNum>,
}

/// A node's view of itself: its Raft member and, on a ShardKV node, its shards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node's group.
    pub group: GroupId,
    /// The Raft member.
    pub raft: Status,
    /// The shard configuration the node is at (0 on a controller).
    pub config: ConfigNum,
    /// Shards the node holds, in shard order.
    pub shards: Vec<ShardStatus>,
}
