//! Streaming snapshots between members, chunk by chunk.

use std::sync::Arc;

use crate::raft::core::{RaftCore, SnapshotSendOutcome};
use crate::raft::{InstallSnapshotRequest, InstallSnapshotResponse, SnapshotMeta};
use crate::storage::{SnapshotStore, SnapshotWriter};
use crate::transport::{OutgoingSnapshot, Transport};
use crate::types::{GroupId, NodeId, Term};

/// Stream the latest snapshot to `to` through the transport, chunk by chunk.
pub(crate) async fn send_snapshot(
    group: GroupId,
    store: Arc<dyn SnapshotStore>,
    transport: Arc<dyn Transport>,
    from: NodeId,
    to: NodeId,
    term: Term,
    chunk_bytes: usize,
) -> SnapshotSendOutcome {
    let Ok(Some((meta, reader))) = store.open_latest().await else {
        return SnapshotSendOutcome::Failed;
    };
    let mut snapshot = OutgoingSnapshot::new(term, from, meta, reader, chunk_bytes);
    match transport.send_snapshot(from, to, &mut snapshot).await {
        Ok(resp) if resp.term > term => SnapshotSendOutcome::HigherTerm(resp.term),
        Ok(resp) if snapshot.is_finished() && resp.next_offset == snapshot.offset() => {
            tracing::info!(group = %group, node = %from, term = %term, index = %meta.last_index, to = %to, bytes = snapshot.offset(), "snapshot sent");
            SnapshotSendOutcome::Installed(meta)
        }
        Ok(_) => SnapshotSendOutcome::Failed,
        Err(e) => {
            tracing::debug!(group = %group, node = %from, term = %term, to = %to, error = %e, "snapshot send failed");
            SnapshotSendOutcome::Failed
        }
    }
}

/// A snapshot being received from the leader.
pub(crate) struct IncomingSnapshot {
    meta: SnapshotMeta,
    term: Term,
    writer: Box<dyn SnapshotWriter>,
    next_offset: u64,
}

impl IncomingSnapshot {
    /// Write one accepted chunk; after the last, make the snapshot current and
    /// tell the core. Returns the answer to send.
    pub(crate) async fn receive(
        slot: &mut Option<IncomingSnapshot>,
        store: Arc<dyn SnapshotStore>,
        core: &mut RaftCore,
        req: InstallSnapshotRequest,
    ) -> InstallSnapshotResponse {
        let term = core.term();
        let refuse = |next_offset| InstallSnapshotResponse { term, accepted: false, next_offset };
        if req.offset == 0 {
            if let Some(old) = slot.take() {
                let _ = old.writer.abort().await;
            }
            match store.begin(req.meta).await {
                Ok(writer) => *slot = Some(IncomingSnapshot { meta: req.meta, term: req.term, writer, next_offset: 0 }),
                Err(_) => return refuse(0),
            }
        }
        let Some(incoming) = slot.as_mut() else { return refuse(0) };
        if incoming.meta != req.meta || incoming.term != req.term || incoming.next_offset != req.offset {
            return refuse(incoming.next_offset);
        }
        let len = req.data.len() as u64;
        if incoming.writer.write(req.data).await.is_err() {
            if let Some(old) = slot.take() {
                let _ = old.writer.abort().await;
            }
            return refuse(0);
        }
        incoming.next_offset += len;
        let next_offset = incoming.next_offset;
        if req.done {
            let Some(done) = slot.take() else { return refuse(0) };
            match done.writer.finish().await {
                Ok(_) => {
                    core.install_snapshot(done.meta);
                }
                Err(_) => return refuse(0),
            }
        }
        InstallSnapshotResponse { term: core.term(), accepted: true, next_offset }
    }
}
