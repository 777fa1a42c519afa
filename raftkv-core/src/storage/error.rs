//! Errors of the storage traits.

use crate::types::LogIndex;

/// What can go wrong in a [`LogStore`](super::LogStore) or
/// [`SnapshotStore`](super::SnapshotStore).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The store was closed (or, in the simulator, its node crashed).
    #[error("storage is closed")]
    Closed,
    /// Appended entries do not follow the last index.
    #[error("append of index {got} does not follow last index {last}")]
    NotContiguous {
        /// The store's last index.
        last: LogIndex,
        /// The first index offered.
        got: LogIndex,
    },
    /// Requested entries were purged by a snapshot.
    #[error("index {index} was compacted (first retained index is {first})")]
    Compacted {
        /// The index asked for.
        index: LogIndex,
        /// The first index still stored.
        first: LogIndex,
    },
    /// Requested entries lie past the end of the log.
    #[error("index {index} is past the last index {last}")]
    Unavailable {
        /// The index asked for.
        index: LogIndex,
        /// The last index stored.
        last: LogIndex,
    },
    /// Truncating would remove entries that were purged or that precede the first index.
    #[error("cannot truncate after {index}: first retained index is {first}")]
    TruncateBeforeFirst {
        /// The truncation point.
        index: LogIndex,
        /// The first index still stored.
        first: LogIndex,
    },
    /// A snapshot write was used after it finished or was aborted.
    #[error("snapshot writer for index {0} is no longer open")]
    SnapshotWriterClosed(LogIndex),
    /// Stored data failed validation (checksum, format, truncation).
    #[error("corrupt store at {location}: {reason}")]
    Corrupt {
        /// File or table holding the damage.
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// An I/O error from the backend.
    #[error("storage I/O error at {location}: {source}")]
    Io {
        /// File or operation that failed.
        location: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A backend-specific error.
    #[error("storage backend error: {0}")]
    Backend(String),
}
