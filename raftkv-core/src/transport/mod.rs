//! The [`Transport`] trait: how a member reaches its peers.
//!
//! The client half is [`Transport::call`] (and [`Transport::send_snapshot`]);
//! the server half of every transport delivers incoming requests to a
//! [`RaftRpcHandler`](crate::raft::driver::RaftRpcHandler). The in-process
//! [`LocalTransport`] is here; the network transports, and the plumbing they
//! share (routing to the members a server hosts, settings, access control,
//! reconnect backoff), are in their own crates.

mod error;
mod local;
mod peer;
pub mod snapshot;

use async_trait::async_trait;

pub use error::TransportError;
pub use local::LocalTransport;
pub use peer::Peer;
pub use snapshot::{OutgoingSnapshot, SnapshotSendError};

use crate::raft::{InstallSnapshotResponse, RaftRequest, RaftResponse};
use crate::types::NodeId;

/// The default largest message, in bytes, a network transport sends or
/// accepts (64 MiB); snapshots go in chunks below it.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 << 20;

/// The response to a request handed to [`Transport::call`].
pub type CallFuture = futures::future::BoxFuture<'static, Result<RaftResponse, TransportError>>;

/// Client half of a transport between members of one Raft group.
///
/// # Contract
/// - `call` takes `request` from `from` to `to` at once and returns the
///   future of the peer's response, or of a [`TransportError`] when the peer
///   cannot be reached, the call times out, or the peer rejects it. An error
///   says nothing about whether the peer processed the request (it may have).
/// - Order: a transport may deliver concurrent calls in any order, and the
///   engine tolerates loss, duplication and reordering; but a transport that
///   sends the requests to one peer in the order `call` was invoked (an
///   ordered stream) spares the follower rejections and the leader resends
///   when appends are pipelined. That is why `call` is not an `async fn`:
///   the order is fixed when it returns, not when its future is first polled.
/// - The future must finish within the transport's deadline; it never hangs.
/// - Implementations must be cheap to call concurrently (one connection per
///   peer, reused).
/// - `send_snapshot` delivers the chunks of `snapshot`, in order, as
///   [`RaftRequest::InstallSnapshot`] requests to `to`'s handler, and returns
///   the answer to the last chunk or the first answer that did not take its
///   chunk ([`snapshot::chunk_taken`]). It pulls chunks from `snapshot` as it
///   sends them, holding only a bounded number in memory. The default sends
///   one `call` per chunk ([`snapshot::send_by_calls`]); a streaming
///   transport overrides it.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Send one request; the future resolves to its response.
    fn call(&self, from: NodeId, to: NodeId, request: RaftRequest) -> CallFuture;

    /// Stream a snapshot to `to`, chunk by chunk.
    async fn send_snapshot(
        &self,
        from: NodeId,
        to: NodeId,
        snapshot: &mut OutgoingSnapshot,
    ) -> Result<InstallSnapshotResponse, SnapshotSendError> {
        snapshot::send_by_calls(self, from, to, snapshot).await
    }
}
