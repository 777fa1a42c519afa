//! # raftkv-storage-redb
//!
//! A durable [`LogStore`](raftkv_core::storage::LogStore) for RaftKV on
//! [redb](https://docs.rs/redb): one database file holds the Raft logs and
//! hard states of many members (multi-raft), and every member gets a
//! [`FileSnapshotStore`](raftkv_core::storage::FileSnapshotStore) for its
//! snapshots.
//!
//! ```
//! use bytes::Bytes;
//! use raftkv_core::raft::{Entry, EntryPayload};
//! use raftkv_core::storage::LogStore;
//! use raftkv_core::{GroupId, LogIndex, NodeId, Term};
//! use raftkv_storage_redb::{RedbOptions, RedbStorage};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let storage = RedbStorage::open(dir.path(), RedbOptions::default()).await?;
//! let (log, _snapshots) = storage.member(GroupId(1), NodeId(1)).await?;
//!
//! let entry = Entry { term: Term(1), index: LogIndex(1), payload: EntryPayload::Command(Bytes::from_static(b"x=1")) };
//! log.append(vec![entry.clone()]).await?; // durable (fsynced) on return
//! assert_eq!(log.state().await?.last_index, LogIndex(1));
//! assert_eq!(log.entries(LogIndex(1), LogIndex(2)).await?, vec![entry]);
//! # Ok(())
//! # }
//! ```
//!
//! ## Group commit
//!
//! All writes ([`LogStore::write`](raftkv_core::storage::LogStore::write) and
//! [`purge_through`](raftkv_core::storage::LogStore::purge_through)) of all
//! members go through one writer task. It takes every request queued at the
//! moment, applies them in one write transaction on tokio's blocking pool,
//! appends them as one record to the write-ahead log (`raftkv.wal`) and syncs
//! it — one fsync for the whole batch — before answering each. The redb
//! transaction itself commits without a sync; a durable redb commit every
//! 4 MiB of log (a checkpoint) lets the log start over, and opening replays
//! what came after the last one.
//! A request that breaks the log contract (say, a non-contiguous append)
//! gets its error and changes nothing, without failing the rest of the batch.
//! Reads use their own read transactions, also on the blocking pool.
//!
//! ## Durability
//!
//! With [`SyncMode::Always`] (the default) a write is durable when it
//! returns. [`SyncMode::Never`] gives **no durability at all** and exists only
//! for benchmarks and tests. If a commit fails, every later write fails too:
//! reopen the storage. See the README for the on-disk layout.
//!
//! ## Journal
//!
//! Appended entries of every member go to one shared append-only table,
//! `raft_journal`, keyed by a global sequence number, so that one commit of
//! appends to many logs writes a few pages. A checkpoint moves them into the
//! per-log key ranges of `raft_log` once the journal holds 2048 entries (in
//! the next batch's transaction) and when the storage opens; reads merge both
//! tables, and truncations and purges remove entries from both.

mod database;
mod error;
mod journal;
mod keys;
mod log_store;
mod op;
mod options;
mod storage;
mod tables;
mod wal;
mod writer;

pub use log_store::RedbLogStore;
pub use options::{RedbOptions, SyncMode};
pub use storage::{RedbStorage, DB_FILE_NAME, SNAPSHOTS_DIR_NAME};
pub use wal::WAL_FILE_NAME;
