//! Turning sqlx, migration and codec failures into [`StorageError`]s that
//! name the database file (and, for a damaged record, the log and index).

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use raftkv_core::storage::codec::CodecError;
use raftkv_core::storage::StorageError;
use raftkv_core::MemberId;
use sqlx::migrate::MigrateError;

/// SQLite's primary result codes that mean the file itself is damaged.
const SQLITE_CORRUPT: i32 = 11;
const SQLITE_NOTADB: i32 = 26;
/// SQLite's generic error: while opening a file, a damaged header or schema
/// ("unsupported file format", "malformed database schema").
const SQLITE_ERROR: i32 = 1;

/// The database file, named by every error this crate returns.
#[derive(Clone, Debug)]
pub(crate) struct DbFile(Arc<PathBuf>);

impl DbFile {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self(Arc::new(path))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// SQLite's write-ahead log beside the database.
    pub(crate) fn wal_path(&self) -> PathBuf {
        let mut name = self.0.as_os_str().to_owned();
        name.push("-wal");
        PathBuf::from(name)
    }

    fn location(&self, what: &str) -> String {
        format!("{} ({what})", self.0.display())
    }

    /// A failed sqlx call during `what` (an operation such as "commit").
    pub(crate) fn sqlx(&self, what: &str, err: sqlx::Error) -> StorageError {
        self.classify(what, err, false)
    }

    /// A failed sqlx call during `what`, while the file is being opened and
    /// checked: a generic SQLite error there means its header or schema is
    /// damaged.
    pub(crate) fn sqlx_opening(&self, what: &str, err: sqlx::Error) -> StorageError {
        self.classify(what, err, true)
    }

    fn classify(&self, what: &str, err: sqlx::Error, opening: bool) -> StorageError {
        let location = self.location(what);
        match err {
            sqlx::Error::Io(source) => StorageError::Io { location, source },
            sqlx::Error::Database(db) => {
                let primary = db.code().and_then(|c| c.parse::<i32>().ok()).map(|c| c & 0xff);
                if matches!(primary, Some(SQLITE_CORRUPT | SQLITE_NOTADB)) || (opening && primary == Some(SQLITE_ERROR))
                {
                    StorageError::Corrupt { location, reason: db.to_string() }
                } else {
                    StorageError::Io { location, source: io::Error::other(db.to_string()) }
                }
            }
            sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => StorageError::Closed,
            other => StorageError::Io { location, source: io::Error::other(other.to_string()) },
        }
    }

    /// A failed schema migration.
    pub(crate) fn migrate(&self, err: MigrateError) -> StorageError {
        match err {
            MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => self.sqlx_opening("schema migration", e),
            other => StorageError::Corrupt {
                location: self.0.display().to_string(),
                reason: format!("schema migration failed (was the file written by another version?): {other}"),
            },
        }
    }

    /// A std I/O failure on `path` (the directory, usually).
    pub(crate) fn io(path: &Path, source: io::Error) -> StorageError {
        StorageError::Io { location: path.display().to_string(), source }
    }

    /// A stored entry that failed to decode.
    pub(crate) fn corrupt_entry(&self, log: MemberId, index: u64, err: &CodecError) -> StorageError {
        self.corrupt_log(log, index, err.to_string())
    }

    /// A stored entry that failed to decode, still in the journal at `seq`.
    pub(crate) fn corrupt_journal_entry(&self, log: MemberId, index: u64, seq: i64, err: &CodecError) -> StorageError {
        StorageError::Corrupt {
            location: format!("{} log ({log}, index {index}) (journal seq {seq})", self.0.display()),
            reason: err.to_string(),
        }
    }

    /// The log of `log` is inconsistent at `index` (missing or misplaced entry).
    pub(crate) fn corrupt_log(&self, log: MemberId, index: u64, reason: String) -> StorageError {
        StorageError::Corrupt { location: format!("{} log ({log}, index {index})", self.0.display()), reason }
    }

    /// The meta row of `log` is damaged or inconsistent with its entries.
    pub(crate) fn corrupt_meta(&self, log: MemberId, reason: String) -> StorageError {
        StorageError::Corrupt { location: format!("{} meta ({log})", self.0.display()), reason }
    }

    /// The schema is not what the migrations create.
    pub(crate) fn corrupt_schema(&self, reason: String) -> StorageError {
        StorageError::Corrupt {
            location: format!("{} schema", self.0.display()),
            reason: format!("the tables are not RaftKV's (damaged?): {reason}"),
        }
    }

    /// `PRAGMA quick_check` found damage (its report, one line per problem).
    pub(crate) fn failed_check(&self, report: &[String]) -> StorageError {
        const SHOWN: usize = 5;
        let problems: Vec<&str> =
            report.iter().flat_map(|r| r.lines()).filter(|l| !l.trim().is_empty() && !l.starts_with("***")).collect();
        let mut reason = format!("integrity check failed: {}", problems[..problems.len().min(SHOWN)].join("; "));
        if problems.len() > SHOWN {
            let _ = write!(reason, " (and {} more)", problems.len() - SHOWN);
        }
        StorageError::Corrupt { location: self.0.display().to_string(), reason }
    }
}

/// A copy of `err` for every request of a failed batch (`StorageError` is not `Clone`).
pub(crate) fn duplicate(err: &StorageError) -> StorageError {
    match err {
        StorageError::Closed => StorageError::Closed,
        StorageError::Io { location, source } => {
            StorageError::Io { location: location.clone(), source: io::Error::new(source.kind(), source.to_string()) }
        }
        StorageError::Corrupt { location, reason } => {
            StorageError::Corrupt { location: location.clone(), reason: reason.clone() }
        }
        other => StorageError::Backend(other.to_string()),
    }
}

/// An index that does not fit SQLite's signed 64-bit integers.
pub(crate) fn index_too_large(log: MemberId, index: u64) -> StorageError {
    StorageError::Backend(format!("log index {index} of {log} exceeds the largest SQLite integer ({})", i64::MAX))
}

#[cfg(test)]
mod tests {
    use raftkv_core::{GroupId, NodeId};

    use super::*;

    #[test]
    fn codec_errors_name_file_log_and_index() {
        let db = DbFile::new(PathBuf::from("/data/raftkv.sqlite"));
        let log = MemberId { group: GroupId(3), node: NodeId(4) };
        let err = db.corrupt_entry(log, 17, &CodecError::UnknownKind(9));
        let StorageError::Corrupt { location, reason } = &err else { panic!("expected Corrupt, got {err:?}") };
        assert_eq!(location, "/data/raftkv.sqlite log (group 3, node 4, index 17)");
        assert_eq!(reason, "unknown entry kind 9");
        let err = db.corrupt_journal_entry(log, 17, 5, &CodecError::UnknownKind(9));
        let StorageError::Corrupt { location, .. } = &err else { panic!("expected Corrupt, got {err:?}") };
        assert_eq!(location, "/data/raftkv.sqlite log (group 3, node 4, index 17) (journal seq 5)");
    }

    #[test]
    fn duplicated_io_errors_keep_kind_and_location() {
        let err = StorageError::Io {
            location: "f (commit)".into(),
            source: io::Error::new(io::ErrorKind::StorageFull, "full"),
        };
        let copy = duplicate(&err);
        assert_eq!(copy.to_string(), err.to_string());
        assert!(matches!(copy, StorageError::Io { source, .. } if source.kind() == io::ErrorKind::StorageFull));
    }
}
