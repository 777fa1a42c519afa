//! # raftkv-transport-http
//!
//! The HTTP transport of RaftKV, on hyper 1.x: every RPC is a `POST` of a
//! protobuf body (`application/x-protobuf`, the `raftkv.v1` messages) to
//! `/raft/v1/<rpc>` for Raft and `/<service>/v1/<method>` for the services
//! (`/kv/v1/get`, `/ctrler/v1/join`, `/migration/v1/pull_shards`,
//! `/admin/v1/status`, …). A snapshot is one `POST /raft/v1/install_snapshot`
//! whose chunked body is a stream of length-delimited `InstallSnapshotChunk`s,
//! read from the store as it is sent.
//!
//! - **Keep-alive pooling** of HTTP/1.1 connections per peer; after a
//!   connection failure the client backs off (exponentially, with jitter).
//! - **Deadlines** on every call; **size limits** before sending and when
//!   receiving (`413` naming the limit).
//! - **TLS and mTLS** with rustls.
//! - **Trace context**: each Raft message carries the sender's `traceparent`
//!   ([`raftkv_core::trace`]) in its route, each service call in a
//!   `traceparent` header; the server handles it inside a `raft_rpc` or
//!   `service_rpc` span parented on it.
//! - Errors are plain-text replies with an `x-raftkv-error` header naming
//!   the kind: `400` malformed, `404` unknown route or member, `405` not a
//!   `POST`, `408` body too slow, `413` too large, `503` member stopped.
//!
//! Requests to one peer may travel on different pooled connections, so they
//! can arrive out of order; the gRPC transport keeps them in order.
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use bytes::Bytes;
//! use raftkv_core::api::{ApiError, KvOp, KvRequest, RequestId, ServiceClient, ServiceHandler, ServiceRequest, ServiceResponse};
//! use raftkv_wire::net::{NetConfig, Routes};
//! use raftkv_core::{GroupId, NodeId};
//! use raftkv_transport_http::{HttpClient, HttpServer};
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
//! let server = HttpServer::start("127.0.0.1:0".parse()?, routes, &cfg).await?;
//! let addr = server.addr().to_string();
//!
//! let client = HttpClient::new(cfg)?;
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
mod wire;

pub use client::{HttpClient, HttpRaftTransport};
pub use error::HttpError;
pub use server::HttpServer;
