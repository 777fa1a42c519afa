//! ReadIndex bookkeeping: reads waiting for a heartbeat round to confirm
//! that this member is still the leader.
//!
//! Reads that arrive before the next round is sent share it, so a burst of
//! concurrent reads costs one round of heartbeats, not one per read.

use std::collections::VecDeque;

use crate::types::LogIndex;

/// A read that may be served once the state machine has applied `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The caller's token.
    pub ctx: u64,
    /// Commit index at the time of the request.
    pub index: LogIndex,
}

#[derive(Debug)]
struct PendingRead {
    ctx: u64,
    index: LogIndex,
    seq: u64,
}

/// Reads waiting for leadership confirmation.
#[derive(Debug, Default)]
pub struct ReadQueue {
    /// Round number of the last round sent.
    sent_seq: u64,
    /// A round is needed for reads queued since the last one was sent.
    round_wanted: bool,
    pending: VecDeque<PendingRead>,
    /// Reads that wait for the leader's first commit in its term.
    waiting_commit: Vec<u64>,
}

impl ReadQueue {
    /// Queue a read of commit `index`; it rides on the next round.
    pub fn push(&mut self, ctx: u64, index: LogIndex) {
        self.pending.push_back(PendingRead { ctx, index, seq: self.sent_seq + 1 });
        self.round_wanted = true;
    }

    /// Hold a read until the leader has committed an entry of its term.
    pub fn defer(&mut self, ctx: u64) {
        self.waiting_commit.push(ctx);
    }

    /// Reads deferred until the first commit, now to be queued.
    pub fn take_deferred(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.waiting_commit)
    }

    /// If reads wait for a round, start it and return its number.
    pub fn start_round(&mut self) -> Option<u64> {
        if !self.round_wanted {
            return None;
        }
        self.round_wanted = false;
        self.sent_seq += 1;
        Some(self.sent_seq)
    }

    /// Whether reads wait for a round that has not been started.
    #[must_use]
    pub fn round_wanted(&self) -> bool {
        self.round_wanted
    }

    /// The round number heartbeats and appends carry now.
    #[must_use]
    pub fn current_seq(&self) -> u64 {
        self.sent_seq
    }

    /// A majority confirmed every round up to `seq`: release those reads.
    pub fn confirm(&mut self, seq: u64, out: &mut Vec<ReadState>) {
        while self.pending.front().is_some_and(|r| r.seq <= seq) {
            if let Some(r) = self.pending.pop_front() {
                out.push(ReadState { ctx: r.ctx, index: r.index });
            }
        }
    }

    /// Leadership was lost: every waiting read fails. Returns their tokens.
    pub fn drain(&mut self) -> Vec<u64> {
        self.round_wanted = false;
        let mut out: Vec<u64> = self.pending.drain(..).map(|r| r.ctx).collect();
        out.append(&mut self.waiting_commit);
        out
    }

    /// Whether reads wait for confirmation.
    #[must_use]
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_before_a_round_share_it() {
        let mut q = ReadQueue::default();
        q.push(1, LogIndex(5));
        q.push(2, LogIndex(6));
        assert_eq!(q.start_round(), Some(1));
        assert_eq!(q.start_round(), None, "no new reads, no new round");
        q.push(3, LogIndex(7));
        assert_eq!(q.start_round(), Some(2));
        let mut out = Vec::new();
        q.confirm(1, &mut out);
        assert_eq!(out.iter().map(|r| r.ctx).collect::<Vec<_>>(), vec![1, 2]);
        q.confirm(2, &mut out);
        assert_eq!(out.len(), 3);
        assert!(!q.has_pending());
    }
}
