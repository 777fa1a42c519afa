//! Errors returned by the Raft core's API.

use crate::types::NodeId;

/// A bad [`RaftConfig`](super::RaftConfig).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The member is not among the voters.
    #[error("node {0} is not in the voter list")]
    NotAVoter(NodeId),
    /// A voter appears twice.
    #[error("the voter list has duplicates")]
    DuplicateVoter,
    /// A setting is out of range.
    #[error("invalid raft setting {key}: expected {expected}")]
    Invalid {
        /// The setting.
        key: &'static str,
        /// What was expected.
        expected: &'static str,
    },
}

/// Why a proposal, read or transfer was not accepted by this member.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotReady {
    /// This member is not the leader; `leader_hint` is the leader it knows of.
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader {
        /// The leader this member believes in, if any.
        leader_hint: Option<NodeId>,
    },
    /// A leadership transfer is in progress; retry on the new leader.
    #[error("leadership transfer to node {0} in progress")]
    TransferInProgress(NodeId),
    /// The target is not a voter of this group.
    #[error("node {0} is not a member of this group")]
    UnknownNode(NodeId),
}
