//! Shard migration between groups: the new owner pulls, then tells the old
//! owner to delete.

use bytes::Bytes;

use crate::types::{ClientId, ConfigNum, ShardId};

/// New owner → previous owner: send me these shards as they were at the end
/// of configuration `config - 1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullShardsRequest {
    /// The configuration in which the requester gained the shards.
    pub config: ConfigNum,
    /// The shards wanted.
    pub shards: Vec<ShardId>,
}

/// One shard's contents, with the duplicate table that travels with it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardData {
    /// The shard.
    pub shard: ShardId,
    /// Its keys and values.
    pub entries: Vec<(Bytes, Bytes)>,
    /// Highest applied sequence number of every client that wrote to the shard.
    pub dedup: Vec<(ClientId, u64)>,
}

/// New owner → previous owner: the shards of `config` are installed; delete your copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteShardsRequest {
    /// The configuration in which the requester gained the shards.
    pub config: ConfigNum,
    /// The shards to delete.
    pub shards: Vec<ShardId>,
}
