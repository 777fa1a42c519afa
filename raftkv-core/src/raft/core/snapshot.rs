//! Snapshots: local compaction, sending to lagging followers, and installing
//! one received from the leader.

use super::progress::ProgressState;
use super::{RaftCore, Role};
use crate::raft::{InstallSnapshotRequest, InstallSnapshotResponse, SnapshotMeta};
use crate::types::{NodeId, Term};

/// What the driver must do with a received snapshot chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkVerdict {
    /// Answer at once with this response (stale leader, or snapshot not needed).
    Reply(InstallSnapshotResponse),
    /// Write the chunk into the snapshot being received, then answer; after
    /// the last chunk, finish the write and call [`RaftCore::install_snapshot`].
    Write,
}

/// How streaming a snapshot to a follower ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotSendOutcome {
    /// The follower installed the snapshot identified by this meta.
    Installed(SnapshotMeta),
    /// The stream failed (network, follower refused); try again later.
    Failed,
    /// The follower answered with a higher term.
    HigherTerm(Term),
}

impl RaftCore {
    /// Validate a snapshot chunk from a leader.
    pub fn handle_snapshot_chunk(&mut self, req: &InstallSnapshotRequest) -> ChunkVerdict {
        let term_ok = req.term >= self.term;
        if term_ok {
            if req.term > self.term || self.role != Role::Follower || self.leader != Some(req.leader) {
                self.become_follower(req.term, Some(req.leader));
            }
            self.election_elapsed = 0;
        }
        if !term_ok || req.meta.last_index <= self.log.commit {
            // Stale leader, or we already hold everything the snapshot covers:
            // acknowledge the whole stream so the leader moves on.
            let next_offset = req.offset + req.data.len() as u64;
            return ChunkVerdict::Reply(InstallSnapshotResponse { term: self.term, accepted: term_ok, next_offset });
        }
        ChunkVerdict::Write
    }

    /// A snapshot received from the leader is durable in the snapshot store:
    /// adopt it. Returns whether it replaced state (the driver then restores
    /// the state machine from [`Ready::restore_snapshot`](super::Ready)).
    pub fn install_snapshot(&mut self, meta: SnapshotMeta) -> bool {
        if meta.last_index <= self.log.commit {
            return false;
        }
        let _span = tracing::info_span!("install_snapshot", group = %self.cfg.group, node = %self.cfg.id, term = %self.term, index = %meta.last_index)
            .entered();
        self.log.install(meta);
        self.ready.purge_through = Some(meta.last_index);
        self.ready.restore_snapshot = Some(meta);
        true
    }

    /// The state machine has durably snapshotted everything up to
    /// `meta.last_index`: drop those entries. Returns whether the log changed.
    pub fn compact(&mut self, meta: SnapshotMeta) -> bool {
        if meta.last_index > self.log.applied || self.log.term(meta.last_index) != Some(meta.last_term) {
            return false;
        }
        let _span = tracing::debug_span!("compact", group = %self.cfg.group, node = %self.cfg.id, term = %self.term, index = %meta.last_index)
            .entered();
        if !self.log.compact(meta) {
            return false;
        }
        self.ready.purge_through = Some(meta.last_index);
        true
    }

    /// Streaming a snapshot to `peer` ended.
    pub fn snapshot_sent(&mut self, peer: NodeId, outcome: SnapshotSendOutcome) {
        if let SnapshotSendOutcome::HigherTerm(term) = outcome {
            if term > self.term {
                self.become_follower(term, None);
                return;
            }
            // A send started in an earlier term of ours was refused for its
            // stale term: it failed, and the follower must be retried.
        }
        if self.role != Role::Leader {
            return;
        }
        let Some(pr) = self.progress.get_mut(&peer) else { return };
        if !matches!(pr.state, ProgressState::Snapshot(_)) {
            return;
        }
        match outcome {
            SnapshotSendOutcome::Installed(meta) => {
                pr.recent_active = true;
                pr.match_index = pr.match_index.max(meta.last_index);
                pr.next_index = pr.match_index.next();
                pr.become_probe();
                self.maybe_commit();
                self.maybe_send_append(peer, true);
            }
            SnapshotSendOutcome::Failed | SnapshotSendOutcome::HigherTerm(_) => pr.become_probe(),
        }
    }
}
