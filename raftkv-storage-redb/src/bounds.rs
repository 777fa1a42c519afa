//! Index bounds of one log and the checks a write must pass against them,
//! kept apart from the database so that they are easy to test.

use raftkv_core::storage::{LogWrite, StorageError};
use raftkv_core::LogIndex;

/// What a log holds: entries `purged + 1 ..= last` (none when `last == purged`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LogBounds {
    /// Last purged index (0 if never purged).
    pub purged: u64,
    /// Last index: the last stored entry, or `purged` when the log is empty.
    pub last: u64,
}

/// How a valid write changes a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Remove the stored entries with index in this range (inclusive), if any.
    pub remove: Option<(u64, u64)>,
    /// The bounds once the change is applied.
    pub bounds: LogBounds,
}

impl LogBounds {
    /// First index still stored (`last + 1` when the log is empty).
    pub(crate) fn first(self) -> u64 {
        self.purged.saturating_add(1)
    }

    /// Checks `write` in the order it applies (truncation, entries, hard
    /// state); an invalid write is rejected whole.
    pub(crate) fn plan_write(self, write: &LogWrite) -> Result<Plan, StorageError> {
        let mut last = self.last;
        let mut remove = None;
        if let Some(index) = write.truncate_after {
            if index.0 < self.purged {
                return Err(StorageError::TruncateBeforeFirst { index, first: LogIndex(self.first()) });
            }
            if index.0 < last {
                remove = Some((index.0 + 1, last));
                last = index.0;
            }
        }
        for entry in &write.entries {
            if entry.index.0 != last.saturating_add(1) {
                return Err(StorageError::NotContiguous { last: LogIndex(last), got: entry.index });
            }
            last = entry.index.0;
        }
        Ok(Plan { remove, bounds: LogBounds { purged: self.purged, last } })
    }

    /// How `purge_through(index)` changes the log; `None` when it has nothing
    /// to do (`index` is already purged).
    pub(crate) fn plan_purge(self, index: LogIndex) -> Option<Plan> {
        if index.0 <= self.purged {
            return None;
        }
        let through = index.0.min(self.last);
        let remove = (through > self.purged).then_some((self.first(), through));
        Some(Plan { remove, bounds: LogBounds { purged: index.0, last: self.last.max(index.0) } })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use raftkv_core::raft::{Entry, EntryPayload};
    use raftkv_core::Term;

    use super::*;

    fn ents(range: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
        range.map(|i| Entry { term: Term(1), index: LogIndex(i), payload: EntryPayload::Blank }).collect()
    }

    fn bounds(purged: u64, last: u64) -> LogBounds {
        LogBounds { purged, last }
    }

    #[test]
    fn appends_must_follow_the_last_index() {
        let b = bounds(0, 3);
        let plan = b.plan_write(&LogWrite { entries: ents(4..=5), ..LogWrite::default() }).unwrap();
        assert_eq!(plan, Plan { remove: None, bounds: bounds(0, 5) });
        let gap = b.plan_write(&LogWrite {
            entries: vec![ents(4..=4)[0].clone(), ents(6..=6)[0].clone()],
            ..LogWrite::default()
        });
        assert!(matches!(gap, Err(StorageError::NotContiguous { last: LogIndex(4), got: LogIndex(6) })));
        let overlap = b.plan_write(&LogWrite { entries: ents(3..=3), ..LogWrite::default() });
        assert!(matches!(overlap, Err(StorageError::NotContiguous { last: LogIndex(3), got: LogIndex(3) })));
    }

    #[test]
    fn truncation_removes_the_tail_and_may_not_reach_purged_entries() {
        let b = bounds(5, 10);
        let plan =
            b.plan_write(&LogWrite { truncate_after: Some(LogIndex(7)), entries: ents(8..=8), hard_state: None });
        assert_eq!(plan.unwrap(), Plan { remove: Some((8, 10)), bounds: bounds(5, 8) });
        let past_end = b.plan_write(&LogWrite { truncate_after: Some(LogIndex(12)), ..LogWrite::default() }).unwrap();
        assert_eq!(past_end, Plan { remove: None, bounds: b });
        let to_empty = b.plan_write(&LogWrite { truncate_after: Some(LogIndex(5)), ..LogWrite::default() }).unwrap();
        assert_eq!(to_empty, Plan { remove: Some((6, 10)), bounds: bounds(5, 5) });
        let before = b.plan_write(&LogWrite { truncate_after: Some(LogIndex(4)), ..LogWrite::default() });
        assert!(matches!(before, Err(StorageError::TruncateBeforeFirst { index: LogIndex(4), first: LogIndex(6) })));
    }

    #[test]
    fn purges_inside_at_and_past_the_end() {
        let b = bounds(2, 10);
        assert_eq!(b.plan_purge(LogIndex(2)), None);
        assert_eq!(b.plan_purge(LogIndex(4)), Some(Plan { remove: Some((3, 4)), bounds: bounds(4, 10) }));
        assert_eq!(b.plan_purge(LogIndex(10)), Some(Plan { remove: Some((3, 10)), bounds: bounds(10, 10) }));
        assert_eq!(b.plan_purge(LogIndex(20)), Some(Plan { remove: Some((3, 10)), bounds: bounds(20, 20) }));
        assert_eq!(bounds(10, 10).plan_purge(LogIndex(20)), Some(Plan { remove: None, bounds: bounds(20, 20) }));
    }
}
