//! Key-value requests from clients to a ShardKV group.

use bytes::Bytes;

use crate::types::ClientId;

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
