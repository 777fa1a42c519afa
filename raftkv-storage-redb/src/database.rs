//! Opening the database file with its write-ahead log, and reopening it in
//! place after a failed write.
//!
//! redb latches an I/O failure: after one, every operation of that
//! [`Database`] fails until it is closed and opened again. The writer does
//! just that after a failed commit or checkpoint ([`DbSlot::reopen`]): it
//! waits for the reads in progress, drops the database, and opens the file
//! again exactly as [`open_database`] does at start — redb recovers its
//! last durable commit and the write-ahead log replays every batch after it
//! — so the store is back to what was acknowledged, without the failed
//! batch, whose record the writer has taken back first.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use raftkv_core::storage::StorageError;
use raftkv_core::MemberId;
use redb::{Database, ReadableDatabase};

use crate::error::ResultExt;
use crate::journal::{self, JOURNAL};
use crate::keys::{LOG, META};
use crate::options::{RedbOptions, SyncMode};
use crate::storage::SNAPSHOTS_DIR_NAME;
use crate::tables::{load_bounds, read_meta};
use crate::wal::{self, stored, Recorded, Stored, Wal, WalState, WAL_FILE_NAME};
use crate::writer::{apply_ops, BoundsMap, Tables};

/// Longest a reopen waits for the reads in progress on the old database.
const READS_DRAIN: Duration = Duration::from_secs(30);

/// The open database, shared by readers and the writer; the writer replaces
/// it after a failed write.
#[derive(Debug)]
pub(crate) struct DbSlot {
    db: RwLock<Result<Arc<Database>, String>>,
}

impl DbSlot {
    pub(crate) fn new(db: Database) -> Self {
        Self { db: RwLock::new(Ok(Arc::new(db))) }
    }

    /// The database, or an error naming `file` if the last reopen failed.
    /// Waits while a reopen is in progress.
    pub(crate) fn get(&self, file: &Path) -> Result<Arc<Database>, StorageError> {
        match &*self.db.read().unwrap_or_else(PoisonError::into_inner) {
            Ok(db) => Ok(db.clone()),
            Err(why) => Err(StorageError::Io {
                location: format!("{} (reopen after a failed write)", file.display()),
                source: std::io::Error::other(format!("the database is not open: {why}; a later write retries")),
            }),
        }
    }

    /// Closes the database and opens it again (see the module docs), then
    /// reloads the bounds of every log in `bounds`. Returns the new log.
    pub(crate) fn reopen(
        &self,
        dir: &Path,
        file: &Path,
        options: RedbOptions,
        bounds: &BoundsMap,
    ) -> Result<Wal, StorageError> {
        let mut slot = self.db.write().unwrap_or_else(PoisonError::into_inner);
        if let Ok(old) = std::mem::replace(&mut *slot, Err("it is being reopened".to_owned())) {
            // The file stays locked while any handle of the old database lives.
            wait_for_readers(old, file)?;
        }
        let opened = open_database(dir, file, options).and_then(|(db, wal)| {
            let loaded = reload_bounds(&db, file, bounds)?;
            Ok((db, wal, loaded))
        });
        match opened {
            Ok((db, wal, loaded)) => {
                bounds.lock().unwrap_or_else(PoisonError::into_inner).extend(loaded);
                *slot = Ok(Arc::new(db));
                tracing::info!(file = %file.display(), "reopened the database after a failed write");
                Ok(wal)
            }
            Err(e) => {
                *slot = Err(e.to_string());
                Err(e)
            }
        }
    }
}

/// Drops `db` once the reads holding it are done.
fn wait_for_readers(mut db: Arc<Database>, file: &Path) -> Result<(), StorageError> {
    let start = Instant::now();
    loop {
        match Arc::try_unwrap(db) {
            Ok(db) => {
                drop(db);
                return Ok(());
            }
            Err(shared) if start.elapsed() < READS_DRAIN => {
                db = shared;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(_) => {
                return Err(StorageError::Backend(format!(
                    "{}: reads still hold the database after {READS_DRAIN:?}; cannot reopen it",
                    file.display()
                )))
            }
        }
    }
}

/// The bounds, as stored, of every log in `bounds`.
fn reload_bounds(
    db: &Database,
    file: &Path,
    bounds: &BoundsMap,
) -> Result<HashMap<MemberId, raftkv_core::storage::LogBounds>, StorageError> {
    let logs: Vec<MemberId> = bounds.lock().unwrap_or_else(PoisonError::into_inner).keys().copied().collect();
    let txn = db.begin_read().at(file, "begin read transaction")?;
    let meta_table = txn.open_table(META).at(file, "open meta table")?;
    let log_table = txn.open_table(LOG).at(file, "open log table")?;
    let journal_table = txn.open_table(JOURNAL).at(file, "open journal table")?;
    let mut out = HashMap::new();
    for log in logs {
        let meta = read_meta(&meta_table, file, log)?;
        out.insert(log, load_bounds(&log_table, &journal_table, &meta, file, log)?);
    }
    Ok(out)
}

/// Creates the directories, opens the file, creates the tables and replays
/// the write-ahead log.
pub(crate) fn open_database(dir: &Path, file: &Path, options: RedbOptions) -> Result<(Database, Wal), StorageError> {
    let snapshots = dir.join(SNAPSHOTS_DIR_NAME);
    std::fs::create_dir_all(&snapshots)
        .map_err(|source| StorageError::Io { location: snapshots.display().to_string(), source })?;
    refuse_emptied_file(file, &snapshots)?;
    let db = Database::builder()
        .set_check_integrity_on_open(options.check_integrity_on_open)
        .set_cache_size(options.cache_bytes)
        .create(file)
        .at(file, "open database")?;
    create_tables(&db, file)?;
    let wal = replay_wal(&db, file, &dir.join(WAL_FILE_NAME), options)?;
    Ok((db, wal))
}

/// Applies `pending` batches in order, through the writer's validation, to
/// the tables open in `txn`; returns the number of the last one. A batch
/// that does not apply means the log and the database disagree.
fn apply_recorded(
    txn: &redb::WriteTransaction,
    file: &Path,
    wal_path: &Path,
    pending: Vec<Recorded>,
) -> Result<Option<u64>, StorageError> {
    let Some(last) = pending.last().map(|(seq, _)| *seq) else { return Ok(None) };
    let mut log_table = txn.open_table(LOG).at(file, "open log table")?;
    let mut meta_table = txn.open_table(META).at(file, "open meta table")?;
    let mut journal_table = txn.open_table(JOURNAL).at(file, "open journal table")?;
    let mut bounds = HashMap::new();
    for (log, _) in pending.iter().flat_map(|(_, ops)| ops) {
        if !bounds.contains_key(log) {
            let meta = read_meta(&meta_table, file, *log)?;
            bounds.insert(*log, load_bounds(&log_table, &journal_table, &meta, file, *log)?);
        }
    }
    let mut seq = journal::next_seq(&journal_table, file)?;
    let mut tables = Tables { log: &mut log_table, meta: &mut meta_table, journal: &mut journal_table };
    for (batch, ops) in pending {
        let (results, _) = apply_ops(&mut tables, file, &mut bounds, ops, &mut seq, None)?;
        if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
            return Err(StorageError::Corrupt {
                location: format!("{} (batch {batch})", wal_path.display()),
                reason: format!("a logged write does not apply to the database {}: {e}", file.display()),
            });
        }
    }
    Ok(Some(last))
}

/// Upgrades a database whose log is in format 1 (older versions): replays
/// that log and commits, zeroes it, then switches the state table to
/// format 2 in a second commit. A crash in between repeats the step it
/// interrupted.
fn upgrade_format_1(db: &Database, file: &Path, wal_path: &Path) -> Result<(), StorageError> {
    let txn = db.begin_write().at(file, "begin write transaction")?;
    let Stored::Format1 { applied, epoch } = stored::read(&txn, file)? else {
        return Ok(());
    };
    let pending = Wal::read_format1(wal_path, epoch, applied)?;
    let batches = pending.len();
    let applied = apply_recorded(&txn, file, wal_path, pending)?.unwrap_or(applied);
    stored::set_applied_v1(&txn, file, applied)?;
    txn.commit().at(file, "commit replayed writes")?;
    Wal::erase_file(wal_path)?;
    let txn = db.begin_write().at(file, "begin write transaction")?;
    stored::upgrade(&txn, file, WalState { applied, epoch: wal::new_epoch(), prev_epoch: epoch })?;
    txn.commit().at(file, "commit write-ahead log format 2")?;
    tracing::info!(file = %wal_path.display(), batches, "upgraded the write-ahead log from format 1 to 2");
    Ok(())
}

/// Applies the write-ahead log's batches that came after the database's
/// last durable commit, in order and through the writer's validation,
/// commits them durably with the epochs of a new generation, and starts it.
fn replay_wal(db: &Database, file: &Path, path: &Path, options: RedbOptions) -> Result<Wal, StorageError> {
    upgrade_format_1(db, file, path)?;
    let txn = db.begin_write().at(file, "begin write transaction")?;
    let Stored::Current(state) = stored::read(&txn, file)? else {
        return Err(StorageError::Backend(format!("{}: the write-ahead log was not upgraded", file.display())));
    };
    let sync = options.sync == SyncMode::Always;
    let (mut wal, pending) = Wal::open(path, file, state, sync, options.wal_checkpoint_bytes)?;
    let batches = pending.len();
    let last = apply_recorded(&txn, file, path, pending)?.unwrap_or(state.applied);
    // A new generation of the log starts now: its epoch is durable first.
    let next_epoch = wal::new_epoch();
    stored::write(&txn, file, WalState { applied: last, epoch: next_epoch, prev_epoch: state.epoch })?;
    txn.commit().at(file, "commit replayed writes")?;
    if batches > 0 {
        tracing::info!(file = %path.display(), batches, "replayed the write-ahead log");
    }
    wal.reset(next_epoch, state.epoch, last + 1)?;
    Ok(wal)
}

/// redb initializes an empty file as a new database. That is right for a
/// file whose creation crashed, but not for one that was opened before (a
/// member's snapshot directory exists, made after a successful open): that
/// one was truncated, and starting with an empty log would forget votes.
fn refuse_emptied_file(file: &Path, snapshots: &Path) -> Result<(), StorageError> {
    let empty = std::fs::metadata(file).is_ok_and(|m| m.len() == 0);
    if !empty {
        return Ok(());
    }
    let mut members = std::fs::read_dir(snapshots)
        .map_err(|source| StorageError::Io { location: snapshots.display().to_string(), source })?;
    if members.next().is_some() {
        return Err(StorageError::Corrupt {
            location: file.display().to_string(),
            reason: format!("file is empty (truncated?) although {} holds member directories", snapshots.display()),
        });
    }
    Ok(())
}

/// Creates the tables if they do not exist, so that readers can always open
/// them, and checkpoints the journal: moves every entry it holds into
/// `raft_log`, whatever its size. (The log state table is the replay's.)
pub(crate) fn create_tables(db: &Database, file: &Path) -> Result<(), StorageError> {
    let txn = db.begin_write().at(file, "begin write transaction")?;
    txn.open_table(LOG).at(file, "create log table")?;
    txn.open_table(META).at(file, "create meta table")?;
    txn.open_table(JOURNAL).at(file, "create journal table")?;
    journal::checkpoint(&txn, file, 0)?;
    txn.commit().at(file, "create tables")
}

/// Opens the tables of a new in-memory database and its log, for tests.
#[cfg(test)]
pub(crate) fn replay_for_test(db: &Database, file: &Path, wal_path: &Path) -> Result<Wal, StorageError> {
    replay_wal(db, file, wal_path, RedbOptions::default())
}
