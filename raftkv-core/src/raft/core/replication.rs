//! Log replication: sending appends and heartbeats, accepting them, and
//! advancing the commit index.

use super::progress::ProgressState;
use super::quorum::{committed_index, majority};
use super::{RaftCore, Role};
use crate::raft::{AppendEntriesRequest, AppendEntriesResponse, HeartbeatRequest, HeartbeatResponse, RaftRequest};
use crate::types::{LogIndex, NodeId, Term};

impl RaftCore {
    pub(super) fn broadcast_append(&mut self) {
        let _span = tracing::debug_span!("replicate", group = %self.cfg.group, node = %self.cfg.id, term = %self.term, index = %self.log.last_index())
            .entered();
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for peer in peers {
            self.maybe_send_append(peer, false);
        }
        if self.cfg.voters.len() == 1 {
            self.maybe_commit();
        }
    }

    /// Send the next append to `peer` if its window allows. An empty append is
    /// sent only when `allow_empty` (to probe or carry the commit index).
    pub(super) fn maybe_send_append(&mut self, peer: NodeId, allow_empty: bool) {
        let max_inflight = self.cfg.max_inflight;
        let Some(pr) = self.progress.get_mut(&peer) else { return };
        if !pr.can_send(max_inflight) {
            return;
        }
        let prev = pr.next_index.prev();
        let Some(prev_term) = self.log.term(prev) else {
            let index = self.log.snapshot().last_index;
            tracing::debug!(group = %self.cfg.group, node = %self.cfg.id, term = %self.term, to = %peer, index = %index, "follower needs a snapshot");
            pr.become_snapshot(index);
            self.ready.send_snapshots.push(peer);
            return;
        };
        let entries = self.log.slice(pr.next_index, self.cfg.max_entries_per_append, self.cfg.max_bytes_per_append);
        if entries.is_empty() && !allow_empty && pr.state == ProgressState::Replicate {
            return;
        }
        let last = entries.last().map_or(prev, |e| e.index);
        pr.sent(last);
        let req = AppendEntriesRequest {
            term: self.term,
            leader: self.cfg.id,
            prev_log_index: prev,
            prev_log_term: prev_term,
            entries,
            leader_commit: self.log.commit,
            read_seq: self.reads.current_seq(),
        };
        self.ready.append_messages.push((peer, RaftRequest::AppendEntries(req)));
    }

    pub(super) fn broadcast_heartbeat(&mut self, read_seq: u64) {
        self.heartbeat_elapsed = 0;
        for (&peer, pr) in &self.progress {
            let req = HeartbeatRequest {
                term: self.term,
                leader: self.cfg.id,
                commit: self.log.commit.min(pr.match_index),
                read_seq,
            };
            // Vouches only for the term, durable since the election: no need to wait for a write.
            self.ready.append_messages.push((peer, RaftRequest::Heartbeat(req)));
        }
    }

    /// Common handling of a message from a leader of `term`: returns false if stale.
    fn accept_leader(&mut self, term: Term, leader: NodeId) -> bool {
        if term < self.term {
            return false;
        }
        if term > self.term || self.role != Role::Follower || self.leader != Some(leader) {
            self.become_follower(term, Some(leader));
        }
        self.election_elapsed = 0;
        true
    }

    pub(super) fn handle_append(&mut self, mut req: AppendEntriesRequest) -> AppendEntriesResponse {
        let mut resp = AppendEntriesResponse {
            term: self.term,
            success: false,
            match_index: LogIndex(0),
            rejected_prev: req.prev_log_index,
            conflict_term: None,
            conflict_index: LogIndex(0),
            read_seq: req.read_seq,
        };
        if !self.accept_leader(req.term, req.leader) {
            return resp;
        }
        resp.term = self.term;
        // Entries at or below our commit index are committed and therefore match.
        if req.prev_log_index < self.log.commit {
            let skip = usize::try_from(self.log.commit.0 - req.prev_log_index.0).unwrap_or(usize::MAX);
            let Some(commit_term) = self.log.term(self.log.commit) else {
                resp.conflict_index = self.log.commit.next();
                return resp;
            };
            req.entries.drain(..skip.min(req.entries.len()));
            req.prev_log_index = self.log.commit;
            req.prev_log_term = commit_term;
        }
        match self.log.term(req.prev_log_index) {
            None => {
                resp.conflict_index = self.log.last_index().next();
                return resp;
            }
            Some(t) if t != req.prev_log_term => {
                resp.conflict_term = Some(t);
                resp.conflict_index = self.log.first_index_of_term_at(req.prev_log_index, t);
                return resp;
            }
            Some(_) => {}
        }
        let last_new = LogIndex(req.prev_log_index.0 + req.entries.len() as u64);
        for entry in req.entries {
            match self.log.term(entry.index) {
                Some(t) if t == entry.term => continue,
                Some(_) => {
                    self.log.truncate_after(entry.index.prev());
                    self.log.push(entry);
                }
                None => self.log.push(entry),
            }
        }
        let new_commit = req.leader_commit.min(last_new);
        if new_commit > self.log.commit {
            self.log.commit = new_commit;
        }
        resp.success = true;
        resp.match_index = last_new;
        resp
    }

    pub(super) fn handle_heartbeat(&mut self, req: HeartbeatRequest) -> HeartbeatResponse {
        if self.accept_leader(req.term, req.leader) {
            let commit = req.commit.min(self.log.last_index());
            if commit > self.log.commit {
                self.log.commit = commit;
            }
        }
        HeartbeatResponse { term: self.term, read_seq: req.read_seq }
    }

    pub(super) fn handle_append_response(&mut self, from: NodeId, resp: &AppendEntriesResponse) {
        if self.role != Role::Leader {
            return;
        }
        if resp.success && resp.match_index > self.log.last_index() {
            // A follower cannot hold more of this leader's log than the leader:
            // a stale or bogus answer.
            return;
        }
        let max_inflight = self.cfg.max_inflight;
        let Some(pr) = self.progress.get_mut(&from) else { return };
        pr.recent_active = true;
        pr.read_ack = pr.read_ack.max(resp.read_seq);
        pr.nudged = false;
        if resp.success {
            let was_full = !pr.can_send(max_inflight);
            let advanced = pr.acked(resp.match_index);
            if advanced {
                self.maybe_commit();
            }
            if advanced || was_full {
                self.maybe_send_append(from, false);
            }
            if self.lead_transferee == Some(from) {
                self.maybe_send_timeout_now(from);
            }
        } else if !pr.is_stale_rejection(resp.rejected_prev) {
            // Fast backup: skip the follower's whole conflicting term at once.
            let next = match resp.conflict_term.and_then(|t| self.log.last_index_of_term(t)) {
                Some(last_of_term) => last_of_term.next(),
                None => resp.conflict_index,
            };
            let next = next.min(resp.rejected_prev).max(LogIndex(1));
            pr.back_off(next);
            self.maybe_send_append(from, true);
        }
        self.check_reads();
    }

    pub(super) fn handle_heartbeat_response(&mut self, from: NodeId, resp: &HeartbeatResponse) {
        if self.role != Role::Leader {
            return;
        }
        let Some(pr) = self.progress.get_mut(&from) else { return };
        pr.recent_active = true;
        pr.read_ack = pr.read_ack.max(resp.read_seq);
        pr.heartbeat_acked();
        if pr.state == ProgressState::Probe {
            self.maybe_send_append(from, true);
        } else if pr.match_index < self.log.last_index() {
            // What was not sent yet, or else one empty append (finding out
            // whether appends were lost) until the follower answers one.
            let nudge = !pr.nudged;
            pr.nudged = true;
            self.maybe_send_append(from, nudge);
        }
        self.check_reads();
    }

    /// Release reads confirmed by a majority.
    fn check_reads(&mut self) {
        if !self.reads.has_pending() {
            return;
        }
        let mut acks: Vec<u64> = self.progress.values().map(|p| p.read_ack).collect();
        acks.push(u64::MAX);
        acks.sort_unstable_by(|a, b| b.cmp(a));
        let confirmed = acks[majority(self.cfg.voters.len()) - 1];
        self.reads.confirm(confirmed, &mut self.ready.read_states);
    }

    /// Advance the commit index to what a majority stores, if it is of the current term.
    pub(super) fn maybe_commit(&mut self) {
        let mut matched: Vec<LogIndex> = self.progress.values().map(|p| p.match_index).collect();
        matched.push(self.log.persisted);
        let candidate = committed_index(matched);
        if candidate <= self.log.commit || self.log.term(candidate) != Some(self.term) {
            return;
        }
        let _span = tracing::debug_span!("commit", group = %self.cfg.group, node = %self.cfg.id, term = %self.term, index = %candidate)
            .entered();
        let first_in_term = self.log.term(self.log.commit) != Some(self.term);
        self.log.commit = candidate;
        if first_in_term {
            for ctx in self.reads.take_deferred() {
                if self.cfg.voters.len() == 1 {
                    self.ready.read_states.push(super::ReadState { ctx, index: candidate });
                } else {
                    self.reads.push(ctx, candidate);
                }
            }
        }
    }
}
