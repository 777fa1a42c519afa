//! The shared append-only journal (`raft_journal`).
//!
//! Appends of every log go to one table keyed by a global sequence number, so
//! that a group commit touching many logs dirties a few pages at the end of
//! one B-tree instead of one leaf page per log in `raft_log`. A row is
//! `group u64 LE, node u64 LE, index u64 LE` (24 bytes, [`ENTRY_KEY_BYTES`])
//! followed by the entry record of
//! [`codec::encode_entry`](raftkv_core::storage::codec::encode_entry).
//!
//! A checkpoint ([`checkpoint`]) moves every row into `raft_log`, in sequence
//! order, and empties the journal; the writer runs one at the start of a batch
//! once the journal holds [`JOURNAL_CHECKPOINT`] rows, and the storage runs
//! one when it opens. Readers merge both tables: an entry is in exactly one
//! of them (truncations and purges remove from both), and the journal wins if
//! both hold the same key.

use std::collections::BTreeMap;
use std::path::Path;

use raftkv_core::storage::StorageError;
use raftkv_core::{GroupId, MemberId, NodeId};
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};

use crate::error::ResultExt;
use crate::keys::{log_key, ENTRY_KEY_BYTES, LOG};

/// Key of [`JOURNAL`]: the global sequence number of the append.
pub(crate) type JournalKey = u64;
/// [`JOURNAL`] opened for writing.
pub(crate) type JournalTable<'txn> = redb::Table<'txn, JournalKey, &'static [u8]>;

/// Appended entries of every log, not yet moved to `raft_log`.
pub(crate) const JOURNAL: TableDefinition<JournalKey, &[u8]> = TableDefinition::new("raft_journal");

/// Journal rows that trigger a checkpoint at the start of the next batch.
pub(crate) const JOURNAL_CHECKPOINT: u64 = 2048;

/// Prefix length of a journal row: `(group, node, index)`.
const PREFIX: usize = ENTRY_KEY_BYTES as usize;

/// The journal row of entry `index` of `log` with entry record `record`.
pub(crate) fn encode_row(log: MemberId, index: u64, record: &[u8]) -> Vec<u8> {
    let mut row = Vec::with_capacity(PREFIX + record.len());
    row.extend_from_slice(&log.group.0.to_le_bytes());
    row.extend_from_slice(&log.node.0.to_le_bytes());
    row.extend_from_slice(&index.to_le_bytes());
    row.extend_from_slice(record);
    row
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// The log, index and entry record of a journal row; `None` if it is shorter than its prefix.
pub(crate) fn decode_row(row: &[u8]) -> Option<(MemberId, u64, &[u8])> {
    if row.len() < PREFIX {
        return None;
    }
    Some((MemberId::new(GroupId(u64_at(row, 0)), NodeId(u64_at(row, 8))), u64_at(row, 16), &row[PREFIX..]))
}

/// A damaged journal row.
pub(crate) fn corrupt_row(file: &Path, seq: u64, row: &[u8]) -> StorageError {
    StorageError::Corrupt {
        location: format!("{} journal (journal seq {seq})", file.display()),
        reason: format!(
            "journal row is {} bytes, shorter than its {PREFIX}-byte (group, node, index) prefix",
            row.len()
        ),
    }
}

/// A journaled entry of one log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Journaled {
    /// Sequence number of its row.
    pub seq: u64,
    /// Its entry record.
    pub record: Vec<u8>,
}

/// The journaled entries of `log` with index in `from..=to`, by index (a
/// later row wins over an earlier one for the same index).
pub(crate) fn log_entries(
    table: &impl ReadableTable<JournalKey, &'static [u8]>,
    file: &Path,
    log: MemberId,
    from: u64,
    to: u64,
) -> Result<BTreeMap<u64, Journaled>, StorageError> {
    let mut out = BTreeMap::new();
    for item in table.iter().at(file, "read journal")? {
        let (key, value) = item.at(file, "read journal")?;
        let (seq, row) = (key.value(), value.value());
        let (owner, index, record) = decode_row(row).ok_or_else(|| corrupt_row(file, seq, row))?;
        if owner == log && (from..=to).contains(&index) {
            out.insert(index, Journaled { seq, record: record.to_vec() });
        }
    }
    Ok(out)
}

/// The first and last journaled index of `log`, if the journal holds any of its entries.
pub(crate) fn log_range(
    table: &impl ReadableTable<JournalKey, &'static [u8]>,
    file: &Path,
    log: MemberId,
) -> Result<Option<(u64, u64)>, StorageError> {
    let mut range: Option<(u64, u64)> = None;
    for item in table.iter().at(file, "read journal")? {
        let (key, value) = item.at(file, "read journal")?;
        let (seq, row) = (key.value(), value.value());
        let (owner, index, _) = decode_row(row).ok_or_else(|| corrupt_row(file, seq, row))?;
        if owner == log {
            range = Some(range.map_or((index, index), |(first, last)| (first.min(index), last.max(index))));
        }
    }
    Ok(range)
}

/// Removes the journaled entries of `log` with index in `from..=to`; returns
/// their bytes (rows are prefix plus record, as counted in `log_bytes`).
pub(crate) fn remove(
    table: &mut JournalTable<'_>,
    file: &Path,
    log: MemberId,
    from: u64,
    to: u64,
) -> Result<u64, StorageError> {
    let mut removed = 0u64;
    table
        .retain(|_, row| match decode_row(row) {
            Some((owner, index, _)) if owner == log && (from..=to).contains(&index) => {
                removed += row.len() as u64;
                false
            }
            // A damaged row is kept, to be reported by readers and the next checkpoint.
            _ => true,
        })
        .at(file, "remove journal entries")?;
    Ok(removed)
}

/// The sequence number of the next journal row: one past the last key.
pub(crate) fn next_seq(
    table: &impl ReadableTable<JournalKey, &'static [u8]>,
    file: &Path,
) -> Result<u64, StorageError> {
    let last = table.last().at(file, "read journal")?;
    Ok(last.map_or(0, |(key, _)| key.value().saturating_add(1)))
}

/// Moves every journal row into `raft_log` in sequence order (so a later row
/// overwrites an earlier one with the same key) and empties the journal, in
/// `txn`, if it holds at least `threshold` rows. Returns whether it did.
pub(crate) fn checkpoint(txn: &WriteTransaction, file: &Path, threshold: u64) -> Result<bool, StorageError> {
    let rows = {
        let journal = txn.open_table(JOURNAL).at(file, "open journal table")?;
        let len = journal.len().at(file, "read journal")?;
        if len == 0 || len < threshold {
            return Ok(false);
        }
        let mut rows = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        for item in journal.iter().at(file, "read journal")? {
            let (key, value) = item.at(file, "read journal")?;
            rows.push((key.value(), value.value().to_vec()));
        }
        rows
    };
    {
        let mut log_table = txn.open_table(LOG).at(file, "open log table")?;
        for (seq, row) in &rows {
            let (log, index, record) = decode_row(row).ok_or_else(|| corrupt_row(file, *seq, row))?;
            log_table.insert(log_key(log, index), record).at(file, "checkpoint journal")?;
        }
    }
    txn.delete_table(JOURNAL).at(file, "clear journal")?;
    txn.open_table(JOURNAL).at(file, "create journal table")?;
    tracing::debug!(rows = rows.len(), "redb journal checkpoint");
    Ok(true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_short_rows_are_refused() {
        let log = MemberId::new(GroupId(7), NodeId(9));
        let row = encode_row(log, 42, b"record");
        assert_eq!(row.len(), PREFIX + 6);
        assert_eq!(decode_row(&row), Some((log, 42, &b"record"[..])));
        assert_eq!(decode_row(&row[..PREFIX - 1]), None);
        let err = corrupt_row(Path::new("/x/raftkv.redb"), 5, &row[..3]);
        assert!(err.to_string().contains("/x/raftkv.redb journal (journal seq 5)"), "{err}");
    }
}
