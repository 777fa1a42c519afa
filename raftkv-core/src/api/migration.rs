//! Shard migration between groups: the new owner pulls, then tells the old
//! owner to delete.

use bytes::Bytes;

use crate::types::{ClientId, ConfigNum, GroupId, ShardId};

/// New owner → previous owner: send me these shards as they were at the end
/// of configuration `config - 1`, in order, starting after key `after` of
/// the first one, up to about `max_bytes` of keys and values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullShardsRequest {
    /// The configuration in which the requester gained the shards.
    pub config: ConfigNum,
    /// The shards wanted.
    pub shards: Vec<ShardId>,
    /// Resume the first shard after this key (exclusive); `None`: from its start.
    pub after: Option<Bytes>,
    /// Bytes of keys and values wanted in this answer (the holder may send
    /// less, and always sends at least one entry when any is left);
    /// `0`: the holder's own limit.
    pub max_bytes: u64,
}

/// A run of one shard's contents in key order. The last run of a shard
/// (`more == false`) carries the duplicate table that travels with it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardData {
    /// The shard.
    pub shard: ShardId,
    /// Its keys and values (all of them, or a run of them when `more`).
    pub entries: Vec<(Bytes, Bytes)>,
    /// Highest applied sequence number of every client that wrote to the
    /// shard (empty while `more`).
    pub dedup: Vec<(ClientId, u64)>,
    /// Whether entries after the last one here are still to come.
    pub more: bool,
}

/// New owner → previous owner: the shards of `config` are installed; delete your copy.
///
/// The previous owner deletes only when the caller may speak for `group`
/// and `group` itself reports the shards installed from it (collecting).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteShardsRequest {
    /// The configuration in which the previous owner lost the shards.
    pub config: ConfigNum,
    /// The shards to delete.
    pub shards: Vec<ShardId>,
    /// The group that gained them and asks.
    pub group: GroupId,
}
