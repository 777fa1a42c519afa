//! The log's index rules, in one place for every [`LogStore`]: what a log
//! holds, which writes and purges are valid, and how a write that truncates
//! a conflicting suffix or a purge changes it. A store plans each change
//! with [`LogBounds`] before touching its data, so an invalid one changes
//! nothing, and applies the [`LogPlan`] it gets.
//!
//! [`LogStore`]: super::LogStore

use super::{LogState, LogWrite, StorageError};
use crate::raft::HardState;
use crate::types::LogIndex;

/// What a log holds: entries `purged + 1 ..= last` (none when `last == purged`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogBounds {
    /// Last purged index (0 if never purged).
    pub purged: u64,
    /// Last index: the last stored entry, or `purged` when the log is empty.
    pub last: u64,
}

/// How a valid write or purge changes a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogPlan {
    /// Remove the stored entries with index in this range (inclusive), if any.
    pub remove: Option<(u64, u64)>,
    /// The bounds once the change is applied.
    pub bounds: LogBounds,
}

impl LogBounds {
    /// First index still stored (`last + 1` when the log is empty).
    #[must_use]
    pub fn first(self) -> u64 {
        self.purged.saturating_add(1)
    }

    /// The [`LogState`] of a log with these bounds and `hard_state`.
    #[must_use]
    pub fn state(self, hard_state: HardState) -> LogState {
        LogState { hard_state, first_index: LogIndex(self.first()), last_index: LogIndex(self.last) }
    }

    /// Checks that every index in `[from, to)` is stored (`from < to`).
    ///
    /// # Errors
    /// [`StorageError::Compacted`] when `from` was purged,
    /// [`StorageError::Unavailable`] when `to - 1` is past the last index.
    pub fn check_range(self, from: LogIndex, to: LogIndex) -> Result<(), StorageError> {
        let first = self.first();
        if from.0 < first {
            return Err(StorageError::Compacted { index: from, first: LogIndex(first) });
        }
        if to.0.saturating_sub(1) > self.last {
            return Err(StorageError::Unavailable {
                index: LogIndex(from.0.max(self.last.saturating_add(1))),
                last: LogIndex(self.last),
            });
        }
        Ok(())
    }

    /// Checks `write` in the order it applies (truncation, entries, hard
    /// state); an invalid write is rejected whole.
    ///
    /// # Errors
    /// [`StorageError::TruncateBeforeFirst`] for a truncation into purged
    /// entries, [`StorageError::NotContiguous`] for entries that do not
    /// follow the (possibly truncated) last index one by one.
    pub fn plan_write(self, write: &LogWrite) -> Result<LogPlan, StorageError> {
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
        Ok(LogPlan { remove, bounds: LogBounds { purged: self.purged, last } })
    }

    /// How `purge_through(index)` changes the log; `None` when it has nothing
    /// to do (`index` is already purged). A purge past the last index empties
    /// the log and moves its last index up to `index`.
    #[must_use]
    pub fn plan_purge(self, index: LogIndex) -> Option<LogPlan> {
        if index.0 <= self.purged {
            return None;
        }
        let through = index.0.min(self.last);
        let remove = (through > self.purged).then_some((self.first(), through));
        Some(LogPlan { remove, bounds: LogBounds { purged: index.0, last: self.last.max(index.0) } })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::raft::{Entry, EntryPayload};
    use crate::types::Term;

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
        assert_eq!(plan, LogPlan { remove: None, bounds: bounds(0, 5) });
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
        assert_eq!(plan.unwrap(), LogPlan { remove: Some((8, 10)), bounds: bounds(5, 8) });
        let past_end = b.plan_write(&LogWrite { truncate_after: Some(LogIndex(12)), ..LogWrite::default() }).unwrap();
        assert_eq!(past_end, LogPlan { remove: None, bounds: b });
        let to_empty = b.plan_write(&LogWrite { truncate_after: Some(LogIndex(5)), ..LogWrite::default() }).unwrap();
        assert_eq!(to_empty, LogPlan { remove: Some((6, 10)), bounds: bounds(5, 5) });
        let before = b.plan_write(&LogWrite { truncate_after: Some(LogIndex(4)), ..LogWrite::default() });
        assert!(matches!(before, Err(StorageError::TruncateBeforeFirst { index: LogIndex(4), first: LogIndex(6) })));
    }

    #[test]
    fn purges_inside_at_and_past_the_end() {
        let b = bounds(2, 10);
        assert_eq!(b.plan_purge(LogIndex(2)), None);
        assert_eq!(b.plan_purge(LogIndex(4)), Some(LogPlan { remove: Some((3, 4)), bounds: bounds(4, 10) }));
        assert_eq!(b.plan_purge(LogIndex(10)), Some(LogPlan { remove: Some((3, 10)), bounds: bounds(10, 10) }));
        assert_eq!(b.plan_purge(LogIndex(20)), Some(LogPlan { remove: Some((3, 10)), bounds: bounds(20, 20) }));
        assert_eq!(bounds(10, 10).plan_purge(LogIndex(20)), Some(LogPlan { remove: None, bounds: bounds(20, 20) }));
    }

    #[test]
    fn ranges_must_lie_between_the_first_and_the_last_index() {
        let b = bounds(4, 10);
        b.check_range(LogIndex(5), LogIndex(11)).unwrap();
        assert!(matches!(
            b.check_range(LogIndex(4), LogIndex(6)),
            Err(StorageError::Compacted { index: LogIndex(4), first: LogIndex(5) })
        ));
        assert!(matches!(
            b.check_range(LogIndex(9), LogIndex(12)),
            Err(StorageError::Unavailable { index: LogIndex(11), last: LogIndex(10) })
        ));
        assert!(matches!(
            b.check_range(LogIndex(12), LogIndex(13)),
            Err(StorageError::Unavailable { index: LogIndex(12), last: LogIndex(10) })
        ));
        let state = b.state(HardState::default());
        assert_eq!((state.first_index, state.last_index), (LogIndex(5), LogIndex(10)));
    }
}
