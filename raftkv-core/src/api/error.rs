//! [`ApiError`]: the ordinary refusals of a service call.

use crate::types::{ConfigNum, NodeId};

/// Why a server did not carry out a service request. These are answers, not
/// failures of the transport: the client reacts (re-routes, retries, reports).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The group does not serve the key's shard (yet or any more): refresh
    /// the configuration and re-route.
    #[error("wrong group for this key's shard (server is at config {config})")]
    WrongGroup {
        /// The configuration the server is at.
        config: ConfigNum,
    },
    /// This server is not the leader of its group; try `leader_hint` if known.
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader {
        /// The leader this server knows of (its position in the group's server list, from 1).
        leader_hint: Option<NodeId>,
    },
    /// The server has not reached the configuration the request needs.
    #[error("not ready: server is at config {config}")]
    NotReady {
        /// The configuration the server is at.
        config: ConfigNum,
    },
    /// The request could not be completed now (commit timed out, shutting
    /// down); retrying may succeed. The outcome of a write is unknown.
    #[error("unavailable: {reason}")]
    Unavailable {
        /// What happened.
        reason: String,
    },
    /// The request is invalid and retrying will not help (oversize key or
    /// value, bad argument).
    #[error("invalid request: {reason}")]
    Invalid {
        /// What is wrong with it.
        reason: String,
    },
    /// This server does not offer the service (a controller asked for a key).
    #[error("unsupported here: {what}")]
    Unsupported {
        /// The service or call that is not offered.
        what: String,
    },
}

impl ApiError {
    /// The refusal for a Raft call that failed with `e`, on a server whose
    /// group's members are `members`, in the order of the group's server list
    /// (so that a leader hint becomes a position clients can use).
    #[must_use]
    pub fn from_raft(e: &crate::raft::driver::RaftError, members: &[NodeId]) -> Self {
        use crate::raft::driver::RaftError;
        match e {
            RaftError::NotLeader { leader_hint } => Self::NotLeader {
                leader_hint: leader_hint
                    .and_then(|l| members.iter().position(|&m| m == l))
                    .map(|i| NodeId(i as u64 + 1)),
            },
            RaftError::TransferInProgress(_) => Self::NotLeader { leader_hint: None },
            other => Self::Unavailable { reason: other.to_string() },
        }
    }
}
