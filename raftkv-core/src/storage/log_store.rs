//! The [`LogStore`] trait: durable Raft log and hard state.

use async_trait::async_trait;

use super::StorageError;
use crate::raft::{Entry, HardState};
use crate::types::LogIndex;

/// What the log holds when a member starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogState {
    /// The saved hard state (default when none was saved).
    pub hard_state: HardState,
    /// First index still stored (`last_index + 1` when the log is empty).
    pub first_index: LogIndex,
    /// Last index stored, or the last purged index when the log is empty
    /// (0 for a fresh store).
    pub last_index: LogIndex,
}

/// One atomic, durable write: the unit the Raft driver persists per step.
///
/// Applied in this order: `truncate_after`, `entries`, `hard_state`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogWrite {
    /// Remove every entry with index greater than this, first.
    pub truncate_after: Option<LogIndex>,
    /// Entries to append; contiguous, the first at `last_index + 1` after truncation.
    pub entries: Vec<crate::raft::Entry>,
    /// Hard state to save.
    pub hard_state: Option<HardState>,
}

impl LogWrite {
    /// Whether the write changes nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.truncate_after.is_none() && self.entries.is_empty() && self.hard_state.is_none()
    }
}

/// Durable Raft log and hard state.
///
/// # Contract
/// - **Durability**: when a mutating call returns `Ok`, its effect survives a
///   crash (power loss, `kill -9`). A call that has not returned may be lost
///   entirely on a crash, but never partially: a crash keeps a *prefix* of the
///   acknowledged calls plus possibly whole unacknowledged ones, never a torn
///   entry or half of a [`LogWrite`].
/// - **Atomicity**: each call is atomic. [`LogStore::write`] applies its
///   truncation, entries and hard state as one unit.
/// - **Ordering**: calls made one after another (each awaited before the next)
///   take effect in that order. Calls issued concurrently may be coalesced
///   into one durable commit (group commit); each still returns only once its
///   own effect is durable.
/// - **Indices**: entries are contiguous. `append` must start exactly at
///   `last_index + 1` (else [`StorageError::NotContiguous`]). After
///   `purge_through(i)`, `first_index` is at least `i + 1`; purging past the
///   last index leaves an empty log whose `last_index` is `i`.
/// - **Errors**: any `Err` means the call had no effect. A commit that fails
///   with [`StorageError::Io`] (a full disk, a failed sync) leaves the store
///   at its last committed state, and the same call made again succeeds once
///   the cause is gone: the driver retries such writes, refusing proposals
///   meanwhile. Any other error stops the member.
#[async_trait]
pub trait LogStore: Send + Sync + 'static {
    /// Hard state and index bounds, read when a member starts.
    async fn state(&self) -> Result<LogState, StorageError>;

    /// Entries in `[from, to)`; errors if any index in the range is
    /// compacted or missing.
    async fn entries(&self, from: LogIndex, to: LogIndex) -> Result<Vec<Entry>, StorageError>;

    /// Apply a [`LogWrite`] atomically and durably (one commit).
    async fn write(&self, write: LogWrite) -> Result<(), StorageError>;

    /// Remove every entry with index `<= index` (after a snapshot covering them
    /// is durable). Durable on return.
    async fn purge_through(&self, index: LogIndex) -> Result<(), StorageError>;

    /// Bytes of log and hard state currently stored (for compaction policy and tests).
    async fn size_bytes(&self) -> Result<u64, StorageError>;

    /// Append entries durably; shorthand for a [`LogWrite`] with only entries.
    async fn append(&self, entries: Vec<Entry>) -> Result<(), StorageError> {
        self.write(LogWrite { entries, ..LogWrite::default() }).await
    }

    /// Remove every entry with index `> index`. Durable on return.
    async fn truncate_after(&self, index: LogIndex) -> Result<(), StorageError> {
        self.write(LogWrite { truncate_after: Some(index), ..LogWrite::default() }).await
    }

    /// Save the hard state durably.
    async fn save_hard_state(&self, hard_state: HardState) -> Result<(), StorageError> {
        self.write(LogWrite { hard_state: Some(hard_state), ..LogWrite::default() }).await
    }
}
