//! Elections: timeouts, pre-vote, voting, check-quorum and leadership transfer.

use super::progress::Progress;
use super::quorum::majority;
use super::{RaftCore, Role};
use crate::raft::{EntryPayload, RaftRequest, TimeoutNowRequest, TimeoutNowResponse, VoteRequest, VoteResponse};
use crate::types::NodeId;

impl RaftCore {
    pub(super) fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        if self.election_elapsed >= self.cfg.election_ticks {
            self.election_elapsed = 0;
            if self.cfg.check_quorum && !self.quorum_active() {
                tracing::info!(group = %self.cfg.group, node = %self.cfg.id, term = %self.term, "lost contact with a majority; stepping down");
                self.become_follower(self.term, None);
                return;
            }
            if let Some(to) = self.lead_transferee.take() {
                tracing::info!(group = %self.cfg.group, node = %self.cfg.id, term = %self.term, to = %to, "leadership transfer timed out");
            }
        }
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat(self.reads.current_seq());
        }
    }

    /// Whether a majority was heard from since the last check; resets the marks.
    fn quorum_active(&mut self) -> bool {
        let id = self.cfg.id;
        let mut active = 1;
        for (peer, pr) in &mut self.progress {
            if *peer != id && pr.recent_active {
                active += 1;
            }
            pr.recent_active = false;
        }
        active >= majority(self.cfg.voters.len())
    }

    fn in_lease(&self) -> bool {
        self.cfg.check_quorum && self.leader.is_some() && self.election_elapsed < self.cfg.election_ticks
    }

    /// Start a pre-vote (or, for a transfer or without pre-vote, a real election).
    pub(super) fn start_election(&mut self, transfer: bool) {
        if self.cfg.pre_vote && !transfer {
            self.campaign(true, false);
        } else {
            self.campaign(false, transfer);
        }
    }

    fn campaign(&mut self, pre_vote: bool, transfer: bool) {
        let _span =
            tracing::info_span!("election", group = %self.cfg.group, node = %self.cfg.id, term = %self.term, pre_vote)
                .entered();
        let term = if pre_vote {
            self.role = Role::PreCandidate;
            self.term.next()
        } else {
            self.term = self.term.next();
            self.vote = Some(self.cfg.id);
            self.role = Role::Candidate;
            self.term
        };
        self.leader = None;
        self.progress.clear();
        self.election_elapsed = 0;
        self.reset_randomized_timeout();
        self.ready.soft_state_changed = true;
        self.votes.clear();
        self.votes.insert(self.cfg.id, true);
        if self.votes_won() {
            if pre_vote {
                self.campaign(false, false);
            } else {
                self.become_leader();
            }
            return;
        }
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        for &peer in &self.cfg.voters {
            if peer == self.cfg.id {
                continue;
            }
            let req = VoteRequest { term, candidate: self.cfg.id, last_log_index, last_log_term, pre_vote, transfer };
            self.ready.messages.push((peer, RaftRequest::Vote(req)));
        }
    }

    fn votes_won(&self) -> bool {
        self.votes.values().filter(|&&g| g).count() >= majority(self.cfg.voters.len())
    }

    fn votes_lost(&self) -> bool {
        self.votes.values().filter(|&&g| !g).count() >= majority(self.cfg.voters.len())
    }

    pub(super) fn handle_vote(&mut self, req: VoteRequest) -> VoteResponse {
        let _span = tracing::debug_span!("vote", group = %self.cfg.group, node = %self.cfg.id, term = %self.term, candidate = %req.candidate, pre_vote = req.pre_vote)
            .entered();
        let reject = |term| VoteResponse { term, granted: false, pre_vote: req.pre_vote };
        if req.term > self.term && self.in_lease() && !req.transfer {
            return reject(self.term);
        }
        let log_ok = self.log.is_up_to_date(req.last_log_index, req.last_log_term);
        if req.pre_vote {
            let granted = req.term > self.term && log_ok;
            return VoteResponse { term: if granted { req.term } else { self.term }, granted, pre_vote: true };
        }
        if req.term > self.term {
            self.become_follower(req.term, None);
        }
        if req.term < self.term {
            return reject(self.term);
        }
        let can_vote = self.vote == Some(req.candidate) || (self.vote.is_none() && self.leader.is_none());
        if can_vote && log_ok {
            self.vote = Some(req.candidate);
            self.election_elapsed = 0;
            VoteResponse { term: self.term, granted: true, pre_vote: false }
        } else {
            reject(self.term)
        }
    }

    pub(super) fn handle_vote_response(&mut self, from: NodeId, resp: &VoteResponse) {
        let expected = if resp.pre_vote { Role::PreCandidate } else { Role::Candidate };
        if self.role != expected {
            return;
        }
        let round_term = if resp.pre_vote { self.term.next() } else { self.term };
        if resp.granted && resp.term != round_term {
            return;
        }
        self.votes.entry(from).or_insert(resp.granted);
        if self.votes_won() {
            if resp.pre_vote {
                self.campaign(false, false);
            } else {
                self.become_leader();
            }
        } else if self.votes_lost() {
            self.become_follower(self.term, None);
        }
    }

    pub(super) fn become_leader(&mut self) {
        tracing::info!(group = %self.cfg.group, node = %self.cfg.id, term = %self.term, "became leader");
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id);
        self.heartbeat_elapsed = 0;
        self.election_elapsed = 0;
        self.lead_transferee = None;
        self.ready.soft_state_changed = true;
        let last = self.log.last_index();
        self.progress =
            self.cfg.voters.iter().filter(|&&p| p != self.cfg.id).map(|&p| (p, Progress::new(last))).collect();
        self.append_local(EntryPayload::Blank);
    }

    pub(super) fn handle_timeout_now(&mut self, from: NodeId, req: TimeoutNowRequest) -> TimeoutNowResponse {
        if req.term < self.term {
            return TimeoutNowResponse { term: self.term };
        }
        if req.term > self.term {
            self.become_follower(req.term, Some(from));
        }
        if self.role != Role::Leader {
            tracing::info!(group = %self.cfg.group, node = %self.cfg.id, term = %self.term, "timeout-now from leader {from}: campaigning");
            self.start_election(true);
        }
        TimeoutNowResponse { term: self.term }
    }

    pub(super) fn maybe_send_timeout_now(&mut self, to: NodeId) {
        let caught_up = self.progress.get(&to).is_some_and(|pr| pr.match_index == self.log.last_index());
        if caught_up {
            // Nothing of this member's own durability is vouched for: it may go
            // at once, even while the leader's log writes wait or fail.
            let req = TimeoutNowRequest { term: self.term, leader: self.cfg.id };
            self.ready.append_messages.push((to, RaftRequest::TimeoutNow(req)));
        } else {
            self.maybe_send_append(to, true);
        }
    }
}
