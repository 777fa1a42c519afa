//! Key-value requests from clients to a ShardKV group.

use bytes::Bytes;

use crate::types::{ClientId, ShardId};

/// The shard a key belongs to: the 64-bit FNV-1a hash of its bytes modulo
/// the number of shards. Every client and server uses this function; it
/// never changes for a cluster.
#[must_use]
pub fn shard_of(key: &[u8], n_shards: usize) -> ShardId {
    let hash = key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    ShardId(hash % (n_shards.max(1) as u64))
}

/// Identity of one client request, for at-most-once execution: a client
/// retries with the same id, and a group applies each id at most once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId {
    /// The client.
    pub client: ClientId,
    /// The client's sequence number, increasing by one per new request.
    pub seq: u64,
}

/// One key-value operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvOp {
    /// Read a key; a missing key reads as `None`.
    Get {
        /// The key.
        key: Bytes,
    },
    /// Set a key.
    Put {
        /// The key.
        key: Bytes,
        /// The new value.
        value: Bytes,
    },
    /// Append to a key's value (a missing key counts as empty).
    Append {
        /// The key.
        key: Bytes,
        /// The suffix.
        value: Bytes,
    },
    /// Remove a key.
    Delete {
        /// The key.
        key: Bytes,
    },
}

impl KvOp {
    /// The key the operation is about.
    #[must_use]
    pub fn key(&self) -> &Bytes {
        match self {
            Self::Get { key } | Self::Put { key, .. } | Self::Append { key, .. } | Self::Delete { key } => key,
        }
    }

    /// Short name, for traces and routes.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Get { .. } => "get",
            Self::Put { .. } => "put",
            Self::Append { .. } => "append",
            Self::Delete { .. } => "delete",
        }
    }
}

/// A key-value request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvRequest {
    /// Deduplication identity.
    pub id: RequestId,
    /// The operation.
    pub op: KvOp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_spread() {
        // Fixed values: changing the function would move every key of a running cluster.
        assert_eq!(shard_of(b"", 10), ShardId(0xcbf2_9ce4_8422_2325 % 10));
        assert_eq!(shard_of(b"a", 10), shard_of(b"a", 10));
        let mut counts = [0usize; 10];
        for i in 0..10_000 {
            counts[shard_of(format!("key-{i}").as_bytes(), 10).0 as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (800..1200).contains(&c)), "{counts:?}");
        assert_eq!(shard_of(b"x", 0), ShardId(0), "no shards: everything in shard 0 rather than a panic");
    }
}
