//! # raftkv-core
//!
//! The Raft engine of RaftKV and the doors around it: the [`storage::LogStore`],
//! [`storage::SnapshotStore`], [`state_machine::StateMachine`] and
//! [`transport::Transport`] traits, in-memory implementations, and (feature
//! `testkit`) a deterministic simulator with conformance suites.

pub mod raft;
pub mod rng;
pub mod state_machine;
pub mod storage;
pub mod transport;
pub mod types;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use types::{ConfigNum, GroupId, LogIndex, NodeId, ShardId, Term};
