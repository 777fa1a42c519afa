//! # raftkv-transport-grpc
//!
//! The gRPC transport of RaftKV, on tonic and hyper: it carries Raft RPCs
//! between the members of every group a server hosts, and the service RPCs
//! (KV, controller, shard migration, admin) of `raftkv.v1`.
//!
//! - **One HTTP/2 connection per peer address**, opened on first use and
//!   shared by every call; after a failure the client backs off
//!   (exponentially, with jitter) before reconnecting, failing calls at once
//!   meanwhile.
//! - **Ordered pipeline**: appends, heartbeats, votes and transfers to a peer
//!   travel on one long-lived bidirectional stream, in the order `call` was
//!   invoked, many in flight; the server submits them to the member in that
//!   order (so a follower batches them into one write) and sends each answer
//!   back as soon as it is ready, tagged with its sequence number.
//! - **Snapshots** are one client-streaming call, pulled from the store chunk
//!   by chunk through a queue of two chunks and HTTP/2 flow control, so a
//!   snapshot of any size costs a few MiB.
//! - **Deadlines** on every call; **size limits** checked before sending and
//!   when receiving; **TLS and mTLS** with rustls.
//! - **Trace context**: each Raft message carries the sender's `traceparent`
//!   ([`raftkv_core::trace`]) in its route, each service call in
//!   `traceparent` metadata; the server handles it inside a `raft_rpc` or
//!   `service_rpc` span parented on it.
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use bytes::Bytes;
//! use raftkv_core::api::{ApiError, KvOp, KvRequest, RequestId, ServiceClient, ServiceHandler, ServiceRequest, ServiceResponse};
//! use raftkv_wire::net::{NetConfig, Routes};
//! use raftkv_core::{GroupId, NodeId};
//! use raftkv_transport_grpc::{GrpcClient, GrpcServer};
//!
//! /// Answers a Get with the key reversed; offers nothing else.
//! struct Reverse;
//!
//! #[async_trait]
//! impl ServiceHandler for Reverse {
//!     async fn handle(&self, request: ServiceRequest) -> ServiceResponse {
//!         match &request {
//!             ServiceRequest::Kv(KvRequest { op: KvOp::Get { key }, .. }) => {
//!                 ServiceResponse::Kv(Ok(Some(key.iter().rev().copied().collect())))
//!             }
//!             other => other.refuse(ApiError::Unsupported { what: other.name().into() }),
//!         }
//!     }
//! }
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cfg = NetConfig::default();
//! // What the server hosts: a service handler, and Raft members as they start
//! // (`routes.add_member(group, node, Arc::new(raft_handle))`).
//! let routes = Routes::new();
//! routes.set_service(Arc::new(Reverse));
//! let server = GrpcServer::start("127.0.0.1:0".parse()?, routes, &cfg).await?;
//! let addr = server.addr().to_string();
//!
//! let client = GrpcClient::new(cfg)?;
//! let get = KvRequest { id: RequestId::default(), op: KvOp::Get { key: Bytes::from_static(b"abc") } };
//! let reply = client.call_service(&addr, ServiceRequest::Kv(get)).await?;
//! assert_eq!(reply, ServiceResponse::Kv(Ok(Some(Bytes::from_static(b"cba")))));
//!
//! // The transport member 1 of group 1 hands to `Raft::start`: one
//! // connection per peer address, shared with the service calls above.
//! let transport = Arc::new(client.raft(GroupId(1), BTreeMap::from([(NodeId(2), addr)])));
//! # let _ = transport;
//! server.stop().await;
//! # Ok(())
//! # }
//! ```

mod client;
mod error;
mod server;
mod status;

pub use client::{GrpcClient, GrpcRaftTransport};
pub use error::GrpcError;
pub use server::GrpcServer;

/// HTTP/2 flow-control window of one stream: bounds what one snapshot
/// stream has in flight.
pub(crate) const STREAM_WINDOW: u32 = 2 << 20;
/// HTTP/2 flow-control window of one connection.
pub(crate) const CONNECTION_WINDOW: u32 = 8 << 20;
/// Both ends ping a connection this often, so that a peer that vanished
/// (its host lost power, a partition) is noticed and its streams end.
pub(crate) const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
/// An unanswered ping closes the connection after this long.
pub(crate) const KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
