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

impl RaftError {
    /// Whether the same call may succeed if made again, on this member or
    /// on another: not the leader (see [`Self::leader_hint`]), a leadership
    /// transfer in progress, a proposal dropped unapplied, writes refused
    /// while the log store fails, or a stopped member (try another). A
    /// caller retries these with backoff.
    ///
    /// Not retryable: [`Self::Unknown`] (the proposal may have been applied:
    /// only an idempotent command may be repeated), a configuration or
    /// membership error, and the fatal ones of [`Self::is_fatal`].
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::NotLeader { .. }
                | Self::TransferInProgress(_)
                | Self::Dropped
                | Self::StorageFailing { .. }
                | Self::Stopped
        )
    }

    /// Whether the member failed and stopped: its log or snapshot store, or
    /// its state machine, returned an error it cannot go on from. Every
    /// later call fails with [`Self::Stopped`]; an operator looks at why.
    #[must_use]
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Storage(_) | Self::StateMachine(_))
    }

    /// The leader this member knows of, when it refused for not being it.
    #[must_use]
    pub fn leader_hint(&self) -> Option<NodeId> {
        match self {
            Self::NotLeader { leader_hint } => *leader_hint,
            _ => None,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_a_caller_retries_are_told_apart_from_fatal_ones() {
        let hinted = RaftError::NotLeader { leader_hint: Some(NodeId(3)) };
        assert!(hinted.is_retryable() && !hinted.is_fatal());
        assert_eq!(hinted.leader_hint(), Some(NodeId(3)));
        for retry in [
            RaftError::TransferInProgress(NodeId(2)),
            RaftError::Dropped,
            RaftError::StorageFailing { reason: "disk full".into() },
            RaftError::Stopped,
        ] {
            assert!(retry.is_retryable() && !retry.is_fatal(), "{retry}");
            assert_eq!(retry.leader_hint(), None);
        }
        for neither in [RaftError::Unknown, RaftError::UnknownNode(NodeId(9))] {
            assert!(!neither.is_retryable() && !neither.is_fatal(), "{neither}");
        }
        let fatal = RaftError::Storage(StorageError::Closed);
        assert!(fatal.is_fatal() && !fatal.is_retryable());
        let fatal = RaftError::StateMachine(StateMachineError::Failed("bad command".into()));
        assert!(fatal.is_fatal() && !fatal.is_retryable());
    }
}
