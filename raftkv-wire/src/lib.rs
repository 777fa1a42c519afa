//! # raftkv-wire
//!
//! The RaftKV wire protocol, shared by the network transports: one protobuf
//! schema (`proto/raftkv/v1/raftkv.proto`, package `raftkv.v1`) holding every
//! message RaftKV sends between processes — Raft RPCs and the KV,
//! controller, migration and admin services — compiled at build time with
//! [protox](https://docs.rs/protox) (no system `protoc`), plus the
//! conversions between those messages and `raftkv-core`'s types.
//!
//! Decoding never panics and never lets a malformed message through: every
//! `into_core` checks what the engine relies on (contiguous entries, node ids,
//! index ranges, known enum values) and names the offending field.
//!
//! ```
//! use bytes::Bytes;
//! use raftkv_core::raft::{HeartbeatRequest, RaftRequest};
//! use raftkv_wire::net::RaftRoute;
//! use raftkv_core::{GroupId, LogIndex, NodeId, Term};
//! use raftkv_wire::RaftRequestPb;
//!
//! let route = RaftRoute { group: GroupId(1), from: NodeId(1), to: NodeId(2) };
//! let request = RaftRequest::Heartbeat(HeartbeatRequest {
//!     term: Term(3),
//!     leader: NodeId(1),
//!     commit: LogIndex(9),
//!     read_seq: 4,
//! });
//! let wire = RaftRequestPb::from_core(route, request.clone());
//! let bytes = Bytes::from(wire.encode_to_vec());
//! let decoded = RaftRequestPb::decode(wire.rpc(), bytes)?.into_core()?;
//! assert_eq!(decoded, (route, request));
//!
//! // Garbage is an error naming the message, never a panic.
//! let err = RaftRequestPb::decode("append_entries", Bytes::from_static(&[0xff, 0xff])).unwrap_err();
//! assert!(err.to_string().contains("AppendEntriesRequest"));
//! # Ok::<(), raftkv_wire::DecodeError>(())
//! ```
//!
//! Features: `grpc` adds the tonic client and server stubs of the services
//! (`pb::raft_client`, `pb::kv_server`, …); `net` the connection, TLS and
//! serving plumbing both transports share ([`net`] always holds the routing,
//! settings and access policy); `testkit` adds `pki`, test certificates made
//! at run time, and the transport conformance suite (`testkit::transport`). [`trace`] carries W3C trace context
//! across every RPC.

mod convert;
mod error;
pub mod frame;
pub mod net;
#[cfg(feature = "testkit")]
pub mod pki;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod trace;

/// The generated protobuf messages (and, with `grpc`, service stubs) of package `raftkv.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::nursery)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/raftkv.v1.rs"));
}

pub use convert::*;
pub use error::DecodeError;
