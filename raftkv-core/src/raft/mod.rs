//! The Raft engine: a sans-IO [`core`] and a tokio [`driver`].

pub mod core;
pub mod driver;
mod message;

pub use message::{
    AppendEntriesRequest, AppendEntriesResponse, Entry, EntryPayload, HardState, HeartbeatRequest, HeartbeatResponse,
    InstallSnapshotRequest, InstallSnapshotResponse, RaftRequest, RaftResponse, SnapshotMeta, TimeoutNowRequest,
    TimeoutNowResponse, VoteRequest, VoteResponse,
};
