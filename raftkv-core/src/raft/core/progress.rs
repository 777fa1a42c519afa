//! The leader's view of each follower's replication.

use std::collections::VecDeque;

use crate::types::LogIndex;

/// How the leader currently sends to a follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// Where the follower's log matches is unknown: one append at a time.
    Probe,
    /// Logs match up to `match_index`: appends are pipelined up to the window.
    Replicate,
    /// The follower needs a snapshot covering at least this index; appends pause.
    Snapshot(LogIndex),
}

/// Replication state of one follower.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Highest index known replicated on the follower.
    pub match_index: LogIndex,
    /// Next index to send.
    pub next_index: LogIndex,
    /// Sending mode.
    pub state: ProgressState,
    /// Last index of each append in flight (replicate mode).
    inflight: VecDeque<LogIndex>,
    /// An append is in flight in probe mode.
    probe_sent: bool,
    /// Heard from since the last check-quorum round.
    pub recent_active: bool,
    /// Highest read round the follower acknowledged.
    pub read_ack: u64,
    /// An empty append sent because a heartbeat answer showed the follower
    /// behind is still unanswered (one at a time: read rounds make
    /// heartbeats frequent, and each would take a slot of the window).
    pub nudged: bool,
}

impl Progress {
    /// Fresh progress for a new leader whose last index is `last`.
    #[must_use]
    pub fn new(last: LogIndex) -> Self {
        Self {
            match_index: LogIndex(0),
            next_index: last.next(),
            state: ProgressState::Probe,
            inflight: VecDeque::new(),
            probe_sent: false,
            recent_active: true,
            read_ack: 0,
            nudged: false,
        }
    }

    /// Whether another append may be sent now.
    #[must_use]
    pub fn can_send(&self, max_inflight: usize) -> bool {
        match self.state {
            ProgressState::Probe => !self.probe_sent,
            ProgressState::Replicate => self.inflight.len() < max_inflight,
            ProgressState::Snapshot(_) => false,
        }
    }

    /// Record an append ending at `last` that was just sent.
    pub fn sent(&mut self, last: LogIndex) {
        match self.state {
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Replicate => {
                self.inflight.push_back(last);
                self.next_index = last.next();
            }
            ProgressState::Snapshot(_) => {}
        }
    }

    /// The follower acknowledged everything up to `index`. Returns whether match advanced.
    pub fn acked(&mut self, index: LogIndex) -> bool {
        while self.inflight.front().is_some_and(|&i| i <= index) {
            self.inflight.pop_front();
        }
        if index <= self.match_index && self.state != ProgressState::Probe {
            return false;
        }
        let advanced = index > self.match_index;
        self.match_index = self.match_index.max(index);
        self.next_index = self.next_index.max(self.match_index.next());
        match self.state {
            ProgressState::Probe => self.become_replicate(),
            ProgressState::Snapshot(pending) if self.match_index >= pending => self.become_probe(),
            _ => {}
        }
        advanced
    }

    /// Whether a rejection of `rejected_prev` is out of date.
    #[must_use]
    pub fn is_stale_rejection(&self, rejected_prev: LogIndex) -> bool {
        match self.state {
            ProgressState::Replicate => rejected_prev <= self.match_index,
            ProgressState::Probe => rejected_prev.next() != self.next_index,
            ProgressState::Snapshot(_) => true,
        }
    }

    /// Go back to probing from `next` (never below `match + 1`).
    pub fn back_off(&mut self, next: LogIndex) {
        self.next_index = next.max(self.match_index.next());
        self.become_probe();
    }

    /// Switch to probe mode, dropping the in-flight window.
    pub fn become_probe(&mut self) {
        self.state = ProgressState::Probe;
        self.inflight.clear();
        self.probe_sent = false;
    }

    /// Switch to pipelined replication.
    pub fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.inflight.clear();
        self.probe_sent = false;
        self.next_index = self.match_index.next();
    }

    /// Pause appends until a snapshot covering `index` is installed.
    pub fn become_snapshot(&mut self, index: LogIndex) {
        self.state = ProgressState::Snapshot(index);
        self.inflight.clear();
        self.probe_sent = false;
    }

    /// A heartbeat answer arrived: a paused probe may try again.
    pub fn heartbeat_acked(&mut self) {
        self.probe_sent = false;
    }

    /// Appends in flight.
    #[must_use]
    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_sends_one_then_replicate_pipelines_up_to_window() {
        let mut p = Progress::new(LogIndex(10));
        assert!(p.can_send(2));
        p.sent(LogIndex(10));
        assert!(!p.can_send(2), "probe mode allows one append in flight");
        p.acked(LogIndex(10));
        assert_eq!(p.state, ProgressState::Replicate);
        p.sent(LogIndex(12));
        p.sent(LogIndex(14));
        assert!(!p.can_send(2), "window of 2 is full");
        assert_eq!(p.next_index, LogIndex(15));
        p.acked(LogIndex(12));
        assert!(p.can_send(2));
        assert_eq!(p.match_index, LogIndex(12));
    }

    #[test]
    fn stale_rejections_are_recognised() {
        let mut p = Progress::new(LogIndex(10));
        assert!(!p.is_stale_rejection(LogIndex(10)));
        assert!(p.is_stale_rejection(LogIndex(7)));
        p.acked(LogIndex(10));
        assert!(p.is_stale_rejection(LogIndex(9)));
        assert!(!p.is_stale_rejection(LogIndex(11)));
        p.back_off(LogIndex(4));
        assert_eq!(p.next_index, LogIndex(11), "never back off below match + 1");
    }
}
