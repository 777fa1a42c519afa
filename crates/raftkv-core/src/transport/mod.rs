//! The [`Transport`] trait: how a member reaches its peers, and what every
//! network transport shares.
//!
//! The client half is [`Transport::call`] (and [`Transport::send_snapshot`]);
//! the server half of every transport delivers incoming requests to a
//! [`RaftRpcHandler`](crate::raft::driver::RaftRpcHandler). Network servers
//! find the handler through [`Routes`], which also hosts the
//! [`ServiceHandler`](crate::api::ServiceHandler) for service RPCs.
//! [`NetConfig`] holds the settings network transports honour, and
//! [`Reconnect`] the backoff they use between connection attempts.

mod backoff;
mod error;
mod local;
mod net_config;
mod peer;
mod routes;
pub mod snapshot;

use async_trait::async_trait;

pub use backoff::{Backoff, Reconnect};
pub use error::TransportError;
pub use local::LocalTransport;
pub use net_config::{Identity, NetConfig, TlsConfig};
pub use peer::Peer;
pub use routes::{RaftRoute, RouteError, Routes};
pub use snapshot::{OutgoingSnapshot, SnapshotSendError};

use crate::raft::{InstallSnapshotResponse, RaftRequest, RaftResponse};
use crate::types::NodeId;

/// Client half of a transport between members of one Raft group.
///
/// # Contract
/// - `call` sends `request` from `from` to `to` and resolves to the peer's
///   response, or to a [`TransportError`] when the peer cannot be reached, the
///   call times out, or the peer rejects it. An error says nothing about
///   whether the peer processed the request (it may have).
/// - Calls are independent: concurrent calls may be delivered and answered in
///   any order. The engine tolerates loss, duplication and reordering, but a
///   transport that keeps the appends to one peer in order (an ordered
///   stream) spares the follower rejections and the leader resends.
/// - `call` must finish within the transport's deadline; it never hangs.
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
    /// Send one request and wait for its response.
    async fn call(&self, from: NodeId, to: NodeId, request: RaftRequest) -> Result<RaftResponse, TransportError>;

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
