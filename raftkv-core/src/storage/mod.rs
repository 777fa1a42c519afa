//! Durable state of a Raft member: the log, the hard state and snapshots.
//!
//! [`LogStore`] and [`SnapshotStore`] are the doors between the Raft engine
//! and a disk. Their rustdoc is the contract; the `testkit` conformance suite
//! (`raftkv_testkit::storage_conformance`) is its executable form, and every
//! backend must pass it unchanged.

mod bounds;
pub mod codec;
mod error;
mod file_snapshot;
mod log_store;
mod mem;
mod snapshot_store;

pub use bounds::{LogBounds, LogPlan};
pub use error::StorageError;
pub use file_snapshot::FileSnapshotStore;
pub use log_store::{LogState, LogStore, LogWrite};
pub use mem::{MemDisk, MemLogStore, MemSnapshotStore};
pub use snapshot_store::{SnapshotReader, SnapshotStore, SnapshotWriter};
