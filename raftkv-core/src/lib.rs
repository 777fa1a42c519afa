//! # raftkv-core
//!
//! The Raft engine of RaftKV and the doors around it: the [`LogStore`],
//! [`SnapshotStore`], [`StateMachine`] and [`Transport`] traits, in-memory
//! implementations and `FileSnapshotStore`. The deterministic simulator and
//! the conformance suites are in the `raftkv-testkit` crate.
//!
//! What a program replicating its own state machine needs is re-exported
//! here: start members with [`Raft::start`], propose and read through their
//! [`RaftHandle`]s.
//!
//! ```
//! use std::sync::Arc;
//!
//! use raftkv_core::{
//!     async_trait, Bytes, Committed, DriverConfig, GroupId, LocalTransport, MemDisk, NodeId, Raft, RaftConfig, SnapshotImage,
//!     SnapshotReader, StateMachine, StateMachineError,
//! };
//!
//! /// Counts the commands it applied.
//! #[derive(Default)]
//! struct Count(u64);
//!
//! #[async_trait]
//! impl StateMachine for Count {
//!     type Response = u64;
//!     async fn apply(&mut self, batch: Vec<Committed>) -> Result<Vec<u64>, StateMachineError> {
//!         Ok(batch.iter().map(|_| { self.0 += 1; self.0 }).collect())
//!     }
//!     async fn snapshot(&mut self) -> Result<Box<dyn SnapshotImage>, StateMachineError> {
//!         Ok(Box::new(Bytes::copy_from_slice(&self.0.to_le_bytes())))
//!     }
//!     async fn restore(&mut self, input: &mut dyn SnapshotReader) -> Result<(), StateMachineError> {
//!         let chunk = input.next_chunk(8).await?.unwrap_or_default();
//!         let bytes = chunk.as_ref().try_into().map_err(|_| StateMachineError::MalformedSnapshot("8 bytes".into()))?;
//!         self.0 = u64::from_le_bytes(bytes);
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A one-member group: it elects itself after one election timeout.
//! let disk = MemDisk::new();
//! let raft = Raft::start(
//!     RaftConfig::new(GroupId(1), NodeId(1), vec![NodeId(1)]),
//!     DriverConfig::default(),
//!     Arc::new(disk.log_store()),
//!     Arc::new(disk.snapshot_store()),
//!     Arc::new(LocalTransport::new()),
//!     Count::default(),
//! )
//! .await?;
//! let count = loop {
//!     match raft.propose(Bytes::from_static(b"hello")).await {
//!         Ok(count) => break count,
//!         Err(e) if e.is_retryable() => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
//!         Err(e) => return Err(e.into()),
//!     }
//! };
//! assert_eq!(count, 1); // the state machine's response to the first command
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

pub use types::{ClientId, ConfigNum, GroupId, LogIndex, MemberId, NodeId, ShardId, Term};

/// The attribute that implements [`StateMachine`] (an async trait).
pub use async_trait::async_trait;
/// The byte buffers commands, responses and snapshots are made of.
pub use bytes::{self, Bytes};

pub use binary::{BinaryError, Decoder, Encoder};
pub use raft::core::{RaftConfig, Role, Status};
pub use raft::driver::{DriverConfig, Raft, RaftError, RaftHandle};
pub use raft::{Entry, EntryPayload};
pub use state_machine::{read_snapshot, Committed, SnapshotImage, StateMachine, StateMachineError};
pub use storage::{
    FileSnapshotStore, LogStore, MemDisk, MemLogStore, MemSnapshotStore, SnapshotReader, SnapshotStore, SnapshotWriter,
    StorageError,
};
pub use transport::{LocalTransport, Transport, TransportError};
