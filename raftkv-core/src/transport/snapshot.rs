//! Snapshots on the wire: [`OutgoingSnapshot`] reads one from the store as a
//! sequence of InstallSnapshot chunks, [`send_by_calls`] delivers them one
//! request each (the default of [`Transport::send_snapshot`]), and
//! [`chunk_taken`] is the rule both ends use to tell whether a chunk landed.

use std::time::Duration;

use bytes::Bytes;

use super::{Peer, Transport, TransportError};
use crate::raft::{InstallSnapshotRequest, InstallSnapshotResponse, RaftRequest, RaftResponse, SnapshotMeta};
use crate::storage::{SnapshotReader, StorageError};
use crate::types::{NodeId, Term};

/// Times [`send_by_calls`] resends a chunk after a transport error before giving up.
const CHUNK_RETRIES: u32 = 8;
/// Pause before resending a chunk, multiplied by the attempt number.
const CHUNK_RETRY_BACKOFF: Duration = Duration::from_millis(20);

/// Why a snapshot could not be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotSendError {
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Reading the snapshot from the local store failed.
    #[error("reading the snapshot to send failed: {0}")]
    Storage(#[from] StorageError),
}

/// A snapshot being sent: the leader's term and id, the snapshot's identity,
/// and a reader it is pulled from one chunk at a time, so that no more than
/// one chunk (plus one read ahead, to mark the last) is held at once.
pub struct OutgoingSnapshot {
    term: Term,
    leader: NodeId,
    meta: SnapshotMeta,
    reader: Box<dyn SnapshotReader>,
    chunk_bytes: usize,
    offset: u64,
    ahead: Option<Bytes>,
    started: bool,
    finished: bool,
}

impl std::fmt::Debug for OutgoingSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingSnapshot")
            .field("term", &self.term)
            .field("leader", &self.leader)
            .field("meta", &self.meta)
            .field("offset", &self.offset)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl OutgoingSnapshot {
    /// Send the snapshot `meta` read from `reader` in chunks of at most
    /// `chunk_bytes` (at least 1), on behalf of leader `leader` of `term`.
    #[must_use]
    pub fn new(
        term: Term,
        leader: NodeId,
        meta: SnapshotMeta,
        reader: Box<dyn SnapshotReader>,
        chunk_bytes: usize,
    ) -> Self {
        Self {
            term,
            leader,
            meta,
            reader,
            chunk_bytes: chunk_bytes.max(1),
            offset: 0,
            ahead: None,
            started: false,
            finished: false,
        }
    }

    /// The sending leader's term.
    #[must_use]
    pub fn term(&self) -> Term {
        self.term
    }

    /// Identity of the snapshot.
    #[must_use]
    pub fn meta(&self) -> SnapshotMeta {
        self.meta
    }

    /// Bytes handed out so far.
    #[must_use]
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether the last chunk was handed out.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The next chunk as a request, or `None` after the last one. An empty
    /// snapshot is one empty chunk marked `done`.
    pub async fn next_chunk(&mut self) -> Result<Option<InstallSnapshotRequest>, StorageError> {
        if self.finished {
            return Ok(None);
        }
        let data = if self.started {
            self.ahead.take().unwrap_or_default()
        } else {
            self.started = true;
            self.reader.next_chunk(self.chunk_bytes).await?.unwrap_or_default()
        };
        self.ahead = self.reader.next_chunk(self.chunk_bytes).await?;
        let done = self.ahead.is_none();
        let request = InstallSnapshotRequest {
            term: self.term,
            leader: self.leader,
            meta: self.meta,
            offset: self.offset,
            data,
            done,
        };
        self.offset += request.data.len() as u64;
        self.finished = done;
        Ok(Some(request))
    }
}

/// Whether `response` says the follower holds `chunk` and expects what follows
/// it (a chunk refused as a duplicate of one it already has counts as taken).
#[must_use]
pub fn chunk_taken(chunk: &InstallSnapshotRequest, response: &InstallSnapshotResponse) -> bool {
    response.term <= chunk.term && response.next_offset == chunk.offset + chunk.data.len() as u64
}

/// Deliver `snapshot` to `to` one [`RaftRequest::InstallSnapshot`] call per
/// chunk, resending a chunk whose request or reply was lost (up to 8 times,
/// with a growing pause). Returns the follower's answer to the last chunk, or
/// its first answer that did not take a chunk (a higher term, or a refusal).
pub async fn send_by_calls<T: Transport + ?Sized>(
    transport: &T,
    from: NodeId,
    to: NodeId,
    snapshot: &mut OutgoingSnapshot,
) -> Result<InstallSnapshotResponse, SnapshotSendError> {
    let mut last = None;
    while let Some(chunk) = snapshot.next_chunk().await? {
        let mut attempt = 0u32;
        let response = loop {
            match transport.call(from, to, RaftRequest::InstallSnapshot(chunk.clone())).await {
                Ok(RaftResponse::InstallSnapshot(resp)) => break resp,
                Ok(other) => {
                    return Err(TransportError::malformed(
                        Peer::node(to),
                        format!("install_snapshot answered with a {other:?}"),
                    )
                    .into())
                }
                Err(e) => {
                    // A lost request or reply: resend the same chunk (the
                    // follower answers a duplicate with its expected offset).
                    attempt += 1;
                    if attempt > CHUNK_RETRIES {
                        return Err(e.into());
                    }
                    tokio::time::sleep(CHUNK_RETRY_BACKOFF * attempt).await;
                }
            }
        };
        if !chunk_taken(&chunk, &response) {
            return Ok(response);
        }
        last = Some(response);
    }
    // `next_chunk` yields at least one chunk, so `last` is set.
    last.ok_or_else(|| TransportError::malformed(Peer::node(to), "no snapshot chunk was sent").into())
}
