//! The event loop: the only owner of the core.
//!
//! Each turn it waits for one event, drains whatever else is queued (so many
//! proposals become one append), then executes the core's [`Ready`] in the
//! order the core's contract requires. Log writes go to the log writer
//! ([`log_writer`](super::log_writer)); whatever must wait for one — the
//! persisted index, messages after it, replies to requests handled meanwhile
//! — is held until the writer reports it durable. A heartbeat that changed
//! nothing durable is answered at once, so a follower confirms its leader's
//! reads while it writes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::apply::{ApplyLoop, ApplyMsg};
use super::log_writer::{self, WriteJob};
use super::snapshot_transfer::{send_snapshot, IncomingSnapshot};
use super::{DriverConfig, LoopRequest, RaftError, Reply, StepReport};
use crate::metrics::RaftMetrics;
use crate::raft::core::{ChunkVerdict, RaftCore, Ready, Role};
use crate::raft::{RaftRequest, RaftResponse};
use crate::state_machine::StateMachine;
use crate::storage::{LogStore, SnapshotStore};
use crate::transport::Transport;
use crate::types::{LogIndex, NodeId, Term};

/// The member's two stores.
pub(crate) struct Stores {
    pub(crate) log: Arc<dyn LogStore>,
    pub(crate) snapshots: Arc<dyn SnapshotStore>,
}

type Channel<R> = (mpsc::UnboundedSender<LoopRequest<R>>, mpsc::UnboundedReceiver<LoopRequest<R>>);

type ReplyTo = (oneshot::Sender<RaftResponse>, RaftResponse);

/// What waits for the log writer's submission `seq` to be durable.
struct Pending {
    seq: u64,
    persist_upto: Option<LogIndex>,
    messages: Vec<(NodeId, RaftRequest)>,
    replies: Vec<ReplyTo>,
}

pub(crate) struct EventLoop<SM: StateMachine> {
    core: RaftCore,
    cfg: DriverConfig,
    /// The log store and the writer's queue, until [`EventLoop::run`] starts the writer.
    writer_parts: Option<(Arc<dyn LogStore>, mpsc::UnboundedReceiver<WriteJob>)>,
    writer: mpsc::UnboundedSender<WriteJob>,
    /// Sequence number of the last submission to the writer, and of the last durable one.
    submitted: u64,
    durable: u64,
    /// Oldest first: what waits for each submission not yet durable.
    pending: VecDeque<Pending>,
    snapshot_store: Arc<dyn SnapshotStore>,
    transport: Arc<dyn Transport>,
    tx: mpsc::UnboundedSender<LoopRequest<SM::Response>>,
    rx: mpsc::UnboundedReceiver<LoopRequest<SM::Response>>,
    apply: Option<ApplyLoop<SM>>,
    apply_tx: mpsc::UnboundedSender<ApplyMsg<SM::Response>>,
    apply_rx: Option<mpsc::UnboundedReceiver<ApplyMsg<SM::Response>>>,
    tasks: JoinSet<()>,
    /// Proposals received this turn.
    proposals: Vec<(Bytes, Option<Reply<SM::Response>>)>,
    starts: Vec<Reply<(LogIndex, Term)>>,
    /// Replies to requests handled this turn, sent once the turn's writes are durable.
    replies: Vec<ReplyTo>,
    reads: BTreeMap<u64, Reply<LogIndex>>,
    next_read: u64,
    incoming_snapshot: Option<IncomingSnapshot>,
    /// Peers a snapshot is being streamed to.
    sending_snapshot: Vec<NodeId>,
    applied: LogIndex,
    stopped: Option<oneshot::Sender<()>>,
    /// While log writes fail and the writer retries them: the last error.
    write_failing: Option<String>,
    metrics: Arc<RaftMetrics>,
    /// The leader (and its term) last counted in `metrics.leader_changes`.
    counted_leader: Option<(Term, NodeId)>,
    /// The last term counted in `metrics.elections`.
    counted_election: Term,
}

impl<SM: StateMachine> EventLoop<SM> {
    pub(crate) fn new(
        core: RaftCore,
        cfg: DriverConfig,
        stores: Stores,
        transport: Arc<dyn Transport>,
        (tx, rx): Channel<SM::Response>,
        apply: ApplyLoop<SM>,
        metrics: Arc<RaftMetrics>,
    ) -> Self {
        let (apply_tx, apply_rx) = mpsc::unbounded_channel();
        let applied = core.log().applied;
        let counted_election = core.term();
        let (writer, jobs) = mpsc::unbounded_channel();
        Self {
            core,
            cfg,
            writer_parts: Some((stores.log, jobs)),
            writer,
            submitted: 0,
            durable: 0,
            pending: VecDeque::new(),
            snapshot_store: stores.snapshots,
            transport,
            tx,
            rx,
            apply: Some(apply),
            apply_tx,
            apply_rx: Some(apply_rx),
            tasks: JoinSet::new(),
            proposals: Vec::new(),
            starts: Vec::new(),
            replies: Vec::new(),
            reads: BTreeMap::new(),
            next_read: 0,
            incoming_snapshot: None,
            sending_snapshot: Vec::new(),
            applied,
            stopped: None,
            write_failing: None,
            metrics,
            counted_leader: None,
            counted_election,
        }
    }

    pub(crate) async fn run(mut self) {
        if let (Some(apply), Some(rx)) = (self.apply.take(), self.apply_rx.take()) {
            self.tasks.spawn(apply.run(rx));
        }
        let writer = self
            .writer_parts
            .take()
            .map(|(store, jobs)| tokio::spawn(log_writer::run(store, jobs, self.tx.clone(), self.metrics.clone())));
        let mut ticker = tokio::time::interval(self.cfg.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        let result = loop {
            tokio::select! {
                biased;
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => self.handle_in_span(cmd).await,
                    None => break Ok(()),
                },
                _ = ticker.tick() => self.core.tick(),
            }
            let mut handled = 1;
            while handled < self.cfg.max_events_per_turn && self.stopped.is_none() {
                let Ok(cmd) = self.rx.try_recv() else { break };
                self.handle_in_span(cmd).await;
                handled += 1;
            }
            if let Err(e) = self.turn().await {
                break Err(e);
            }
            if self.stopped.is_some() {
                break Ok(());
            }
            while self.tasks.try_join_next().is_some() {}
        };
        if let Err(e) = result {
            tracing::error!(group = %self.core.config().group, node = %self.core.id(), error = %e, "raft member stopped");
        }
        // The writer finishes what it was handed, then sees its queue closed.
        self.writer = mpsc::unbounded_channel().0;
        if let Some(writer) = writer {
            let _ = writer.await;
        }
        self.tasks.shutdown().await;
        if let Some(done) = self.stopped.take() {
            let _ = done.send(());
        }
    }

    /// Handle `cmd`; a request from a peer inside the span it arrived in.
    async fn handle_in_span(&mut self, cmd: LoopRequest<SM::Response>) {
        match &cmd {
            LoopRequest::Rpc { span, .. } if !span.is_none() => {
                let span = span.clone();
                self.handle(cmd).instrument(span).await;
            }
            _ => self.handle(cmd).await,
        }
    }

    async fn handle(&mut self, cmd: LoopRequest<SM::Response>) {
        match cmd {
            LoopRequest::Propose { command, reply } => self.proposals.push((command, Some(reply))),
            LoopRequest::Start { command, reply } => {
                self.proposals.push((command, None));
                self.starts.push(reply);
            }
            LoopRequest::Read { reply } => {
                self.next_read += 1;
                match self.core.read_index(self.next_read) {
                    Ok(()) => {
                        self.reads.insert(self.next_read, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            LoopRequest::Transfer { to, reply } => {
                let _ = reply.send(self.core.transfer_leader(to).map_err(RaftError::from));
            }
            LoopRequest::Status { reply } => {
                let mut status = self.core.status();
                status.applied = self.applied;
                status.storage_failing.clone_from(&self.write_failing);
                let _ = reply.send(status);
            }
            LoopRequest::Rpc { from, request, reply, .. } => {
                let response = match request {
                    RaftRequest::InstallSnapshot(req) => match self.core.handle_snapshot_chunk(&req) {
                        ChunkVerdict::Reply(resp) => RaftResponse::InstallSnapshot(resp),
                        ChunkVerdict::Write => {
                            let store = self.snapshot_store.clone();
                            let resp =
                                IncomingSnapshot::receive(&mut self.incoming_snapshot, store, &mut self.core, req)
                                    .await;
                            RaftResponse::InstallSnapshot(resp)
                        }
                    },
                    RaftRequest::Heartbeat(req) => {
                        let term = self.core.term();
                        let response = self.core.handle_request(from, RaftRequest::Heartbeat(req));
                        if self.core.term() == term {
                            // It vouches for nothing a write still has to make durable.
                            let _ = reply.send(response);
                            return;
                        }
                        response
                    }
                    other => self.core.handle_request(from, other),
                };
                self.replies.push((reply, response));
            }
            LoopRequest::Persisted { seq, result } => {
                if let Err(e) = result {
                    tracing::error!(group = %self.core.config().group, node = %self.core.id(), error = %e, "log write failed; raft member stopped");
                    let (done, _) = oneshot::channel();
                    self.stopped = Some(done);
                    return;
                }
                if self.write_failing.take().is_some() {
                    tracing::info!(group = %self.core.config().group, node = %self.core.id(), "log writes pass again; proposals are taken");
                }
                self.persisted(seq);
            }
            LoopRequest::WriteFailing { error } => self.write_failing(error.to_string()),
            LoopRequest::Response { from, response } => self.core.handle_response(from, response),
            LoopRequest::Unreachable { peer } => self.core.peer_unreachable(peer),
            LoopRequest::SnapshotSent { peer, outcome } => {
                self.sending_snapshot.retain(|&p| p != peer);
                self.core.snapshot_sent(peer, outcome);
            }
            LoopRequest::Compacted { meta } => {
                self.core.compact(meta);
            }
            LoopRequest::Applied { index } => self.applied = self.applied.max(index),
            LoopRequest::Failed { error } => {
                tracing::error!(group = %self.core.config().group, node = %self.core.id(), error = %error, "apply failed");
                let (done, _) = oneshot::channel();
                self.stopped = Some(done);
            }
            LoopRequest::Shutdown { reply } => self.stopped = Some(reply),
        }
    }

    /// Propose the turn's commands, then execute the core's ready until it is empty.
    async fn turn(&mut self) -> Result<(), RaftError> {
        self.flush_proposals();
        for _ in 0..4 {
            if !self.core.has_ready() {
                break;
            }
            let ready = self.core.ready();
            self.execute(ready);
        }
        match self.pending.back_mut() {
            Some(last) => last.replies.append(&mut self.replies),
            None => {
                for (reply, response) in self.replies.drain(..) {
                    let _ = reply.send(response);
                }
            }
        }
        Ok(())
    }

    /// The writer's writes fail and it retries them: refuse proposals, and
    /// as a leader hand leadership to a follower that has the whole log (the
    /// writer reports again with every retry, so one that catches up later is
    /// found then).
    fn write_failing(&mut self, error: String) {
        if self.write_failing.is_none() {
            tracing::error!(
                group = %self.core.config().group, node = %self.core.id(), error = %error,
                "log writes fail; retrying them, refusing proposals until they pass"
            );
        }
        self.write_failing = Some(error);
        let status = self.core.status();
        if status.role == Role::Leader {
            let caught_up = status.followers.iter().filter(|f| f.match_index >= status.last_index);
            for heir in caught_up.map(|f| f.id) {
                if self.core.transfer_leader(heir).is_ok() {
                    break;
                }
            }
        }
    }

    /// The writer made submissions through `seq` durable: release what waited for them.
    fn persisted(&mut self, seq: u64) {
        self.durable = self.durable.max(seq);
        let id = self.core.id();
        while self.pending.front().is_some_and(|p| p.seq <= self.durable) {
            let Some(done) = self.pending.pop_front() else { break };
            if let Some(index) = done.persist_upto {
                self.core.persisted(index);
            }
            for (to, request) in done.messages {
                self.spawn_rpc(id, to, request);
            }
            for (reply, response) in done.replies {
                let _ = reply.send(response);
            }
        }
    }

    /// Hand `write` (after the purge) to the writer; `persist_upto` and
    /// `messages` wait for it. Without a write they wait for the last one
    /// still in progress, if any.
    fn submit(
        &mut self,
        purge_through: Option<LogIndex>,
        write: crate::storage::LogWrite,
        persist_upto: Option<LogIndex>,
        messages: Vec<(NodeId, RaftRequest)>,
    ) {
        if purge_through.is_none() && write.is_empty() {
            match self.pending.back_mut() {
                Some(last) => last.messages.extend(messages),
                None => {
                    if let Some(index) = persist_upto {
                        self.core.persisted(index);
                    }
                    let id = self.core.id();
                    for (to, request) in messages {
                        self.spawn_rpc(id, to, request);
                    }
                }
            }
            return;
        }
        if let Some(t) = write.truncate_after {
            // Entries after `t` that earlier submissions carry are gone:
            // their completion must not count the replacements as durable.
            for p in &mut self.pending {
                p.persist_upto = p.persist_upto.map(|u| u.min(t));
            }
        }
        self.submitted += 1;
        let seq = self.submitted;
        self.pending.push_back(Pending { seq, persist_upto, messages, replies: Vec::new() });
        // The writer outlives the loop; if it stopped, its report stops the loop.
        let _ = self.writer.send(WriteJob { seq, purge_through, write });
    }

    fn flush_proposals(&mut self) {
        if self.proposals.is_empty() {
            return;
        }
        let proposals = std::mem::take(&mut self.proposals);
        let starts = std::mem::take(&mut self.starts);
        if let (Some(reason), Role::Leader) = (&self.write_failing, self.core.role()) {
            let refused = || RaftError::StorageFailing { reason: reason.clone() };
            for (_, reply) in proposals {
                if let Some(reply) = reply {
                    let _ = reply.send(Err(refused()));
                }
            }
            for reply in starts {
                let _ = reply.send(Err(refused()));
            }
            return;
        }
        let mut commands = Vec::with_capacity(proposals.len());
        let mut replies = Vec::with_capacity(proposals.len());
        for (command, reply) in proposals {
            commands.push(command);
            replies.push(reply);
        }
        match self.core.propose(commands) {
            Ok((first, term)) => {
                let waiters: Vec<_> = replies
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, r)| r.map(|r| (LogIndex(first.0 + i as u64), term, r)))
                    .collect();
                if !waiters.is_empty() {
                    let _ = self.apply_tx.send(ApplyMsg::Waiters(waiters));
                }
                let mut start_index = first;
                for reply in starts {
                    let _ = reply.send(Ok((start_index, term)));
                    start_index = start_index.next();
                }
            }
            Err(e) => {
                for reply in replies.into_iter().flatten() {
                    let _ = reply.send(Err(e.clone().into()));
                }
                for reply in starts {
                    let _ = reply.send(Err(e.clone().into()));
                }
            }
        }
    }

    fn execute(&mut self, ready: Ready) {
        let id = self.core.id();
        for (to, request) in ready.append_messages {
            self.spawn_rpc(id, to, request);
        }
        let Ready { write, purge_through, persist_upto, messages, .. } = ready;
        let truncated_after = write.truncate_after;
        // Only an observer needs the entries after the writer took them.
        let persisted = if self.cfg.observer.is_some() { write.entries.clone() } else { Vec::new() };
        self.submit(purge_through, write, persist_upto, messages);
        for peer in ready.send_snapshots {
            self.spawn_snapshot_send(peer);
        }
        if let Some(meta) = ready.restore_snapshot {
            let _ = self.apply_tx.send(ApplyMsg::Restore(meta));
        }
        self.count_leadership();
        if let Some(observer) = &self.cfg.observer {
            let log = self.core.log();
            observer.on_step(&StepReport {
                group: self.core.config().group,
                node: id,
                term: self.core.term(),
                role: self.core.role(),
                commit: log.commit,
                last: (log.last_index(), log.last_term()),
                persisted: &persisted,
                truncated_after,
                committed: &ready.committed,
                log,
            });
        }
        if !ready.committed.is_empty() {
            let _span = tracing::debug_span!("apply_batch", group = %self.core.config().group, node = %id, term = %self.core.term(), index = %ready.committed.last().map_or(LogIndex(0), |e| e.index))
                .entered();
            let _ = self.apply_tx.send(ApplyMsg::Entries(ready.committed));
        }
        for state in ready.read_states {
            if let Some(reply) = self.reads.remove(&state.ctx) {
                let _ = self.apply_tx.send(ApplyMsg::Read { index: state.index, reply });
            }
        }
        for ctx in ready.failed_reads {
            if let Some(reply) = self.reads.remove(&ctx) {
                let _ = reply.send(Err(RaftError::NotLeader { leader_hint: self.core.leader() }));
            }
        }
    }

    /// Count a leader taking office, or this member starting an election,
    /// once each.
    fn count_leadership(&mut self) {
        let term = self.core.term();
        if let Some(leader) = self.core.leader() {
            if self.counted_leader != Some((term, leader)) {
                self.counted_leader = Some((term, leader));
                self.metrics.leader_changes.inc();
            }
        }
        if self.core.role() == crate::raft::core::Role::Candidate && term > self.counted_election {
            self.counted_election = term;
            self.metrics.elections.inc();
        }
    }

    fn spawn_rpc(&mut self, from: NodeId, to: NodeId, request: RaftRequest) {
        let span = self.send_span(to, &request);
        // `call` fixes the order of requests to `to` now, before the task
        // runs; inside `span`, so the transport sends its trace context.
        let response = span.in_scope(|| self.transport.call(from, to, request));
        let tx = self.tx.clone();
        self.tasks.spawn(
            async move {
                let cmd = match response.await {
                    Ok(response) => LoopRequest::Response { from: to, response },
                    Err(_) => LoopRequest::Unreachable { peer: to },
                };
                let _ = tx.send(cmd);
            }
            .instrument(span),
        );
    }

    /// The sending side's span of one Raft message (heartbeats only at trace level).
    fn send_span(&self, to: NodeId, request: &RaftRequest) -> tracing::Span {
        let (group, node, term) = (self.core.config().group, self.core.id(), self.core.term());
        match request {
            RaftRequest::AppendEntries(r) => tracing::debug_span!(
                "send_append", group = %group, node = %node, term = %term, to = %to,
                prev_index = %r.prev_log_index, entries = r.entries.len(), commit = %r.leader_commit
            ),
            RaftRequest::Vote(r) => tracing::debug_span!(
                "send_vote", group = %group, node = %node, term = %term, to = %to, pre_vote = r.pre_vote
            ),
            RaftRequest::Heartbeat(_) => {
                tracing::trace_span!("send_heartbeat", group = %group, node = %node, term = %term, to = %to)
            }
            RaftRequest::InstallSnapshot(_) | RaftRequest::TimeoutNow(_) => {
                tracing::debug_span!("send_rpc", group = %group, node = %node, term = %term, to = %to)
            }
        }
    }

    fn spawn_snapshot_send(&mut self, peer: NodeId) {
        if self.sending_snapshot.contains(&peer) {
            return;
        }
        self.sending_snapshot.push(peer);
        let transport = self.transport.clone();
        let store = self.snapshot_store.clone();
        let tx = self.tx.clone();
        let (id, term, chunk) = (self.core.id(), self.core.term(), self.cfg.snapshot_chunk_bytes);
        let group = self.core.config().group;
        self.tasks.spawn(async move {
            let span = tracing::info_span!("send_snapshot", group = %group, node = %id, term = %term, to = %peer);
            let outcome = send_snapshot(group, store, transport, id, peer, term, chunk).instrument(span).await;
            let _ = tx.send(LoopRequest::SnapshotSent { peer, outcome });
        });
    }
}
