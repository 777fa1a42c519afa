//! # raftkv-core
//!
//! The Raft engine of RaftKV and the doors around it: the [`storage::LogStore`],
//! [`storage::SnapshotStore`], [`state_machine::StateMachine`] and
//! [`transport::Transport`] traits, in-memory implementations, and (feature
//! `testkit`) a deterministic simulator with conformance suites.
//!
//! ```
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use raftkv_core::raft::core::RaftConfig;
//! use raftkv_core::raft::driver::{DriverConfig, Raft};
//! use raftkv_core::storage::MemDisk;
//! use raftkv_core::testkit::sim::RecordingStateMachine;
//! use raftkv_core::transport::LocalTransport;
//! use raftkv_core::{GroupId, LogIndex, NodeId};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A one-member group: it elects itself after one election timeout.
//! let disk = MemDisk::new();
//! let transport = Arc::new(LocalTransport::new());
//! let raft = Raft::start(
//!     RaftConfig::new(GroupId(1), NodeId(1), vec![NodeId(1)]),
//!     DriverConfig::default(),
//!     Arc::new(disk.log_store()),
//!     Arc::new(disk.snapshot_store()),
//!     transport,
//!     RecordingStateMachine::new(0, Default::default()),
//! )
//! .await?;
//! let index = loop {
//!     match raft.propose(Bytes::from_static(b"hello")).await {
//!         Ok(index) => break index,
//!         Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
//!     }
//! };
//! assert_eq!(index, LogIndex(2)); // index 1 is the new leader's blank entry
//! # Ok(())
//! # }
//! ```
//!
//! A three-member replicated counter is in the repository's `examples/counter.rs`.

pub mod api;
pub mod binary;
pub mod client;
pub mod ctrler;
pub mod dedup;
pub mod metrics;
pub mod raft;
pub mod rng;
pub mod shardkv;
pub mod state_machine;
pub mod storage;
pub mod trace;
pub mod transport;
pub mod types;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use types::{ClientId, ConfigNum, GroupId, LogIndex, NodeId, ShardId, Term};
