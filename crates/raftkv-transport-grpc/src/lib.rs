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
//!   invoked, with any number in flight; the server submits them to the
//!   member in that order and answers in that order.
//! - **Snapshots** are one client-streaming call, pulled from the store chunk
//!   by chunk through a queue of two chunks and HTTP/2 flow control, so a
//!   snapshot of any size costs a few MiB.
//! - **Deadlines** on every call; **size limits** checked before sending and
//!   when receiving; **TLS and mTLS** with rustls.
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use std::sync::Arc;
//! use raftkv_core::transport::{NetConfig, Routes};
//! use raftkv_core::{GroupId, NodeId};
//! use raftkv_transport_grpc::{GrpcClient, GrpcServer};
//!
//! # async fn demo() -> Result<(), raftkv_transport_grpc::GrpcError> {
//! let cfg = NetConfig::default();
//! // Serve whatever members and service get added to `routes`.
//! let routes = Routes::new();
//! let server = GrpcServer::start("127.0.0.1:7001".parse().unwrap(), routes.clone(), &cfg).await?;
//! // The transport member 1 of group 1 hands to `Raft::start`.
//! let client = GrpcClient::new(cfg)?;
//! let peers = BTreeMap::from([
//!     (NodeId(1), "127.0.0.1:7001".to_string()),
//!     (NodeId(2), "127.0.0.1:7002".to_string()),
//!     (NodeId(3), "127.0.0.1:7003".to_string()),
//! ]);
//! let transport = Arc::new(client.raft(GroupId(1), peers));
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
