//! Streaming snapshots between members, chunk by chunk.

use std::sync::Arc;

use crate::raft::core::{RaftCore, SnapshotSendOutcome};
use crate::raft::{InstallSnapshotRequest, InstallSnapshotResponse, RaftRequest, RaftResponse, SnapshotMeta};
use crate::storage::{SnapshotStore, SnapshotWriter};
use crate::transport::Transport;
use crate::types::{GroupId, NodeId, Term};

/// Times a chunk is resent after a transport error before the stream is abandoned.
const CHUNK_RETRIES: u32 = 8;
/// Pause before resending a chunk, multiplied by the attempt number.
const CHUNK_RETRY_BACKOFF: std::time::Duration = std::time::Duration::from_millis(20);

/// Stream the latest snapshot to `to`, one chunk per request, resending a
/// chunk whose request or reply was lost.
pub(crate) async fn send_snapshot(
    group: GroupId,
    store: Arc<dyn SnapshotStore>,
    transport: Arc<dyn Transport>,
    from: NodeId,
    to: NodeId,
    term: Term,
    chunk_bytes: usize,
) -> SnapshotSendOutcome {
    let Ok(Some((meta, mut reader))) = store.open_latest().await else {
        return SnapshotSendOutcome::Failed;
    };
    let mut offset = 0u64;
    let mut next = match reader.next_chunk(chunk_bytes).await {
        Ok(chunk) => chunk.unwrap_or_default(),
        Err(_) => return SnapshotSendOutcome::Failed,
    };
    loop {
        let data = std::mem::take(&mut next);
        let following = match reader.next_chunk(chunk_bytes).await {
            Ok(chunk) => chunk,
            Err(_) => return SnapshotSendOutcome::Failed,
        };
        let done = following.is_none();
        let len = data.len() as u64;
        let mut attempt = 0u32;
        loop {
            let request = InstallSnapshotRequest { term, leader: from, meta, offset, data: data.clone(), done };
            let resp = match transport.call(from, to, RaftRequest::InstallSnapshot(request)).await {
                Ok(RaftResponse::InstallSnapshot(resp)) => resp,
                _ => {
                    // A lost request or reply: resend the same chunk (the
                    // follower answers a duplicate with its expected offset).
                    attempt += 1;
                    if attempt > CHUNK_RETRIES {
                        return SnapshotSendOutcome::Failed;
                    }
                    tokio::time::sleep(CHUNK_RETRY_BACKOFF * attempt).await;
                    continue;
                }
            };
            if resp.term > term {
                return SnapshotSendOutcome::HigherTerm(resp.term);
            }
            // Accepted, or refused as a duplicate of a chunk the follower already holds.
            if resp.next_offset == offset + len {
                break;
            }
            return SnapshotSendOutcome::Failed;
        }
        if done {
            tracing::info!(group = %group, node = %from, term = %term, index = %meta.last_index, to = %to, bytes = offset + len, "snapshot sent");
            return SnapshotSendOutcome::Installed(meta);
        }
        offset += len;
        next = following.unwrap_or_default();
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
