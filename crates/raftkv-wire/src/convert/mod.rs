//! Core types ↔ protobuf messages. Encoding is infallible; decoding checks
//! everything the engine and services rely on and names what is wrong.

mod api;
mod raft;

pub use api::{ServiceRequestPb, ServiceResponsePb, SERVICE_RPCS};
pub use raft::{
    route_pb, snapshot_chunk_from_pb, snapshot_chunk_to_pb, snapshot_response_from_pb, snapshot_response_to_pb,
    RaftRequestPb, RaftResponsePb, MAX_TERM_OR_INDEX, RAFT_RPCS,
};
