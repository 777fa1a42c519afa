//! Errors of the [`Transport`](super::Transport) trait.

use std::time::Duration;

use crate::types::NodeId;

/// Why a call did not produce a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The peer could not be reached (connection refused, down, partitioned).
    #[error("node {0} is unreachable")]
    Unreachable(NodeId),
    /// No response arrived within the deadline.
    #[error("call to node {node} timed out after {after:?}")]
    Timeout {
        /// The peer.
        node: NodeId,
        /// The deadline that passed.
        after: Duration,
    },
    /// The peer refused the call (malformed, too large, shutting down).
    #[error("node {node} rejected the call: {reason}")]
    Rejected {
        /// The peer.
        node: NodeId,
        /// Why.
        reason: String,
    },
    /// The message is larger than the configured limit.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size of the message.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
}
