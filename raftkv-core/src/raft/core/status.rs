//! What a member reports about itself.

use crate::types::{LogIndex, NodeId, Term};

use super::{ProgressState, RaftCore};

/// Role of a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asking for pre-votes before starting an election.
    PreCandidate,
    /// Asking for votes in a new term.
    Candidate,
    /// Leads the group.
    Leader,
}

/// A follower as seen by the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowerStatus {
    /// The follower.
    pub id: NodeId,
    /// Highest index known replicated there.
    pub match_index: LogIndex,
    /// Next index to send.
    pub next_index: LogIndex,
    /// Entries the follower lags behind the leader's last index.
    pub lag: u64,
    /// Sending mode.
    pub state: ProgressState,
}

/// A snapshot of a member's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// This member.
    pub id: NodeId,
    /// Role.
    pub role: Role,
    /// Current term.
    pub term: Term,
    /// Known leader.
    pub leader: Option<NodeId>,
    /// Commit index.
    pub commit: LogIndex,
    /// Highest index handed to the state machine.
    pub applied: LogIndex,
    /// Last log index.
    pub last_index: LogIndex,
    /// Index covered by the latest snapshot.
    pub snapshot_index: LogIndex,
    /// Leader only: every follower.
    pub followers: Vec<FollowerStatus>,
    /// Set by the driver while its log writes fail and are retried: the error.
    pub storage_failing: Option<String>,
}

impl RaftCore {
    /// Current status.
    #[must_use]
    pub fn status(&self) -> Status {
        let last = self.log.last_index();
        Status {
            id: self.cfg.id,
            role: self.role,
            term: self.term,
            leader: self.leader,
            commit: self.log.commit,
            applied: self.log.applied,
            last_index: last,
            snapshot_index: self.log.snapshot().last_index,
            followers: self
                .progress
                .iter()
                .map(|(&id, p)| FollowerStatus {
                    id,
                    match_index: p.match_index,
                    next_index: p.next_index,
                    lag: last.0.saturating_sub(p.match_index.0),
                    state: p.state,
                })
                .collect(),
            storage_failing: None,
        }
    }
}
