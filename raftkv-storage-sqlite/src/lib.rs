//! RaftKV's [`LogStore`](raftkv_core::storage::LogStore) on SQLite (through
//! sqlx, with SQLite bundled), for many Raft members in one database file.
//!
//! ```
//! use raftkv_core::raft::{Entry, EntryPayload, HardState};
//! use raftkv_core::storage::{LogStore, LogWrite};
//! use raftkv_core::{GroupId, LogIndex, NodeId, Term};
//! use raftkv_storage_sqlite::{SqliteOptions, SqliteStorage};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await?;
//! let (log, _snapshots) = storage.member(GroupId(1), NodeId(1)).await?;
//!
//! let entry = Entry { term: Term(1), index: LogIndex(1), payload: EntryPayload::Command("x=1".into()) };
//! let hard_state = HardState { term: Term(1), vote: Some(NodeId(1)), commit: LogIndex(0) };
//! log.write(LogWrite { entries: vec![entry.clone()], hard_state: Some(hard_state), ..LogWrite::default() }).await?;
//! storage.close().await;
//!
//! // Everything acknowledged is there after reopening.
//! let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await?;
//! let (log, _snapshots) = storage.member(GroupId(1), NodeId(1)).await?;
//! assert_eq!(log.state().await?.hard_state, hard_state);
//! assert_eq!(log.entries(LogIndex(1), LogIndex(2)).await?, vec![entry]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```
//!
//! - **Layout**: `dir/raftkv.sqlite` holds a `log` table (one row per entry,
//!   keyed by group, node and index), a `journal` table (recently appended
//!   entries of every member, in append order) and a `meta` table (hard state
//!   and last purged index per member), all created by embedded migrations.
//!   Values are the checksummed records of [`raftkv_core::storage::codec`]; a
//!   damaged one is reported as [`StorageError::Corrupt`](raftkv_core::storage::StorageError)
//!   naming the file, member and index (and the journal seq while the entry
//!   is still in the journal). Snapshots are files in
//!   `dir/snapshots/g<group>-n<node>/` ([`FileSnapshotStore`](raftkv_core::storage::FileSnapshotStore)).
//! - **Durability**: WAL journal and `synchronous = FULL`: a call returns only
//!   after its commit is fsynced ([`SyncMode::Never`] turns that off, for
//!   benchmarks only).
//! - **Group commit**: one writer task commits whatever every member queued
//!   meanwhile in one transaction; [`SqliteStorage::commits`] counts them.
//!   Appends go to the shared append-only `journal`, so a commit carrying
//!   entries of many members dirties the journal's last pages rather than one
//!   `log` page per member; the writer moves the journal into `log` every
//!   2048 rows (inside a batch's transaction) and on open and close. Reads,
//!   truncation and purges see both tables.
//! - **Deterministic simulation**: database work runs on tokio's blocking
//!   pool, so a paused tokio clock does not advance during disk I/O.

mod batch;
mod blocking;
mod bounds;
mod db_header;
mod error;
mod journal;
mod log_store;
mod options;
mod read_pool;
mod records;
mod schema;
mod storage;
mod wal_check;
mod writer;

pub use log_store::SqliteLogStore;
pub use options::{SqliteOptions, SyncMode};
pub use storage::{SqliteStorage, DB_FILE, SNAPSHOT_DIR};
