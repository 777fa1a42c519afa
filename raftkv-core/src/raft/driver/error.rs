//! Errors of the driver's public API.

use crate::raft::core::{ConfigError, NotReady};
use crate::state_machine::StateMachineError;
use crate::storage::StorageError;
use crate::types::NodeId;

/// Why a proposal, read or admin call on a [`RaftHandle`](super::RaftHandle) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RaftError {
    /// This member is not the leader; retry on `leader_hint` if known.
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader {
        /// The leader this member knows of.
        leader_hint: Option<NodeId>,
    },
    /// A leadership transfer is in progress.
    #[error("leadership transfer to node {0} in progress")]
    TransferInProgress(NodeId),
    /// The node is not a member of the group.
    #[error("node {0} is not a member of this group")]
    UnknownNode(NodeId),
    /// The proposal's entry was replaced by another leader's: it was not applied.
    #[error("the proposal was overwritten by a new leader and not applied")]
    Dropped,
    /// The proposal may or may not have been applied (covered by a received snapshot).
    #[error("the outcome of the proposal is unknown")]
    Unknown,
    /// This leader's log writes fail (a full disk, say) and are being retried:
    /// it takes no proposals until they pass; reads go on.
    #[error("writes are refused while this member's log store fails ({reason}); it retries and resumes by itself")]
    StorageFailing {
        /// The write's error.
        reason: String,
    },
    /// The member has stopped (shut down, crashed, or failed).
    #[error("the raft member has stopped")]
    Stopped,
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The log or snapshot store failed; the member stops.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The state machine failed; the member stops.
    #[error(transparent)]
    StateMachine(#[from] StateMachineError),
}

impl From<NotReady> for RaftError {
    fn from(e: NotReady) -> Self {
        match e {
            NotReady::NotLeader { leader_hint } => Self::NotLeader { leader_hint },
            NotReady::TransferInProgress(n) => Self::TransferInProgress(n),
            NotReady::UnknownNode(n) => Self::UnknownNode(n),
        }
    }
}
