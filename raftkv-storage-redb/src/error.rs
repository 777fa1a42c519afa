//! Mapping of redb and codec errors to [`StorageError`], naming the database
//! file and the operation that failed.

use std::any::Any;
use std::io;
use std::path::Path;

use raftkv_core::storage::codec::CodecError;
use raftkv_core::storage::StorageError;
use raftkv_core::MemberId;

/// Where an operation on `file` failed, for [`StorageError`] locations.
fn location(file: &Path, op: &str) -> String {
    format!("{} ({op})", file.display())
}

/// A redb error that can be reported as a [`StorageError`].
pub(crate) trait RedbError: std::fmt::Display {
    /// The [`StorageError`] for this error, raised by `op` on `file`.
    fn into_storage(self, file: &Path, op: &str) -> StorageError;
}

impl RedbError for redb::StorageError {
    fn into_storage(self, file: &Path, op: &str) -> StorageError {
        let location = location(file, op);
        match self {
            redb::StorageError::Corrupted(reason) => StorageError::Corrupt { location, reason },
            // redb reports a file that is not a redb database as InvalidData.
            redb::StorageError::Io(source) if source.kind() == io::ErrorKind::InvalidData => {
                StorageError::Corrupt { location, reason: format!("not a valid redb database: {source}") }
            }
            // Reading past the end of the file: it is shorter than redb wrote it.
            redb::StorageError::Io(source) if source.kind() == io::ErrorKind::UnexpectedEof => {
                StorageError::Corrupt { location, reason: format!("file is truncated: {source}") }
            }
            redb::StorageError::Io(source) => StorageError::Io { location, source },
            redb::StorageError::DatabaseClosed => StorageError::Closed,
            other => StorageError::Backend(format!("{location}: {other}")),
        }
    }
}

impl RedbError for redb::DatabaseError {
    fn into_storage(self, file: &Path, op: &str) -> StorageError {
        match self {
            redb::DatabaseError::Storage(e) => e.into_storage(file, op),
            redb::DatabaseError::DatabaseAlreadyOpen => StorageError::Backend(format!(
                "{}: the database is already open in this or another process (its file is locked)",
                location(file, op)
            )),
            other => StorageError::Backend(format!("{}: {other}", location(file, op))),
        }
    }
}

impl RedbError for redb::TransactionError {
    fn into_storage(self, file: &Path, op: &str) -> StorageError {
        match self {
            redb::TransactionError::Storage(e) => e.into_storage(file, op),
            other => StorageError::Backend(format!("{}: {other}", location(file, op))),
        }
    }
}

impl RedbError for redb::TableError {
    fn into_storage(self, file: &Path, op: &str) -> StorageError {
        match self {
            redb::TableError::Storage(e) => e.into_storage(file, op),
            // A table of the wrong shape: this is not a RaftKV database (or a damaged one).
            e @ (redb::TableError::TableTypeMismatch { .. }
            | redb::TableError::TypeDefinitionChanged { .. }
            | redb::TableError::TableIsMultimap(_)) => {
                StorageError::Corrupt { location: location(file, op), reason: format!("not a RaftKV database: {e}") }
            }
            other => StorageError::Backend(format!("{}: {other}", location(file, op))),
        }
    }
}

impl RedbError for redb::CommitError {
    fn into_storage(self, file: &Path, op: &str) -> StorageError {
        match self {
            redb::CommitError::Storage(e) => e.into_storage(file, op),
            other => StorageError::Backend(format!("{}: {other}", location(file, op))),
        }
    }
}

impl RedbError for redb::SetDurabilityError {
    fn into_storage(self, file: &Path, op: &str) -> StorageError {
        StorageError::Backend(format!("{}: {self}", location(file, op)))
    }
}

/// `result.at(file, op)`: convert a redb error, naming the file and operation.
pub(crate) trait ResultExt<T> {
    /// The result with its error converted to a [`StorageError`].
    fn at(self, file: &Path, op: &str) -> Result<T, StorageError>;
}

impl<T, E: RedbError> ResultExt<T> for Result<T, E> {
    fn at(self, file: &Path, op: &str) -> Result<T, StorageError> {
        self.map_err(|e| e.into_storage(file, op))
    }
}

/// A stored log entry that failed to decode.
pub(crate) fn corrupt_entry(file: &Path, log: MemberId, index: u64, reason: impl ToString) -> StorageError {
    StorageError::Corrupt {
        location: format!("{} log (group {}, node {}, index {index})", file.display(), log.group, log.node),
        reason: reason.to_string(),
    }
}

/// A journaled log entry (row `seq` of the journal) that failed to decode.
pub(crate) fn corrupt_journal_entry(
    file: &Path,
    log: MemberId,
    index: u64,
    seq: u64,
    reason: impl ToString,
) -> StorageError {
    StorageError::Corrupt {
        location: format!(
            "{} log (group {}, node {}, index {index}) (journal seq {seq})",
            file.display(),
            log.group,
            log.node
        ),
        reason: reason.to_string(),
    }
}

/// A stored hard state that failed to decode.
pub(crate) fn corrupt_hard_state(file: &Path, log: MemberId, error: &CodecError) -> StorageError {
    StorageError::Corrupt {
        location: format!("{} hard state (group {}, node {})", file.display(), log.group, log.node),
        reason: error.to_string(),
    }
}

/// A copy of `error`, for answering every request of a failed batch
/// ([`StorageError`] is not `Clone`).
pub(crate) fn duplicate(error: &StorageError) -> StorageError {
    match error {
        StorageError::Io { location, source } => {
            StorageError::Io { location: location.clone(), source: io::Error::new(source.kind(), source.to_string()) }
        }
        StorageError::Corrupt { location, reason } => {
            StorageError::Corrupt { location: location.clone(), reason: reason.clone() }
        }
        StorageError::Closed => StorageError::Closed,
        other => StorageError::Backend(other.to_string()),
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic.downcast_ref::<&str>().copied().or_else(|| panic.downcast_ref::<String>().map(String::as_str)).unwrap_or("?")
}

/// Runs blocking database work on tokio's blocking pool (which also keeps a
/// paused test clock from advancing meanwhile). A panic in redb becomes an
/// error naming the file and the operation.
pub(crate) async fn blocking<T: Send + 'static>(
    file: &Path,
    op: &str,
    work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => {
            let panic = e.into_panic();
            Err(StorageError::Backend(format!("{}: redb panicked: {}", location(file, op), panic_message(&*panic))))
        }
        Err(e) => Err(StorageError::Backend(format!("{}: blocking task failed: {e}", location(file, op)))),
    }
}
