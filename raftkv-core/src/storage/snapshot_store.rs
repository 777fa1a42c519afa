//! The [`SnapshotStore`] trait: durable, streamed state-machine snapshots.

use async_trait::async_trait;
use bytes::Bytes;

use super::StorageError;
use crate::raft::SnapshotMeta;

/// Durable store of the latest snapshot.
///
/// # Contract
/// - A snapshot is written through a [`SnapshotWriter`] obtained from
///   [`SnapshotStore::begin`], chunk by chunk; its total size is not known in
///   advance.
/// - [`SnapshotWriter::finish`] makes the snapshot durable and atomically
///   replaces the current one: after a crash, [`SnapshotStore::open_latest`]
///   returns either the old snapshot or the new one, whole — never a mix and
///   never a partial one. An unfinished or aborted writer leaves no trace.
/// - Several writers may be open at once (a local snapshot while one is being
///   received); the last to finish wins, unless its `last_index` is lower than
///   the current snapshot's, in which case `finish` discards it and returns
///   `Ok(false)`.
/// - A [`SnapshotReader`] keeps reading the snapshot it opened even if another
///   one finishes meanwhile.
#[async_trait]
pub trait SnapshotStore: Send + Sync + 'static {
    /// Start writing a snapshot identified by `meta`.
    async fn begin(&self, meta: SnapshotMeta) -> Result<Box<dyn SnapshotWriter>, StorageError>;

    /// Open the latest finished snapshot, if any.
    async fn open_latest(&self) -> Result<Option<(SnapshotMeta, Box<dyn SnapshotReader>)>, StorageError>;

    /// Identity and size in bytes of the latest finished snapshot, if any.
    async fn latest(&self) -> Result<Option<(SnapshotMeta, u64)>, StorageError>;
}

/// Writes one snapshot in chunks.
#[async_trait]
pub trait SnapshotWriter: Send {
    /// Append a chunk.
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError>;

    /// Bytes written so far.
    fn written(&self) -> u64;

    /// Make the snapshot durable and current (see [`SnapshotStore`]).
    /// Returns `false` when a newer snapshot was already current and this one was discarded.
    async fn finish(self: Box<Self>) -> Result<bool, StorageError>;

    /// Discard the snapshot being written.
    async fn abort(self: Box<Self>) -> Result<(), StorageError>;
}

/// Reads one snapshot in chunks.
#[async_trait]
pub trait SnapshotReader: Send {
    /// Next chunk of at most `max_len` bytes, or `None` at the end.
    async fn next_chunk(&mut self, max_len: usize) -> Result<Option<Bytes>, StorageError>;
}
