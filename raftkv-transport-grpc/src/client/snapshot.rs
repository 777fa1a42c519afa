//! Streaming a snapshot to a peer: one client-streaming `InstallSnapshot`
//! call, fed chunk by chunk from the store through a small bounded queue, so
//! the transport never holds more than a few chunks.

use std::sync::{Mutex, PoisonError};

use prost::Message;
use raftkv_core::raft::{InstallSnapshotRequest, InstallSnapshotResponse};
use raftkv_core::transport::{OutgoingSnapshot, Peer, SnapshotSendError, TransportError};
use raftkv_wire::net::feed_snapshot;
use raftkv_wire::net::RaftRoute;
use raftkv_wire::pb::{self, raft_client::RaftClient};
use raftkv_wire::{route_pb, snapshot_chunk_to_pb, snapshot_response_from_pb};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::connection::Connection;
use crate::status;

/// Chunks queued between the store and the connection.
const QUEUED_CHUNKS: usize = 2;

/// Send `snapshot` to the member `route.to` over `conn`, its first chunk
/// carrying trace context `traceparent`.
pub(crate) async fn send(
    conn: &Connection,
    peer: Peer,
    route: RaftRoute,
    snapshot: &mut OutgoingSnapshot,
    traceparent: Option<String>,
) -> Result<InstallSnapshotResponse, SnapshotSendError> {
    let cfg = conn.cfg();
    let (idle, limit) = (cfg.snapshot_idle_timeout, cfg.max_message_bytes);
    let (channel, generation) = conn.channel(&peer).await?;
    let mut client = RaftClient::new(channel).max_decoding_message_size(limit).max_encoding_message_size(limit);
    let (tx, rx) = mpsc::channel::<pb::InstallSnapshotChunk>(QUEUED_CHUNKS);
    let call = client.install_snapshot(ReceiverStream::new(rx));
    // The first chunk carries the stream's trace context.
    let traceparent = Mutex::new(traceparent);
    let encode = |chunk| {
        let first = traceparent.lock().unwrap_or_else(PoisonError::into_inner).take();
        let chunk = snapshot_chunk_to_pb(Some(route_pb(route).with_traceparent(first)), chunk);
        let size = chunk.encoded_len();
        (chunk, size)
    };
    let result = feed_snapshot(snapshot, tx, encode, call, limit, idle, &peer).await?;
    answered(conn, generation, peer, idle, result)
}

/// Send one chunk as a stream of one (a plain `call` of InstallSnapshot),
/// carrying trace context `traceparent`.
pub(crate) async fn send_one(
    conn: &Connection,
    peer: Peer,
    route: RaftRoute,
    chunk: InstallSnapshotRequest,
    traceparent: Option<String>,
) -> Result<InstallSnapshotResponse, TransportError> {
    let cfg = conn.cfg();
    let (deadline, limit) = (cfg.request_timeout, cfg.max_message_bytes);
    let chunk = snapshot_chunk_to_pb(Some(route_pb(route).with_traceparent(traceparent)), chunk);
    let size = chunk.encoded_len();
    if size > limit {
        return Err(TransportError::TooLarge { what: "install_snapshot chunk", size, limit });
    }
    let (channel, generation) = conn.channel(&peer).await?;
    let mut client = RaftClient::new(channel).max_decoding_message_size(limit).max_encoding_message_size(limit);
    let result = tokio::time::timeout(deadline, client.install_snapshot(tokio_stream::once(chunk)))
        .await
        .map_err(|_| TransportError::Timeout { peer: peer.clone(), after: deadline })?;
    answered(conn, generation, peer, deadline, result).map_err(|e| match e {
        SnapshotSendError::Transport(t) => t,
        other => TransportError::malformed(Peer::addr(conn.addr()), other.to_string()),
    })
}

fn answered(
    conn: &Connection,
    generation: u64,
    peer: Peer,
    deadline: std::time::Duration,
    result: Result<tonic::Response<pb::InstallSnapshotResponse>, tonic::Status>,
) -> Result<InstallSnapshotResponse, SnapshotSendError> {
    match result {
        Ok(response) => {
            conn.succeeded();
            snapshot_response_from_pb(response.get_ref())
                .map_err(|e| TransportError::malformed(peer, e.to_string()).into())
        }
        Err(s) => {
            if status::connection_failed(&s) {
                conn.broken(generation);
            }
            Err(status::to_transport_error(peer, &s, deadline).into())
        }
    }
}
