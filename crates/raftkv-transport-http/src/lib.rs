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
//! - Errors are plain-text replies with an `x-raftkv-error` header naming
//!   the kind: `400` malformed, `404` unknown route or member, `405` not a
//!   `POST`, `408` body too slow, `413` too large, `503` member stopped.
//!
//! Requests to one peer may travel on different pooled connections, so they
//! can arrive out of order; the gRPC transport keeps them in order.
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use raftkv_core::transport::{NetConfig, Routes};
//! use raftkv_core::{GroupId, NodeId};
//! use raftkv_transport_http::{HttpClient, HttpServer};
//!
//! # async fn demo() -> Result<(), raftkv_transport_http::HttpError> {
//! let cfg = NetConfig::default();
//! let routes = Routes::new();
//! let server = HttpServer::start("127.0.0.1:7101".parse().unwrap(), routes.clone(), &cfg).await?;
//! let client = HttpClient::new(cfg)?;
//! let transport = client.raft(GroupId(1), BTreeMap::from([(NodeId(2), "127.0.0.1:7102".to_string())]));
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
