//! Raft log entries and the RPCs exchanged between members of one group.
//!
//! Every request has exactly one response type; the driver sends a request
//! through a [`Transport`](crate::transport::Transport) and steps the reply
//! back into the core.

use bytes::Bytes;

use crate::types::{LogIndex, NodeId, Term};

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryPayload {
    /// The no-op a new leader appends to commit entries of earlier terms.
    Blank,
    /// An opaque command for the state machine.
    Command(Bytes),
}

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Term of the leader that created the entry.
    pub term: Term,
    /// Position in the log.
    pub index: LogIndex,
    /// The command or a blank.
    pub payload: EntryPayload,
}

impl Entry {
    /// Bytes this entry takes on the wire and on disk (index, term, tag, payload).
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        let body = match &self.payload {
            EntryPayload::Blank => 0,
            EntryPayload::Command(b) => b.len() + varint_len(b.len() as u64),
        };
        varint_len(self.term.0) + varint_len(self.index.0) + 1 + body
    }
}

/// The durable vote and term of a member (plus the last known commit index).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// Latest term this member has seen.
    pub term: Term,
    /// Candidate voted for in `term`, if any.
    pub vote: Option<NodeId>,
    /// Highest index known committed (an optimisation; may lag).
    pub commit: LogIndex,
}

impl HardState {
    /// Bytes this hard state takes when encoded.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        varint_len(self.term.0) + 1 + self.vote.map_or(0, |v| varint_len(v.0)) + varint_len(self.commit.0)
    }
}

/// Identity of a snapshot: the last log entry it covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// Index of the last entry included in the snapshot.
    pub last_index: LogIndex,
    /// Term of that entry.
    pub last_term: Term,
}

/// Leader → follower: replicate entries (empty `entries` still checks the log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendEntriesRequest {
    /// Leader's term.
    pub term: Term,
    /// The leader.
    pub leader: NodeId,
    /// Index of the entry right before `entries`.
    pub prev_log_index: LogIndex,
    /// Term of that entry.
    pub prev_log_term: Term,
    /// Entries to append, contiguous from `prev_log_index + 1`.
    pub entries: Vec<Entry>,
    /// Leader's commit index.
    pub leader_commit: LogIndex,
    /// Read-index round this message confirms leadership for.
    pub read_seq: u64,
}

/// Follower's answer to [`AppendEntriesRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendEntriesResponse {
    /// Follower's term (for the leader to step down if it is stale).
    pub term: Term,
    /// Whether the entries were appended (and are durable).
    pub success: bool,
    /// On success, last index known to match the leader.
    pub match_index: LogIndex,
    /// On rejection, the `prev_log_index` that was rejected.
    pub rejected_prev: LogIndex,
    /// On rejection, the term of the follower's conflicting entry, if any.
    pub conflict_term: Option<Term>,
    /// On rejection, where the leader should retry from.
    pub conflict_index: LogIndex,
    /// Echo of the request's read round.
    pub read_seq: u64,
}

/// Leader → follower: periodic liveness and commit propagation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatRequest {
    /// Leader's term.
    pub term: Term,
    /// The leader.
    pub leader: NodeId,
    /// `min(leader commit, follower match)`: safe for the follower to commit.
    pub commit: LogIndex,
    /// Read-index round this heartbeat confirms leadership for.
    pub read_seq: u64,
}

/// Follower's answer to [`HeartbeatRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatResponse {
    /// Follower's term.
    pub term: Term,
    /// Echo of the request's read round.
    pub read_seq: u64,
}

/// Candidate → voter: ask for a (pre-)vote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoteRequest {
    /// The term the candidate runs for (for a pre-vote: the term it would use).
    pub term: Term,
    /// The candidate.
    pub candidate: NodeId,
    /// Index of the candidate's last entry.
    pub last_log_index: LogIndex,
    /// Term of the candidate's last entry.
    pub last_log_term: Term,
    /// A pre-vote does not change anyone's term.
    pub pre_vote: bool,
    /// Set on elections caused by a leadership transfer: bypasses the leader lease.
    pub transfer: bool,
}

/// Voter's answer to [`VoteRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoteResponse {
    /// Voter's term (or the requested term for a granted pre-vote).
    pub term: Term,
    /// Whether the (pre-)vote was granted.
    pub granted: bool,
    /// Whether this answers a pre-vote.
    pub pre_vote: bool,
}

/// Leader → follower: one chunk of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallSnapshotRequest {
    /// Leader's term.
    pub term: Term,
    /// The leader.
    pub leader: NodeId,
    /// Which snapshot this chunk belongs to.
    pub meta: SnapshotMeta,
    /// Byte offset of `data` in the snapshot.
    pub offset: u64,
    /// The chunk.
    pub data: Bytes,
    /// Whether this is the last chunk.
    pub done: bool,
}

/// Follower's answer to [`InstallSnapshotRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallSnapshotResponse {
    /// Follower's term.
    pub term: Term,
    /// Whether the chunk was taken; if not, `next_offset` says where to resume.
    pub accepted: bool,
    /// Offset the follower expects next.
    pub next_offset: u64,
}

/// Leader → transfer target: start an election now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeoutNowRequest {
    /// Leader's term.
    pub term: Term,
    /// The leader handing over.
    pub leader: NodeId,
}

/// Target's answer to [`TimeoutNowRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeoutNowResponse {
    /// Target's term.
    pub term: Term,
}

/// Any Raft request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RaftRequest {
    /// Log replication.
    AppendEntries(AppendEntriesRequest),
    /// Liveness, commit propagation, read confirmation.
    Heartbeat(HeartbeatRequest),
    /// Election and pre-election.
    Vote(VoteRequest),
    /// Snapshot chunk.
    InstallSnapshot(InstallSnapshotRequest),
    /// Leadership transfer.
    TimeoutNow(TimeoutNowRequest),
}

/// Any Raft response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RaftResponse {
    /// Answer to [`RaftRequest::AppendEntries`].
    AppendEntries(AppendEntriesResponse),
    /// Answer to [`RaftRequest::Heartbeat`].
    Heartbeat(HeartbeatResponse),
    /// Answer to [`RaftRequest::Vote`].
    Vote(VoteResponse),
    /// Answer to [`RaftRequest::InstallSnapshot`].
    InstallSnapshot(InstallSnapshotResponse),
    /// Answer to [`RaftRequest::TimeoutNow`].
    TimeoutNow(TimeoutNowResponse),
}

impl RaftRequest {
    /// Short name of the RPC, for traces and metrics.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::AppendEntries(_) => "append_entries",
            Self::Heartbeat(_) => "heartbeat",
            Self::Vote(_) => "vote",
            Self::InstallSnapshot(_) => "install_snapshot",
            Self::TimeoutNow(_) => "timeout_now",
        }
    }

    /// Size of the request in a compact binary encoding (varints, length-prefixed bytes).
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        match self {
            Self::AppendEntries(r) => {
                1 + varint_len(r.term.0)
                    + varint_len(r.leader.0)
                    + varint_len(r.prev_log_index.0)
                    + varint_len(r.prev_log_term.0)
                    + varint_len(r.leader_commit.0)
                    + varint_len(r.read_seq)
                    + varint_len(r.entries.len() as u64)
                    + r.entries.iter().map(Entry::encoded_len).sum::<usize>()
            }
            Self::Heartbeat(r) => {
                1 + varint_len(r.term.0) + varint_len(r.leader.0) + varint_len(r.commit.0) + varint_len(r.read_seq)
            }
            Self::Vote(r) => {
                3 + varint_len(r.term.0)
                    + varint_len(r.candidate.0)
                    + varint_len(r.last_log_index.0)
                    + varint_len(r.last_log_term.0)
            }
            Self::InstallSnapshot(r) => {
                2 + varint_len(r.term.0)
                    + varint_len(r.leader.0)
                    + varint_len(r.meta.last_index.0)
                    + varint_len(r.meta.last_term.0)
                    + varint_len(r.offset)
                    + varint_len(r.data.len() as u64)
                    + r.data.len()
            }
            Self::TimeoutNow(r) => 1 + varint_len(r.term.0) + varint_len(r.leader.0),
        }
    }

    /// Term carried by the request.
    #[must_use]
    pub fn term(&self) -> Term {
        match self {
            Self::AppendEntries(r) => r.term,
            Self::Heartbeat(r) => r.term,
            Self::Vote(r) => r.term,
            Self::InstallSnapshot(r) => r.term,
            Self::TimeoutNow(r) => r.term,
        }
    }
}

impl RaftResponse {
    /// Size of the response in a compact binary encoding.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        match self {
            Self::AppendEntries(r) => {
                2 + varint_len(r.term.0)
                    + varint_len(r.match_index.0)
                    + varint_len(r.rejected_prev.0)
                    + r.conflict_term.map_or(1, |t| 1 + varint_len(t.0))
                    + varint_len(r.conflict_index.0)
                    + varint_len(r.read_seq)
            }
            Self::Heartbeat(r) => 1 + varint_len(r.term.0) + varint_len(r.read_seq),
            Self::Vote(r) => 3 + varint_len(r.term.0),
            Self::InstallSnapshot(r) => 2 + varint_len(r.term.0) + varint_len(r.next_offset),
            Self::TimeoutNow(r) => 1 + varint_len(r.term.0),
        }
    }
}

/// Length of `v` as a LEB128 varint.
#[must_use]
pub(crate) fn varint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::varint_len;

    #[test]
    fn varint_lengths_match_leb128() {
        assert_eq!(varint_len(0), 1);
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
        assert_eq!(varint_len(16_383), 2);
        assert_eq!(varint_len(16_384), 3);
        assert_eq!(varint_len(u64::MAX), 10);
    }
}
