//! The apply loop: the only owner of the state machine.
//!
//! It applies committed entries in order, answers proposers and readers,
//! restores received snapshots and takes local ones: the state machine
//! captures an image here, and a task beside the loop writes it, so applying
//! does not wait for a large snapshot to reach the disk. One snapshot is
//! written at a time.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::{DriverConfig, LoopRequest, RaftError, Reply};
use crate::metrics::RaftMetrics;
use crate::raft::{Entry, EntryPayload, SnapshotMeta};
use crate::state_machine::{Committed, SnapshotImage, StateMachine, StateMachineError};
use crate::storage::{SnapshotStore, StorageError};
use crate::types::{GroupId, LogIndex, NodeId, Term};

pub(crate) enum ApplyMsg<R> {
    /// Proposers waiting for the entries at these indices (in this term).
    Waiters(Vec<(LogIndex, Term, Reply<R>)>),
    /// Committed entries, in order.
    Entries(Vec<Entry>),
    /// Replace the state with the latest snapshot (at least this one).
    Restore(SnapshotMeta),
    /// Answer once `index` is applied.
    Read { index: LogIndex, reply: Reply<LogIndex> },
}

pub(crate) struct ApplyLoop<SM: StateMachine> {
    group: GroupId,
    node: NodeId,
    sm: SM,
    store: Arc<dyn SnapshotStore>,
    tx: mpsc::UnboundedSender<LoopRequest<SM::Response>>,
    applied: SnapshotMeta,
    last_snapshot: LogIndex,
    snapshot_every: u64,
    snapshot_bytes: u64,
    /// Bytes of the entries applied since the last snapshot.
    bytes_since_snapshot: u64,
    waiters: BTreeMap<LogIndex, (Term, Reply<SM::Response>)>,
    reads: BTreeMap<LogIndex, Vec<Reply<LogIndex>>>,
    metrics: Arc<RaftMetrics>,
    /// The snapshot being written, if any (dropped with the loop).
    writing: JoinSet<Result<Option<SnapshotMeta>, StateMachineError>>,
}

impl<SM: StateMachine> ApplyLoop<SM> {
    pub(crate) fn new(
        (group, node): (GroupId, NodeId),
        sm: SM,
        store: Arc<dyn SnapshotStore>,
        tx: mpsc::UnboundedSender<LoopRequest<SM::Response>>,
        cfg: &DriverConfig,
        snapshot: SnapshotMeta,
    ) -> Self {
        Self {
            group,
            node,
            sm,
            store,
            tx,
            applied: snapshot,
            last_snapshot: snapshot.last_index,
            snapshot_every: cfg.snapshot_every_entries,
            snapshot_bytes: cfg.snapshot_log_bytes,
            bytes_since_snapshot: 0,
            waiters: BTreeMap::new(),
            reads: BTreeMap::new(),
            metrics: Arc::default(),
            writing: JoinSet::new(),
        }
    }

    /// Count snapshots in `metrics`.
    pub(crate) fn with_metrics(mut self, metrics: Arc<RaftMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    pub(crate) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<ApplyMsg<SM::Response>>) {
        loop {
            let msg = tokio::select! {
                biased;
                Some(written) = self.writing.join_next() => {
                    match self.snapshot_written(written) {
                        Ok(()) => {}
                        // A full disk, say: the log stays whole, and the next
                        // snapshot is taken when it is due.
                        Err(StateMachineError::Storage(error @ StorageError::Io { .. })) => {
                            tracing::warn!(group = %self.group, node = %self.node, error = %error,
                                "writing a snapshot failed; the log is kept and the next snapshot tries again");
                        }
                        Err(error) => {
                            let _ = self.tx.send(LoopRequest::Failed { error: error.into() });
                            return;
                        }
                    }
                    continue;
                }
                msg = rx.recv() => match msg {
                    Some(msg) => msg,
                    None => return,
                },
            };
            let result = match msg {
                ApplyMsg::Waiters(waiters) => {
                    for (index, term, reply) in waiters {
                        if index <= self.applied.last_index {
                            let _ = reply.send(Err(RaftError::Unknown));
                        } else if let Some((_, old)) = self.waiters.insert(index, (term, reply)) {
                            let _ = old.send(Err(RaftError::Dropped));
                        }
                    }
                    Ok(())
                }
                ApplyMsg::Entries(entries) => self.apply(entries).await,
                ApplyMsg::Restore(meta) => self.restore(meta).await,
                ApplyMsg::Read { index, reply } => {
                    if index <= self.applied.last_index {
                        let _ = reply.send(Ok(index));
                    } else {
                        self.reads.entry(index).or_default().push(reply);
                    }
                    Ok(())
                }
            };
            if let Err(error) = result {
                let _ = self.tx.send(LoopRequest::Failed { error: error.into() });
                return;
            }
        }
    }

    async fn apply(&mut self, entries: Vec<Entry>) -> Result<(), StateMachineError> {
        let Some(last) = entries.last().map(|e| SnapshotMeta { last_index: e.index, last_term: e.term }) else {
            return Ok(());
        };
        let mut batch = Vec::with_capacity(entries.len());
        for entry in entries {
            if entry.index <= self.applied.last_index {
                continue;
            }
            self.bytes_since_snapshot += entry.encoded_len() as u64;
            match entry.payload {
                EntryPayload::Command(command) => {
                    batch.push(Committed { index: entry.index, term: entry.term, command });
                }
                EntryPayload::Blank => {
                    if let Some((_, reply)) = self.waiters.remove(&entry.index) {
                        let _ = reply.send(Err(RaftError::Dropped));
                    }
                }
            }
        }
        if last.last_index <= self.applied.last_index {
            return Ok(());
        }
        let keys: Vec<(LogIndex, Term)> = batch.iter().map(|c| (c.index, c.term)).collect();
        let responses = if batch.is_empty() { Vec::new() } else { self.sm.apply(batch).await? };
        if responses.len() != keys.len() {
            return Err(StateMachineError::Failed(format!(
                "apply returned {} responses for {} commands",
                responses.len(),
                keys.len()
            )));
        }
        for ((index, term), response) in keys.into_iter().zip(responses) {
            if let Some((want, reply)) = self.waiters.remove(&index) {
                let _ = reply.send(if want == term { Ok(response) } else { Err(RaftError::Dropped) });
            }
        }
        self.applied = last;
        self.after_apply().await
    }

    async fn restore(&mut self, meta: SnapshotMeta) -> Result<(), StateMachineError> {
        if meta.last_index <= self.applied.last_index {
            return Ok(());
        }
        let Some((latest, mut reader)) = self.store.open_latest().await? else {
            return Err(StateMachineError::MalformedSnapshot(format!(
                "snapshot at index {} was installed but the store has none",
                meta.last_index
            )));
        };
        let span = tracing::info_span!("restore_snapshot", group = %self.group, node = %self.node, index = %latest.last_index, term = %latest.last_term);
        self.sm.restore(reader.as_mut()).instrument(span).await?;
        self.metrics.snapshots_installed.inc();
        self.applied = latest;
        self.last_snapshot = latest.last_index;
        self.bytes_since_snapshot = 0;
        self.after_apply().await
    }

    async fn after_apply(&mut self) -> Result<(), StateMachineError> {
        let applied = self.applied.last_index;
        let rest = self.waiters.split_off(&applied.next());
        for (_, (_, reply)) in std::mem::replace(&mut self.waiters, rest) {
            let _ = reply.send(Err(RaftError::Unknown));
        }
        let rest = self.reads.split_off(&applied.next());
        for reply in std::mem::replace(&mut self.reads, rest).into_values().flatten() {
            let _ = reply.send(Ok(applied));
        }
        let _ = self.tx.send(LoopRequest::Applied { index: applied });
        let by_count = self.snapshot_every > 0 && applied.0 - self.last_snapshot.0 >= self.snapshot_every;
        let by_size = self.snapshot_bytes > 0 && self.bytes_since_snapshot >= self.snapshot_bytes;
        if (by_count || by_size) && self.writing.is_empty() {
            self.take_snapshot().await?;
        }
        Ok(())
    }

    /// Capture an image of the state and start writing it.
    async fn take_snapshot(&mut self) -> Result<(), StateMachineError> {
        let meta = self.applied;
        let span = tracing::debug_span!("snapshot", group = %self.group, node = %self.node, index = %meta.last_index, term = %meta.last_term);
        let image = self.sm.snapshot().instrument(span.clone()).await?;
        self.last_snapshot = meta.last_index;
        self.bytes_since_snapshot = 0;
        let store = self.store.clone();
        self.writing.spawn(write_snapshot(store, meta, image).instrument(span));
        Ok(())
    }

    /// A snapshot finished writing: the log before it may go.
    fn snapshot_written(
        &mut self,
        written: Result<Result<Option<SnapshotMeta>, StateMachineError>, tokio::task::JoinError>,
    ) -> Result<(), StateMachineError> {
        let written = written.map_err(|e| StateMachineError::Failed(format!("snapshot writer stopped: {e}")))??;
        // None: a newer snapshot (a received one) became current meanwhile.
        if let Some(meta) = written {
            self.metrics.snapshots_taken.inc();
            let _ = self.tx.send(LoopRequest::Compacted { meta });
        }
        Ok(())
    }
}

/// Write `image` as the snapshot `meta`; `None` if a newer one was current by then.
async fn write_snapshot(
    store: Arc<dyn SnapshotStore>,
    meta: SnapshotMeta,
    image: Box<dyn SnapshotImage>,
) -> Result<Option<SnapshotMeta>, StateMachineError> {
    let mut writer = store.begin(meta).await?;
    if let Err(e) = image.write_to(writer.as_mut()).await {
        writer.abort().await?;
        return Err(e);
    }
    Ok(writer.finish().await?.then_some(meta))
}
