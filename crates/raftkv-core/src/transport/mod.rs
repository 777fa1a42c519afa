//! The [`Transport`] trait: how a member reaches its peers.
//!
//! The client half is [`Transport::call`]; the server half of every transport
//! delivers incoming requests to a [`RaftHandle`](crate::raft::driver::RaftHandle)
//! through [`RaftHandle::handle_rpc`](crate::raft::driver::RaftHandle::handle_rpc).

mod error;
mod local;

use async_trait::async_trait;

pub use error::TransportError;
pub use local::LocalTransport;

use crate::raft::{RaftRequest, RaftResponse};
use crate::types::NodeId;

/// Client half of a transport between members of one Raft group.
///
/// # Contract
/// - `call` sends `request` from `from` to `to` and resolves to the peer's
///   response, or to a [`TransportError`] when the peer cannot be reached, the
///   call times out, or the peer rejects it. An error says nothing about
///   whether the peer processed the request (it may have).
/// - Calls are independent: concurrent calls may be delivered and answered in
///   any order. The engine tolerates loss, duplication and reordering.
/// - `call` must finish within the transport's deadline; it never hangs.
/// - Implementations must be cheap to call concurrently (one connection per
///   peer, reused).
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Send one request and wait for its response.
    async fn call(&self, from: NodeId, to: NodeId, request: RaftRequest) -> Result<RaftResponse, TransportError>;
}
