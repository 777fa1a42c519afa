//! The sans-IO Raft core: the one module for those who write their own
//! driver. A program replicating a state machine needs none of it (the
//! crate root's [`Raft`](crate::Raft) runs it); its types (`RaftLog`,
//! `Progress`, `ChunkVerdict`, …) are the engine's working parts and change
//! with it.
//!
//! [`RaftCore`] never touches a disk, a socket or a clock. The driver feeds it
//! ticks ([`RaftCore::tick`]), requests ([`RaftCore::handle_request`]),
//! responses ([`RaftCore::handle_response`]) and completions, then takes a
//! [`Ready`] bundle of work: what to persist, what to send, what to apply.
//!
//! Rules the driver must follow for each [`Ready`]:
//! 1. `append_messages` may be sent at once (a leader persists in parallel;
//!    a hand-off to a caught-up follower vouches for nothing of its own);
//! 2. `purge_through` and then `write` must be durable before `messages` are
//!    sent, before replies to requests handled since the previous `Ready` are
//!    sent, and before [`RaftCore::persisted`] is called with `persist_upto`
//!    (purging first is safe: a purge only follows a durable snapshot);
//! 3. `restore_snapshot` must be restored before `committed` entries are applied.

mod config;
mod election;
mod error;
mod log;
mod progress;
mod quorum;
mod read_index;
mod replication;
mod snapshot;
mod status;

use std::collections::BTreeMap;

use crate::raft::{Entry, EntryPayload, HardState, RaftRequest, RaftResponse, SnapshotMeta};
use crate::rng::DetRng;
use crate::storage::LogWrite;
use crate::types::{LogIndex, NodeId, Term};

pub use config::RaftConfig;
pub use error::{ConfigError, NotReady};
pub use log::RaftLog;
pub use progress::{Progress, ProgressState};
pub use read_index::ReadState;
pub use snapshot::{ChunkVerdict, SnapshotSendOutcome};
pub use status::{FollowerStatus, Role, Status};

use read_index::ReadQueue;

/// Above this term a member takes a higher one from another only a step of
/// at most [`MAX_TERM_STEP`] at a time. Elections a second apart would take a
/// hundred billion years to get here, so a message that jumps past it is
/// forged or damaged: refused, no one message can push a group to the end of
/// the term space (2^63 - 1 on the wire), where no election could follow;
/// and a group that was pushed here still elects leaders above it.
pub const MAX_ADOPTED_TERM: Term = Term(1 << 62);

/// The largest step up, above [`MAX_ADOPTED_TERM`], a member takes at once.
pub const MAX_TERM_STEP: u64 = 1 << 20;

/// Whether a member at `current` must refuse a message of `term`.
fn term_out_of_reach(current: Term, term: Term) -> bool {
    term > MAX_ADOPTED_TERM && term.0.saturating_sub(current.0) > MAX_TERM_STEP
}

/// Everything the driver must do after feeding the core.
#[derive(Debug, Default)]
pub struct Ready {
    /// Appends, heartbeats and leadership hand-offs (`TimeoutNow`) of a
    /// leader: they may be sent before `write` is durable (the leader's own
    /// copy counts only once it is).
    pub append_messages: Vec<(NodeId, RaftRequest)>,
    /// Entries up to this index must be dropped from the store first (a durable snapshot covers them).
    pub purge_through: Option<LogIndex>,
    /// Log and hard-state changes to make durable (one atomic write), after the purge.
    pub write: LogWrite,
    /// Index to report through [`RaftCore::persisted`] once `write` is durable.
    pub persist_upto: Option<LogIndex>,
    /// Requests to send once `write` is durable.
    pub messages: Vec<(NodeId, RaftRequest)>,
    /// Followers that need the latest snapshot streamed to them.
    pub send_snapshots: Vec<NodeId>,
    /// A received snapshot the state machine must restore (before `committed`).
    pub restore_snapshot: Option<SnapshotMeta>,
    /// Committed entries to apply, in order.
    pub committed: Vec<Entry>,
    /// Reads confirmed by a majority.
    pub read_states: Vec<ReadState>,
    /// Reads that can no longer be served here (leadership lost).
    pub failed_reads: Vec<u64>,
    /// Set when the role, term or leader changed.
    pub soft_state_changed: bool,
}

impl Ready {
    /// Whether there is nothing to do.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.append_messages.is_empty()
            && self.write.is_empty()
            && self.purge_through.is_none()
            && self.messages.is_empty()
            && self.send_snapshots.is_empty()
            && self.restore_snapshot.is_none()
            && self.committed.is_empty()
            && self.read_states.is_empty()
            && self.failed_reads.is_empty()
            && !self.soft_state_changed
    }
}

/// What a member recovers from its stores at start.
#[derive(Clone, Debug, Default)]
pub struct RecoveredState {
    /// The durable hard state.
    pub hard_state: HardState,
    /// The latest durable snapshot's identity (default when there is none).
    pub snapshot: SnapshotMeta,
    /// Durable entries after the snapshot.
    pub entries: Vec<Entry>,
}

/// The Raft state machine of one member, free of I/O.
#[derive(Debug)]
pub struct RaftCore {
    cfg: RaftConfig,
    rng: DetRng,
    role: Role,
    term: Term,
    vote: Option<NodeId>,
    leader: Option<NodeId>,
    log: RaftLog,
    /// Votes received in the current (pre-)election.
    votes: BTreeMap<NodeId, bool>,
    /// Leader only: replication state per follower.
    progress: BTreeMap<NodeId, Progress>,
    election_elapsed: u32,
    heartbeat_elapsed: u32,
    randomized_timeout: u32,
    lead_transferee: Option<NodeId>,
    reads: ReadQueue,
    /// Hard state last handed to the driver.
    saved_hard_state: HardState,
    ready: Ready,
    /// Proposals were appended and must be broadcast.
    pending_broadcast: bool,
    /// Requests refused because they did not come from another member.
    foreign_requests: u64,
}

impl RaftCore {
    /// A member restarting from `recovered` (empty for a new member).
    pub fn new(cfg: RaftConfig, recovered: RecoveredState) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let RecoveredState { hard_state, snapshot, entries } = recovered;
        let log = RaftLog::restore(snapshot, entries, hard_state.commit);
        let mut core = Self {
            rng: DetRng::new(cfg.seed),
            cfg,
            role: Role::Follower,
            term: hard_state.term,
            vote: hard_state.vote,
            leader: None,
            log,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_timeout: 0,
            lead_transferee: None,
            reads: ReadQueue::default(),
            saved_hard_state: hard_state,
            ready: Ready::default(),
            pending_broadcast: false,
            foreign_requests: 0,
        };
        core.saved_hard_state.commit = core.log.commit;
        core.reset_randomized_timeout();
        Ok(core)
    }

    /// This member's id.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    /// Current term.
    #[must_use]
    pub fn term(&self) -> Term {
        self.term
    }

    /// Current role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    /// The leader this member knows of.
    #[must_use]
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// Read access to the in-memory log.
    #[must_use]
    pub fn log(&self) -> &RaftLog {
        &self.log
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &RaftConfig {
        &self.cfg
    }

    /// Advance the logical clock by one tick.
    pub fn tick(&mut self) {
        self.election_elapsed = self.election_elapsed.saturating_add(1);
        if self.role == Role::Leader {
            self.tick_leader();
        } else if self.election_elapsed >= self.randomized_timeout {
            self.election_elapsed = 0;
            self.start_election(false);
        }
    }

    /// Append commands to the log (leader only). Returns the index of the first;
    /// the rest follow consecutively, all in the returned term.
    pub fn propose(&mut self, commands: impl IntoIterator<Item = bytes::Bytes>) -> Result<(LogIndex, Term), NotReady> {
        self.check_can_propose()?;
        let first = self.log.last_index().next();
        for command in commands {
            self.append_local(EntryPayload::Command(command));
        }
        Ok((first, self.term))
    }

    /// Whether a proposal would be accepted now.
    pub fn check_can_propose(&self) -> Result<(), NotReady> {
        if self.role != Role::Leader {
            return Err(NotReady::NotLeader { leader_hint: self.leader });
        }
        if let Some(to) = self.lead_transferee {
            return Err(NotReady::TransferInProgress(to));
        }
        Ok(())
    }

    /// Handle a request from `from`, returning the response. The driver must
    /// make the next [`Ready`]'s `write` durable before sending the response.
    ///
    /// A request from a node that is not another voter of the group, or one
    /// that names a leader or candidate other than its sender, changes
    /// nothing: it is answered with this member's term and a refusal, and
    /// logged. Only members may move a group's term.
    pub fn handle_request(&mut self, from: NodeId, request: RaftRequest) -> RaftResponse {
        if let Some(why) = self.foreign(from, &request) {
            self.foreign_requests += 1;
            // Logged the first time and then at every power of two, so a flood
            // of them cannot flood the log.
            if self.foreign_requests.is_power_of_two() {
                tracing::warn!(group = %self.cfg.group, node = %self.cfg.id, term = %self.term, from = %from,
                    rpc = request.name(), refused_so_far = self.foreign_requests, "refused a raft request: {why}");
            }
            return self.refusal(&request);
        }
        match request {
            RaftRequest::AppendEntries(req) => RaftResponse::AppendEntries(self.handle_append(req)),
            RaftRequest::Heartbeat(req) => RaftResponse::Heartbeat(self.handle_heartbeat(req)),
            RaftRequest::Vote(req) => RaftResponse::Vote(self.handle_vote(req)),
            RaftRequest::TimeoutNow(req) => RaftResponse::TimeoutNow(self.handle_timeout_now(from, req)),
            RaftRequest::InstallSnapshot(req) => match self.handle_snapshot_chunk(&req) {
                ChunkVerdict::Reply(resp) => RaftResponse::InstallSnapshot(resp),
                ChunkVerdict::Write => RaftResponse::InstallSnapshot(crate::raft::InstallSnapshotResponse {
                    term: self.term,
                    accepted: false,
                    next_offset: 0,
                }),
            },
        }
    }

    /// Why a request from `from` must not be handled, if it must not.
    fn foreign(&self, from: NodeId, request: &RaftRequest) -> Option<String> {
        if from == self.cfg.id {
            return Some(format!("it claims to come from this member ({from}): is another node running as it?"));
        }
        if !self.cfg.voters.contains(&from) {
            return Some(format!("node {from} is not a member of this group"));
        }
        let term = match request {
            RaftRequest::AppendEntries(r) => r.term,
            RaftRequest::Heartbeat(r) => r.term,
            RaftRequest::Vote(r) => r.term,
            RaftRequest::InstallSnapshot(r) => r.term,
            RaftRequest::TimeoutNow(r) => r.term,
        };
        if term_out_of_reach(self.term, term) {
            return Some(format!("its term {term} is beyond any a group reaches (forged or damaged)"));
        }
        let claimed = match request {
            RaftRequest::AppendEntries(r) => r.leader,
            RaftRequest::Heartbeat(r) => r.leader,
            RaftRequest::Vote(r) => r.candidate,
            RaftRequest::InstallSnapshot(r) => r.leader,
            RaftRequest::TimeoutNow(r) => r.leader,
        };
        (claimed != from).then(|| format!("sent by node {from} but names node {claimed} as its sender"))
    }

    /// The answer to a request that was not handled: this member's term, nothing granted or taken.
    fn refusal(&self, request: &RaftRequest) -> RaftResponse {
        let term = self.term;
        match request {
            RaftRequest::AppendEntries(r) => RaftResponse::AppendEntries(crate::raft::AppendEntriesResponse {
                term,
                success: false,
                match_index: LogIndex(0),
                rejected_prev: r.prev_log_index,
                conflict_term: None,
                conflict_index: LogIndex(0),
                // Confirms no read round.
                read_seq: 0,
            }),
            RaftRequest::Heartbeat(_) => RaftResponse::Heartbeat(crate::raft::HeartbeatResponse { term, read_seq: 0 }),
            RaftRequest::Vote(r) => {
                RaftResponse::Vote(crate::raft::VoteResponse { term, granted: false, pre_vote: r.pre_vote })
            }
            RaftRequest::InstallSnapshot(_) => RaftResponse::InstallSnapshot(crate::raft::InstallSnapshotResponse {
                term,
                accepted: false,
                next_offset: 0,
            }),
            RaftRequest::TimeoutNow(_) => RaftResponse::TimeoutNow(crate::raft::TimeoutNowResponse { term }),
        }
    }

    /// Handle the response `from` sent to a request of ours.
    pub fn handle_response(&mut self, from: NodeId, response: RaftResponse) {
        let term = match &response {
            RaftResponse::AppendEntries(r) => r.term,
            RaftResponse::Heartbeat(r) => r.term,
            RaftResponse::Vote(r) => r.term,
            RaftResponse::InstallSnapshot(r) => r.term,
            RaftResponse::TimeoutNow(r) => r.term,
        };
        if term_out_of_reach(self.term, term) {
            self.foreign_requests += 1;
            if self.foreign_requests.is_power_of_two() {
                tracing::warn!(group = %self.cfg.group, node = %self.cfg.id, from = %from, %term,
                    "ignored a raft response whose term is beyond any a group reaches (forged or damaged)");
            }
            return;
        }
        let granted_pre_vote = matches!(&response, RaftResponse::Vote(v) if v.pre_vote && v.granted);
        if term > self.term && !granted_pre_vote {
            self.become_follower(term, None);
            return;
        }
        match response {
            RaftResponse::AppendEntries(r) if r.term == self.term => self.handle_append_response(from, &r),
            RaftResponse::Heartbeat(r) if r.term == self.term => self.handle_heartbeat_response(from, &r),
            RaftResponse::Vote(r) => self.handle_vote_response(from, &r),
            _ => {}
        }
    }

    /// A request to `peer` failed in transport: stop pipelining to it.
    pub fn peer_unreachable(&mut self, peer: NodeId) {
        if let Some(pr) = self.progress.get_mut(&peer) {
            if pr.state == ProgressState::Replicate {
                pr.become_probe();
            }
        }
    }

    /// The driver made the log durable up to `index` (from [`Ready::persist_upto`]).
    pub fn persisted(&mut self, index: LogIndex) {
        self.log.persisted_to(index);
        if self.role == Role::Leader {
            self.maybe_commit();
        }
    }

    /// Confirm leadership for a linearizable read identified by `ctx`. The
    /// result comes back in [`Ready::read_states`] (or `failed_reads`).
    pub fn read_index(&mut self, ctx: u64) -> Result<(), NotReady> {
        if self.role != Role::Leader {
            return Err(NotReady::NotLeader { leader_hint: self.leader });
        }
        if self.log.term(self.log.commit) != Some(self.term) {
            self.reads.defer(ctx);
            return Ok(());
        }
        if self.cfg.voters.len() == 1 {
            self.ready.read_states.push(ReadState { ctx, index: self.log.commit });
        } else {
            self.reads.push(ctx, self.log.commit);
        }
        Ok(())
    }

    /// Hand leadership to `to` once it has caught up.
    pub fn transfer_leader(&mut self, to: NodeId) -> Result<(), NotReady> {
        if self.role != Role::Leader {
            return Err(NotReady::NotLeader { leader_hint: self.leader });
        }
        if !self.cfg.voters.contains(&to) {
            return Err(NotReady::UnknownNode(to));
        }
        if to == self.cfg.id {
            return Ok(());
        }
        if let Some(current) = self.lead_transferee {
            if current == to {
                return Ok(());
            }
        }
        tracing::info!(group = %self.cfg.group, node = %self.cfg.id, term = %self.term, to = %to, "leadership transfer started");
        self.lead_transferee = Some(to);
        self.election_elapsed = 0;
        self.maybe_send_timeout_now(to);
        Ok(())
    }

    /// Take the work accumulated since the last call.
    pub fn ready(&mut self) -> Ready {
        if self.role == Role::Leader {
            if self.pending_broadcast {
                self.pending_broadcast = false;
                self.broadcast_append();
            }
            if let Some(seq) = self.reads.start_round() {
                self.broadcast_heartbeat(seq);
            }
        }
        let (truncate, entries) = self.log.take_unstable();
        let mut ready = std::mem::take(&mut self.ready);
        if !entries.is_empty() || truncate.is_some() {
            ready.persist_upto = Some(self.log.last_index());
        }
        ready.write.truncate_after = truncate;
        ready.write.entries = entries;
        let hs = HardState { term: self.term, vote: self.vote, commit: self.log.commit };
        let hs_changed = hs.term != self.saved_hard_state.term || hs.vote != self.saved_hard_state.vote;
        if hs_changed || (!ready.write.entries.is_empty() && hs.commit != self.saved_hard_state.commit) {
            ready.write.hard_state = Some(hs);
            self.saved_hard_state = hs;
        }
        ready.committed = self.log.take_committed(usize::MAX);
        ready
    }

    /// Whether [`RaftCore::ready`] has anything.
    #[must_use]
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
            || self.pending_broadcast
            || (self.role == Role::Leader && self.reads.round_wanted())
            || self.log.commit.min(self.log.persisted) > self.log.applied
            || self.log.has_unstable()
    }

    fn reset_randomized_timeout(&mut self) {
        let min = u64::from(self.cfg.election_ticks);
        let t = self.rng.range_inclusive(min, 2 * min - 1);
        self.randomized_timeout = u32::try_from(t).unwrap_or(u32::MAX);
    }

    fn append_local(&mut self, payload: EntryPayload) {
        let index = self.log.last_index().next();
        self.log.push(Entry { term: self.term, index, payload });
        self.pending_broadcast = true;
    }

    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        let changed = term != self.term || self.role != Role::Follower || leader != self.leader;
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        if self.role == Role::Leader {
            let failed = self.reads.drain();
            self.ready.failed_reads.extend(failed);
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.progress.clear();
        self.lead_transferee = None;
        self.pending_broadcast = false;
        self.election_elapsed = 0;
        self.reset_randomized_timeout();
        if changed {
            self.ready.soft_state_changed = true;
        }
    }
}

#[cfg(test)]
mod tests;
