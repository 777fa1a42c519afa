//! Per-log bounds cached in memory: the first and last index, hard state and
//! size of every member's log, loaded from the tables when the member is
//! opened and updated by the writer after each commit. Requests are validated
//! against them before anything is written.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use raftkv_core::raft::HardState;
use raftkv_core::storage::{codec, LogBounds, LogState, StorageError};
use raftkv_core::{LogIndex, MemberId};
use sqlx::SqliteConnection;

use crate::error::DbFile;
use crate::records;

/// The `(grp, node)` key columns of a member's log in the shared tables.
/// Only equality matters for them, so ids above `i64::MAX` keep their bit
/// pattern.
pub(crate) fn key_columns(log: MemberId) -> (i64, i64) {
    (i64::from_ne_bytes(log.group.0.to_ne_bytes()), i64::from_ne_bytes(log.node.0.to_ne_bytes()))
}

/// What the store holds for one log, mirrored from the committed tables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LogMeta {
    /// Last purged index; the first stored index is `purged + 1`.
    pub(crate) purged: u64,
    /// Last stored index, or `purged` when the log is empty.
    pub(crate) last: u64,
    /// The saved hard state (`None` until one is saved).
    pub(crate) hard_state: Option<HardState>,
    /// Sum of the stored entry values' lengths.
    pub(crate) entry_bytes: u64,
}

impl LogMeta {
    /// The index bounds, for the log's index rules.
    pub(crate) fn bounds(&self) -> LogBounds {
        LogBounds { purged: self.purged, last: self.last }
    }

    pub(crate) fn state(&self) -> LogState {
        self.bounds().state(self.hard_state.unwrap_or_default())
    }

    /// Bytes of stored entry values plus the stored hard state record.
    pub(crate) fn size_bytes(&self) -> u64 {
        self.entry_bytes + self.hard_state.map_or(0, |hs| codec::encode_hard_state(&hs).len() as u64)
    }

    /// Checks that every index in `[from, to)` is stored (`from < to`).
    pub(crate) fn check_range(&self, from: LogIndex, to: LogIndex) -> Result<(), StorageError> {
        self.bounds().check_range(from, to)
    }
}

/// The cached bounds of every log opened through `SqliteStorage::member`.
#[derive(Debug, Default)]
pub(crate) struct Bounds {
    logs: Mutex<HashMap<MemberId, LogMeta>>,
}

impl Bounds {
    fn lock(&self) -> MutexGuard<'_, HashMap<MemberId, LogMeta>> {
        self.logs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn get(&self, log: MemberId) -> Option<LogMeta> {
        self.lock().get(&log).copied()
    }

    /// Registers a freshly loaded log unless it is known already (then the
    /// cached copy, which the writer keeps current, stays).
    pub(crate) fn insert_if_absent(&self, log: MemberId, meta: LogMeta) {
        self.lock().entry(log).or_insert(meta);
    }

    /// The current bounds of the given logs (those known).
    pub(crate) fn snapshot(&self, logs: impl IntoIterator<Item = MemberId>) -> HashMap<MemberId, LogMeta> {
        let map = self.lock();
        logs.into_iter().filter_map(|log| map.get(&log).map(|meta| (log, *meta))).collect()
    }

    /// The logs whose bounds are cached.
    pub(crate) fn logs(&self) -> Vec<MemberId> {
        self.lock().keys().copied().collect()
    }

    /// Publishes the bounds after a commit.
    pub(crate) fn publish(&self, metas: HashMap<MemberId, LogMeta>) {
        self.lock().extend(metas);
    }
}

/// Entries of one log in both tables, a journal row replacing a `log` row
/// with the same index (`?1` = grp, `?2` = node): MIN, MAX, COUNT, COUNT
/// DISTINCT of the indices and the total value bytes. One statement, so one
/// snapshot even if the writer checkpoints meanwhile.
const LOAD_SQL: &str = "SELECT MIN(idx), MAX(idx), COUNT(*), COUNT(DISTINCT idx), COALESCE(SUM(LENGTH(value)), 0) \
     FROM (SELECT idx, value FROM log WHERE grp = ?1 AND node = ?2 \
             AND idx NOT IN (SELECT idx FROM journal WHERE grp = ?1 AND node = ?2) \
           UNION ALL SELECT idx, value FROM journal WHERE grp = ?1 AND node = ?2)";

/// Reads the bounds of `log` from the tables (`log` and the journal), checking
/// that its entries are contiguous from `purged + 1` and that its meta record
/// decodes and agrees with its `purged` column.
pub(crate) async fn load(conn: &mut SqliteConnection, db: &DbFile, log: MemberId) -> Result<LogMeta, StorageError> {
    let (grp, node) = key_columns(log);
    let row: Option<(Option<Vec<u8>>, i64)> =
        sqlx::query_as("SELECT hard_state, purged FROM meta WHERE grp = ? AND node = ?")
            .bind(grp)
            .bind(node)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| db.sqlx("reading the meta table", e))?;
    let (hard_state, purged) = match row {
        None => (None, 0),
        Some((None, _)) => return Err(db.corrupt_meta(log, "the meta record is missing".to_owned())),
        Some((Some(record), column)) => {
            let (hard_state, purged) = records::decode_meta(log, &record).map_err(|e| db.corrupt_meta(log, e))?;
            if i64::try_from(purged).ok() != Some(column) {
                return Err(db.corrupt_meta(log, format!("purged index {column}, but its record says {purged}")));
            }
            (hard_state, purged)
        }
    };

    let (min, max, count, distinct, bytes): (Option<i64>, Option<i64>, i64, i64, i64) = sqlx::query_as(LOAD_SQL)
        .bind(grp)
        .bind(node)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| db.sqlx("reading the log table", e))?;

    let mut meta = LogMeta { purged, last: purged, hard_state, entry_bytes: u64::try_from(bytes).unwrap_or_default() };
    if let (Some(min), Some(max)) = (min, max) {
        let index = |v: i64| u64::try_from(v).map_err(|_| db.corrupt_log(log, 0, format!("negative index {v}")));
        let (min, max) = (index(min)?, index(max)?);
        if min != meta.bounds().first() {
            let reason = format!("first stored entry is {min} but the last purged index is {purged}");
            return Err(db.corrupt_log(log, min, reason));
        }
        let expected = max - min + 1;
        if count != distinct {
            let reason = format!("{count} entries stored between {min} and {max}, {distinct} distinct indices");
            return Err(db.corrupt_log(log, max, reason));
        }
        if u64::try_from(count).ok() != Some(expected) {
            let reason = format!("{count} entries stored between {min} and {max}: some are missing");
            return Err(db.corrupt_log(log, max, reason));
        }
        meta.last = max;
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_checks_report_compacted_and_unavailable() {
        let meta = LogMeta { purged: 4, last: 10, ..LogMeta::default() };
        assert!(meta.check_range(LogIndex(5), LogIndex(11)).is_ok());
        assert!(matches!(
            meta.check_range(LogIndex(4), LogIndex(6)),
            Err(StorageError::Compacted { index: LogIndex(4), first: LogIndex(5) })
        ));
        assert!(matches!(
            meta.check_range(LogIndex(9), LogIndex(13)),
            Err(StorageError::Unavailable { index: LogIndex(11), last: LogIndex(10) })
        ));
        assert!(matches!(
            meta.check_range(LogIndex(15), LogIndex(16)),
            Err(StorageError::Unavailable { index: LogIndex(15), last: LogIndex(10) })
        ));
    }

    #[test]
    fn state_and_size_of_an_empty_purged_log() {
        let meta = LogMeta { purged: 8, last: 8, ..LogMeta::default() };
        let state = meta.state();
        assert_eq!((state.first_index, state.last_index), (LogIndex(9), LogIndex(8)));
        assert_eq!(meta.size_bytes(), 0);
        let saved = LogMeta { hard_state: Some(HardState::default()), ..meta };
        assert_eq!(saved.size_bytes(), codec::encode_hard_state(&HardState::default()).len() as u64);
    }

    #[test]
    fn log_ids_keep_their_bits_as_keys() {
        let log = MemberId::new(raftkv_core::GroupId(u64::MAX), raftkv_core::NodeId(2));
        assert_eq!(key_columns(log), (-1, 2));
        assert_eq!(log.to_string(), "group 18446744073709551615, node 2");
    }
}
