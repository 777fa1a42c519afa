//! Where the database records its place in the write-ahead log: the table
//! `raft_wal`.
//!
//! Format 2 (`&str → &[u8]`):
//! - `"format"`: `[2]`;
//! - `"applied"`: number of the last batch the database holds (u64 LE;
//!   every batch sets it in its own transaction);
//! - `"epochs"`: the log's current epoch and the one before (2 × u64 LE;
//!   set by every checkpoint, in its durable commit).
//!
//! Format 1, written by older versions, was `&str → u64` (`"applied"`,
//! `"epoch"`) with a log without file header; opening such a database
//! upgrades it (see `super::legacy`). As the value type changed, an older
//! version refuses a format-2 database (a table type mismatch) instead of
//! misreading its log.

use std::path::Path;

use raftkv_core::storage::StorageError;
use redb::{ReadableTable, TableDefinition, TableError, WriteTransaction};

use crate::error::{RedbError, ResultExt};

/// The log state table, format 2.
pub(crate) const WAL_STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_wal");
/// The same table as format 1 wrote it.
pub(crate) const WAL_STATE_V1: TableDefinition<&str, u64> = TableDefinition::new("raft_wal");

/// The log format this version writes.
pub(crate) const FORMAT: u8 = 2;

const FORMAT_KEY: &str = "format";
const APPLIED_KEY: &str = "applied";
const EPOCHS_KEY: &str = "epochs";

/// The database's place in the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct WalState {
    /// Number of the last batch the database holds.
    pub applied: u64,
    /// Epoch of the log's current generation.
    pub epoch: u64,
    /// Epoch of the generation before it.
    pub prev_epoch: u64,
}

/// What `raft_wal` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stored {
    /// Format 2 (or a new database).
    Current(WalState),
    /// Format 1: the last batch applied and the log's epoch.
    Format1 {
        /// Number of the last batch the database holds.
        applied: u64,
        /// Epoch of the log.
        epoch: u64,
    },
}

fn corrupt(file: &Path, reason: String) -> StorageError {
    StorageError::Corrupt { location: format!("{} table raft_wal", file.display()), reason }
}

fn u64s<const N: usize>(file: &Path, key: &str, bytes: &[u8]) -> Result<[u64; N], StorageError> {
    if bytes.len() != 8 * N {
        return Err(corrupt(file, format!("value of {key:?} is {} bytes, expected {}", bytes.len(), 8 * N)));
    }
    let mut out = [0u64; N];
    for (value, chunk) in out.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        *value = u64::from_le_bytes(word);
    }
    Ok(out)
}

/// Reads the log state in `txn` (creating the table of a new database).
pub(crate) fn read(txn: &WriteTransaction, file: &Path) -> Result<Stored, StorageError> {
    let table = match txn.open_table(WAL_STATE) {
        Ok(table) => table,
        Err(TableError::TableTypeMismatch { .. }) => {
            let table = txn.open_table(WAL_STATE_V1).at(file, "open wal state table")?;
            let applied = table.get(APPLIED_KEY).at(file, "read wal state")?.map_or(0, |v| v.value());
            let epoch = table.get("epoch").at(file, "read wal state")?.map_or(0, |v| v.value());
            return Ok(Stored::Format1 { applied, epoch });
        }
        Err(e) => return Err(e.into_storage(file, "open wal state table")),
    };
    if let Some(format) = table.get(FORMAT_KEY).at(file, "read wal state")? {
        if format.value() != [FORMAT] {
            return Err(corrupt(
                file,
                format!(
                    "write-ahead log format {:?} is not supported (this version reads format {FORMAT})",
                    format.value()
                ),
            ));
        }
    }
    let applied = match table.get(APPLIED_KEY).at(file, "read wal state")? {
        Some(v) => u64s::<1>(file, APPLIED_KEY, v.value())?[0],
        None => 0,
    };
    let [epoch, prev_epoch] = match table.get(EPOCHS_KEY).at(file, "read wal state")? {
        Some(v) => u64s::<2>(file, EPOCHS_KEY, v.value())?,
        None => [0, 0],
    };
    Ok(Stored::Current(WalState { applied, epoch, prev_epoch }))
}

/// Writes the whole state (format, applied batch, epochs) in `txn`.
pub(crate) fn write(txn: &WriteTransaction, file: &Path, state: WalState) -> Result<(), StorageError> {
    let mut table = txn.open_table(WAL_STATE).at(file, "open wal state table")?;
    table.insert(FORMAT_KEY, [FORMAT].as_slice()).at(file, "write wal state")?;
    table.insert(APPLIED_KEY, state.applied.to_le_bytes().as_slice()).at(file, "write wal state")?;
    let mut epochs = [0u8; 16];
    epochs[..8].copy_from_slice(&state.epoch.to_le_bytes());
    epochs[8..].copy_from_slice(&state.prev_epoch.to_le_bytes());
    table.insert(EPOCHS_KEY, epochs.as_slice()).at(file, "write wal state")?;
    Ok(())
}

/// Records, in `txn`, that it holds batch `seq`.
pub(crate) fn set_applied(txn: &WriteTransaction, file: &Path, seq: u64) -> Result<(), StorageError> {
    let mut table = txn.open_table(WAL_STATE).at(file, "open wal state table")?;
    table.insert(APPLIED_KEY, seq.to_le_bytes().as_slice()).at(file, "write wal state")?;
    Ok(())
}

/// Replaces, in `txn`, a format-1 table by a format-2 one holding `state`.
pub(crate) fn upgrade(txn: &WriteTransaction, file: &Path, state: WalState) -> Result<(), StorageError> {
    txn.delete_table(WAL_STATE_V1).at(file, "delete format-1 wal state table")?;
    write(txn, file, state)
}

/// Records, in `txn`, that a format-1 database holds batch `seq`.
pub(crate) fn set_applied_v1(txn: &WriteTransaction, file: &Path, seq: u64) -> Result<(), StorageError> {
    let mut table = txn.open_table(WAL_STATE_V1).at(file, "open wal state table")?;
    table.insert(APPLIED_KEY, seq).at(file, "write wal state")?;
    Ok(())
}
