//! A hook that sees every step of a member, for invariant checkers and metrics.

use crate::raft::core::{RaftLog, Role};
use crate::raft::Entry;
use crate::types::{GroupId, LogIndex, NodeId, Term};

/// What a member did in one step of its event loop.
#[derive(Debug)]
pub struct StepReport<'a> {
    /// Group of the member.
    pub group: GroupId,
    /// The member.
    pub node: NodeId,
    /// Term after the step.
    pub term: Term,
    /// Role after the step.
    pub role: Role,
    /// Commit index after the step.
    pub commit: LogIndex,
    /// Last log index and term after the step.
    pub last: (LogIndex, Term),
    /// Entries handed to the log store in this step (after `truncated_after`, if set).
    pub persisted: &'a [Entry],
    /// The durable log was cut after this index in this step.
    pub truncated_after: Option<LogIndex>,
    /// Entries handed to the state machine in this step.
    pub committed: &'a [Entry],
    /// The member's in-memory log after the step.
    pub log: &'a RaftLog,
}

/// Sees every step of every member it is given to.
pub trait RaftObserver: Send + Sync + 'static {
    /// Called after each step's durable writes.
    fn on_step(&self, report: &StepReport<'_>);
}
