//! The redb tables shared by every Raft log in one database file.
//!
//! - `raft_log`: `(group, node, index)` → entry record
//!   ([`codec::encode_entry`](raftkv_core::storage::codec::encode_entry)).
//!   Tuple keys sort by group, then node, then index, so each log is one
//!   contiguous key range.
//! - `raft_meta`: `(group, node)` → `(last purged index, stored log bytes,
//!   hard state record or none)`; the hard state record is
//!   [`codec::encode_hard_state`](raftkv_core::storage::codec::encode_hard_state).
//!
//! - `raft_journal` (see [`crate::journal`]): appended entries of every log,
//!   keyed by a global sequence number, until a checkpoint moves them into
//!   `raft_log`. A log's entries may be partly in each; readers merge both.
//!
//! A log's last index is its greatest stored index (in `raft_log` or the
//! journal), or the last purged index when it holds no entry.

use std::path::Path;

use raftkv_core::storage::{codec, LogBounds, StorageError};
use raftkv_core::{LogIndex, MemberId};
use redb::ReadableTable;

use crate::error::ResultExt;
use crate::journal::{self, JournalKey};
use crate::keys::{log_key, meta_key, LogKey, MetaKey, MetaTable, MetaValue};

/// One row of [`META`](crate::keys::META), owned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MetaRow {
    /// Last purged index (0 if never purged).
    pub purged: u64,
    /// Bytes of the stored entries: records plus [`ENTRY_KEY_BYTES`](crate::keys::ENTRY_KEY_BYTES) each.
    pub log_bytes: u64,
    /// The encoded hard state, if one was saved.
    pub hard_state: Option<Vec<u8>>,
}

impl MetaRow {
    /// Bytes of log and hard state, as reported by `size_bytes`.
    pub(crate) fn size_bytes(&self) -> u64 {
        self.log_bytes + self.hard_state.as_ref().map_or(0, |hs| hs.len() as u64)
    }
}

/// Reads the meta row of `log` (the default row if none was written).
pub(crate) fn read_meta(
    table: &impl ReadableTable<MetaKey, MetaValue>,
    file: &Path,
    log: MemberId,
) -> Result<MetaRow, StorageError> {
    let Some(guard) = table.get(meta_key(log)).at(file, "read log metadata")? else {
        return Ok(MetaRow::default());
    };
    let (purged, log_bytes, hard_state) = guard.value();
    Ok(MetaRow { purged, log_bytes, hard_state: hard_state.map(<[u8]>::to_vec) })
}

/// Writes the meta row of `log`.
pub(crate) fn write_meta(
    table: &mut MetaTable<'_>,
    file: &Path,
    log: MemberId,
    row: &MetaRow,
) -> Result<(), StorageError> {
    table
        .insert(meta_key(log), (row.purged, row.log_bytes, row.hard_state.as_deref()))
        .at(file, "write log metadata")?;
    Ok(())
}

/// The first and last index of `log` in `raft_log`, if it holds any entry there.
fn log_table_range(
    table: &impl ReadableTable<LogKey, &'static [u8]>,
    file: &Path,
    log: MemberId,
) -> Result<Option<(u64, u64)>, StorageError> {
    let mut range = table.range(log_key(log, 0)..=log_key(log, u64::MAX)).at(file, "read log bounds")?;
    let Some(first) = range.next() else { return Ok(None) };
    let first = first.at(file, "read log bounds")?.0.value().2;
    let last = match range.next_back() {
        Some(last) => last.at(file, "read log bounds")?.0.value().2,
        None => first,
    };
    Ok(Some((first, last)))
}

/// The first and last stored index of `log` (in `raft_log` or the journal),
/// if it holds any entry.
pub(crate) fn stored_range(
    log_table: &impl ReadableTable<LogKey, &'static [u8]>,
    journal_table: &impl ReadableTable<JournalKey, &'static [u8]>,
    file: &Path,
    log: MemberId,
) -> Result<Option<(u64, u64)>, StorageError> {
    let stored = log_table_range(log_table, file, log)?;
    let journaled = journal::log_range(journal_table, file, log)?;
    Ok(match (stored, journaled) {
        (Some((f1, l1)), Some((f2, l2))) => Some((f1.min(f2), l1.max(l2))),
        (one, other) => one.or(other),
    })
}

/// Decodes every stored entry of `log` (in `raft_log` and the journal),
/// so that a damaged one is reported when the member opens rather than when
/// it is read.
pub(crate) fn verify_entries(
    log_table: &impl ReadableTable<LogKey, &'static [u8]>,
    journal_table: &impl ReadableTable<JournalKey, &'static [u8]>,
    file: &Path,
    log: MemberId,
) -> Result<(), StorageError> {
    for item in log_table.range(log_key(log, 0)..=log_key(log, u64::MAX)).at(file, "read log entries")? {
        let (key, value) = item.at(file, "read log entries")?;
        let index = key.value().2;
        codec::decode_entry(LogIndex(index), value.value())
            .map_err(|e| crate::error::corrupt_entry(file, log, index, e))?;
    }
    for (index, row) in journal::log_entries(journal_table, file, log, 0, u64::MAX)? {
        codec::decode_entry(LogIndex(index), &row.record)
            .map_err(|e| crate::error::corrupt_journal_entry(file, log, index, row.seq, e))?;
    }
    Ok(())
}

/// The bounds of `log` as stored (in `raft_log` and the journal), checked for consistency.
pub(crate) fn load_bounds(
    log_table: &impl ReadableTable<LogKey, &'static [u8]>,
    journal_table: &impl ReadableTable<JournalKey, &'static [u8]>,
    meta: &MetaRow,
    file: &Path,
    log: MemberId,
) -> Result<LogBounds, StorageError> {
    let purged = meta.purged;
    match stored_range(log_table, journal_table, file, log)? {
        None => Ok(LogBounds { purged, last: purged }),
        Some((first, last)) if first == purged.saturating_add(1) => Ok(LogBounds { purged, last }),
        Some((first, _)) => Err(crate::error::corrupt_entry(
            file,
            log,
            first,
            format!("first stored entry is {first} but the last purged index is {purged}"),
        )),
    }
}
