//! The in-memory view of the Raft log: the entries after the last snapshot,
//! the commit point, and what still has to be persisted or applied.
//!
//! The core keeps every entry after the latest snapshot in memory; snapshots
//! bound its size. The [`LogStore`](crate::storage::LogStore) is the durable copy.

use std::collections::VecDeque;

use crate::raft::{Entry, SnapshotMeta};
use crate::types::{LogIndex, Term};

/// Entries after the snapshot, with persistence and apply cursors.
#[derive(Debug, Default)]
pub struct RaftLog {
    /// The last entry covered by the snapshot (0/0 when there is none).
    snapshot: SnapshotMeta,
    /// Entries `snapshot.last_index + 1 ..`.
    entries: VecDeque<Entry>,
    /// Highest index known committed.
    pub commit: LogIndex,
    /// Highest index handed to the state machine.
    pub applied: LogIndex,
    /// Highest index durable in the log store.
    pub persisted: LogIndex,
    /// First index not yet handed to the driver for persistence.
    unstable_from: LogIndex,
    /// The store must drop entries after this index before appending.
    pending_truncate: Option<LogIndex>,
}

impl RaftLog {
    /// A log restored from a snapshot point and the durable entries after it.
    #[must_use]
    pub fn restore(snapshot: SnapshotMeta, entries: Vec<Entry>, commit: LogIndex) -> Self {
        let last = entries.last().map_or(snapshot.last_index, |e| e.index);
        let commit = commit.clamp(snapshot.last_index, last);
        Self {
            snapshot,
            entries: entries.into(),
            commit,
            applied: snapshot.last_index,
            persisted: last,
            unstable_from: last.next(),
            pending_truncate: None,
        }
    }

    /// The snapshot point.
    #[must_use]
    pub fn snapshot(&self) -> SnapshotMeta {
        self.snapshot
    }

    /// First index held in memory.
    #[must_use]
    pub fn first_index(&self) -> LogIndex {
        self.snapshot.last_index.next()
    }

    /// Last index of the log.
    #[must_use]
    pub fn last_index(&self) -> LogIndex {
        self.entries.back().map_or(self.snapshot.last_index, |e| e.index)
    }

    /// Term of the last entry.
    #[must_use]
    pub fn last_term(&self) -> Term {
        self.entries.back().map_or(self.snapshot.last_term, |e| e.term)
    }

    /// Term of the entry at `index`, if known (compacted indices other than the snapshot point are unknown).
    #[must_use]
    pub fn term(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot.last_index {
            return Some(self.snapshot.last_term);
        }
        self.entry(index).map(|e| e.term)
    }

    /// The entry at `index`, if held.
    #[must_use]
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        let offset = index.0.checked_sub(self.first_index().0)?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    /// Whether a candidate's log (`last_index`, `last_term`) is at least as up to date as ours.
    #[must_use]
    pub fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        last_term > self.last_term() || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// First index of the run of entries with `term` that contains `index`.
    #[must_use]
    pub fn first_index_of_term_at(&self, index: LogIndex, term: Term) -> LogIndex {
        let mut i = index;
        while i > self.first_index() && self.term(i.prev()) == Some(term) {
            i = i.prev();
        }
        i
    }

    /// Last index holding an entry of `term`, if any.
    #[must_use]
    pub fn last_index_of_term(&self, term: Term) -> Option<LogIndex> {
        self.entries.iter().rev().find(|e| e.term == term).map(|e| e.index)
    }

    /// Up to `max_count` entries from `from` whose payload fits `max_bytes`
    /// (at least one entry when any is available).
    #[must_use]
    pub fn slice(&self, from: LogIndex, max_count: usize, max_bytes: usize) -> Vec<Entry> {
        let Some(offset) = from.0.checked_sub(self.first_index().0) else {
            return Vec::new();
        };
        let Ok(offset) = usize::try_from(offset) else {
            return Vec::new();
        };
        let available = self.entries.len().saturating_sub(offset).min(max_count);
        let range = self.entries.range(offset..offset + available);
        if max_bytes == usize::MAX {
            return range.cloned().collect();
        }
        let mut out = Vec::with_capacity(available);
        let mut bytes = 0;
        for e in range {
            let len = e.encoded_len();
            if !out.is_empty() && bytes + len > max_bytes {
                break;
            }
            bytes += len;
            out.push(e.clone());
        }
        out
    }

    /// Append a new entry at the end (leader).
    pub fn push(&mut self, entry: Entry) {
        self.entries.push_back(entry);
    }

    /// Drop every entry after `index` (follower conflict).
    pub fn truncate_after(&mut self, index: LogIndex) {
        let keep = usize::try_from(index.0.saturating_sub(self.snapshot.last_index.0)).unwrap_or(usize::MAX);
        self.entries.truncate(keep);
        if index < self.unstable_from.prev() || self.pending_truncate.is_some() {
            let t = self.pending_truncate.map_or(index, |p| p.min(index));
            self.pending_truncate = Some(t);
        }
        self.unstable_from = self.unstable_from.min(index.next());
        self.persisted = self.persisted.min(index);
    }

    /// Entries and truncation the driver must persist; marks them handed over.
    pub fn take_unstable(&mut self) -> (Option<LogIndex>, Vec<Entry>) {
        let truncate = self.pending_truncate.take();
        let from = self.unstable_from;
        let entries = self.slice(from, usize::MAX, usize::MAX);
        self.unstable_from = self.last_index().next();
        (truncate, entries)
    }

    /// Whether entries or a truncation wait to be handed to the driver.
    #[must_use]
    pub fn has_unstable(&self) -> bool {
        self.pending_truncate.is_some() || self.unstable_from <= self.last_index()
    }

    /// The driver made everything up to `index` durable.
    pub fn persisted_to(&mut self, index: LogIndex) {
        self.persisted = self.persisted.max(index.min(self.last_index()));
    }

    /// Committed, persisted entries not yet handed to the state machine; marks them handed over.
    pub fn take_committed(&mut self, max_count: usize) -> Vec<Entry> {
        let upto = self.commit.min(self.persisted);
        if upto <= self.applied {
            return Vec::new();
        }
        let count = usize::try_from(upto.0 - self.applied.0).unwrap_or(usize::MAX).min(max_count);
        let out = self.slice(self.applied.next(), count, usize::MAX);
        if let Some(last) = out.last() {
            self.applied = last.index;
        }
        out
    }

    /// Forget entries up to `meta.last_index`, now covered by a snapshot.
    /// Returns `false` if the snapshot is not newer than the current one.
    pub fn compact(&mut self, meta: SnapshotMeta) -> bool {
        if meta.last_index <= self.snapshot.last_index || meta.last_index > self.last_index() {
            return false;
        }
        let drop = usize::try_from(meta.last_index.0 - self.snapshot.last_index.0).unwrap_or(usize::MAX);
        self.entries.drain(..drop.min(self.entries.len()));
        self.snapshot = meta;
        true
    }

    /// Replace the log with a received snapshot. Keeps the suffix when the
    /// snapshot point matches an entry we hold. Returns whether the suffix was kept.
    pub fn install(&mut self, meta: SnapshotMeta) -> bool {
        let keep_suffix = self.term(meta.last_index) == Some(meta.last_term);
        if keep_suffix {
            let drop = usize::try_from(meta.last_index.0.saturating_sub(self.snapshot.last_index.0)).unwrap_or(0);
            self.entries.drain(..drop.min(self.entries.len()));
            // A truncation not yet written must not reach below the snapshot:
            // the store is purged through it first.
            self.pending_truncate = self.pending_truncate.map(|t| t.max(meta.last_index));
        } else {
            self.entries.clear();
            self.pending_truncate = Some(meta.last_index);
            self.unstable_from = meta.last_index.next();
            self.persisted = meta.last_index;
        }
        self.snapshot = meta;
        self.commit = self.commit.max(meta.last_index);
        self.applied = self.applied.max(meta.last_index);
        self.persisted = self.persisted.max(meta.last_index);
        self.unstable_from = self.unstable_from.max(meta.last_index.next());
        keep_suffix
    }

    /// Bytes of the entries held (for status).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is held after the snapshot.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::EntryPayload;

    fn e(index: u64, term: u64) -> Entry {
        Entry { index: LogIndex(index), term: Term(term), payload: EntryPayload::Blank }
    }

    fn log_with(terms: &[u64]) -> RaftLog {
        let entries = terms.iter().enumerate().map(|(i, &t)| e(i as u64 + 1, t)).collect();
        RaftLog::restore(SnapshotMeta::default(), entries, LogIndex(0))
    }

    #[test]
    fn terms_and_bounds() {
        let log = log_with(&[1, 1, 2, 3]);
        assert_eq!(log.last_index(), LogIndex(4));
        assert_eq!(log.last_term(), Term(3));
        assert_eq!(log.term(LogIndex(0)), Some(Term(0)));
        assert_eq!(log.term(LogIndex(3)), Some(Term(2)));
        assert_eq!(log.term(LogIndex(5)), None);
        assert_eq!(log.first_index_of_term_at(LogIndex(2), Term(1)), LogIndex(1));
        assert_eq!(log.last_index_of_term(Term(1)), Some(LogIndex(2)));
        assert!(log.is_up_to_date(LogIndex(1), Term(4)));
        assert!(!log.is_up_to_date(LogIndex(9), Term(2)));
    }

    #[test]
    fn truncation_is_reported_to_persistence_once() {
        let mut log = log_with(&[1, 1, 1]);
        log.truncate_after(LogIndex(1));
        log.push(e(2, 2));
        let (truncate, entries) = log.take_unstable();
        assert_eq!(truncate, Some(LogIndex(1)));
        assert_eq!(entries, vec![e(2, 2)]);
        assert_eq!(log.take_unstable(), (None, vec![]));
    }

    #[test]
    fn only_committed_and_persisted_entries_are_applied() {
        let mut log = log_with(&[1, 1, 1]);
        log.push(e(4, 1));
        log.commit = LogIndex(4);
        assert_eq!(log.take_committed(usize::MAX).len(), 3, "entry 4 is not persisted yet");
        log.persisted_to(LogIndex(4));
        assert_eq!(log.take_committed(usize::MAX), vec![e(4, 1)]);
    }

    #[test]
    fn compaction_and_install() {
        let mut log = log_with(&[1, 1, 2, 2]);
        assert!(log.compact(SnapshotMeta { last_index: LogIndex(2), last_term: Term(1) }));
        assert_eq!(log.first_index(), LogIndex(3));
        assert_eq!(log.term(LogIndex(2)), Some(Term(1)));
        assert_eq!(log.term(LogIndex(1)), None);
        assert!(
            log.install(SnapshotMeta { last_index: LogIndex(3), last_term: Term(2) }),
            "matching point keeps suffix"
        );
        assert_eq!(log.last_index(), LogIndex(4));
        assert!(!log.install(SnapshotMeta { last_index: LogIndex(9), last_term: Term(5) }));
        assert_eq!(log.last_index(), LogIndex(9));
        assert!(log.is_empty());
        assert_eq!(log.take_unstable(), (Some(LogIndex(9)), vec![]));
    }
}
