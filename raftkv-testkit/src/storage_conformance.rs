//! Storage conformance suite: the executable form of the [`LogStore`] and
//! [`SnapshotStore`] contracts. Every backend runs it unchanged through a
//! [`StoreHarness`].

use std::fmt::Debug;
use std::future::Future;
use std::ops::RangeInclusive;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::FutureExt;

use raftkv_core::raft::{Entry, EntryPayload, HardState, SnapshotMeta};
use raftkv_core::storage::{
    LogState, LogStore, LogWrite, MemDisk, MemLogStore, MemSnapshotStore, SnapshotReader, SnapshotStore, StorageError,
};
use raftkv_core::types::{LogIndex, NodeId, Term};

/// Opens stores for the conformance suite.
#[async_trait]
pub trait StoreHarness: Send {
    /// The log store under test.
    type Log: LogStore;
    /// The snapshot store under test.
    type Snap: SnapshotStore;

    /// A fresh, empty store.
    async fn fresh(&mut self) -> (Self::Log, Self::Snap);

    /// Simulate a crash of the store opened last (drop/kill it, keeping only
    /// what was durable) and open it again.
    async fn crash_and_reopen(&mut self) -> (Self::Log, Self::Snap);
}

/// Harness for [`MemDisk`]: each `fresh` store is a new disk, a crash is
/// [`MemDisk::crash`].
#[derive(Debug, Default)]
pub struct MemHarness {
    write_latency: Duration,
    disk: Option<MemDisk>,
}

impl MemHarness {
    /// A harness whose disks delay every commit by `latency`
    /// (see [`MemDisk::with_write_latency`]).
    #[must_use]
    pub fn with_write_latency(latency: Duration) -> Self {
        Self { write_latency: latency, disk: None }
    }
}

#[async_trait]
impl StoreHarness for MemHarness {
    type Log = MemLogStore;
    type Snap = MemSnapshotStore;

    async fn fresh(&mut self) -> (MemLogStore, MemSnapshotStore) {
        let disk = MemDisk::with_write_latency(self.write_latency);
        let stores = (disk.log_store(), disk.snapshot_store());
        self.disk = Some(disk);
        stores
    }

    async fn crash_and_reopen(&mut self) -> (MemLogStore, MemSnapshotStore) {
        let latency = self.write_latency;
        let disk = self.disk.get_or_insert_with(|| MemDisk::with_write_latency(latency));
        disk.crash();
        (disk.log_store(), disk.snapshot_store())
    }
}

/// Runs every conformance case, each on a fresh store, and panics at the end
/// listing every failed case with its message.
pub async fn storage_conformance<H: StoreHarness>(harness: &mut H) {
    let mut failures = Vec::new();
    let mut total = 0usize;
    macro_rules! cases {
        ($($case:ident),* $(,)?) => {$(
            total += 1;
            run_case(stringify!($case), $case(harness), &mut failures).await;
        )*};
    }
    cases!(
        empty_store_state,
        append_and_read_ranges,
        non_contiguous_append_rejected,
        truncate_then_reappend,
        truncate_before_first_rejected,
        purge_inside_log,
        purge_at_end,
        purge_past_end,
        entries_of_compacted_range,
        entries_past_end,
        hard_state_save_and_load,
        log_write_is_atomic,
        log_durable_across_crash,
        snapshot_round_trip,
        unfinished_or_aborted_writer_leaves_previous_snapshot,
        unfinished_writer_leaves_no_trace_across_crash,
        older_snapshot_is_discarded,
        reader_keeps_its_snapshot,
        empty_snapshot,
        large_snapshot,
        size_bytes_tracks_log,
    );
    if !failures.is_empty() {
        panic!("storage conformance: {} of {total} cases failed:\n  {}", failures.len(), failures.join("\n  "));
    }
}

type CaseResult = Result<(), String>;

async fn run_case(name: &str, case: impl Future<Output = CaseResult>, failures: &mut Vec<String>) {
    match AssertUnwindSafe(case).catch_unwind().await {
        Ok(Ok(())) => {}
        Ok(Err(message)) => failures.push(format!("{name}: {message}")),
        Err(panic) => failures.push(format!("{name}: panicked: {}", super::panic_message(&*panic))),
    }
}

/// Fails the case with the message unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Fails the case unless `actual == expected`.
macro_rules! ensure_eq {
    ($actual:expr, $expected:expr, $($msg:tt)+) => {{
        let (actual, expected) = (&$actual, &$expected);
        if actual != expected {
            return Err(format!("{}: expected {:?}, got {:?}", format_args!($($msg)+), expected, actual));
        }
    }};
}

/// Fails the case unless the call succeeded.
fn ok<T>(result: Result<T, StorageError>, what: &str) -> Result<T, String> {
    result.map_err(|e| format!("{what}: expected Ok, got Err({e:?})"))
}

/// Fails the case unless the call failed; returns the error.
fn err<T: Debug>(result: Result<T, StorageError>, what: &str) -> Result<StorageError, String> {
    match result {
        Ok(v) => Err(format!("{what}: expected an error, got Ok({v:?})")),
        Err(e) => Ok(e),
    }
}

fn li(index: u64) -> LogIndex {
    LogIndex(index)
}

fn meta(index: u64, term: u64) -> SnapshotMeta {
    SnapshotMeta { last_index: LogIndex(index), last_term: Term(term) }
}

/// Entry `index` of `term`; every fifth is a blank, the others carry a
/// command that names them.
fn entry(index: u64, term: u64) -> Entry {
    let payload = if index.is_multiple_of(5) {
        EntryPayload::Blank
    } else {
        EntryPayload::Command(Bytes::from(format!("cmd-{index}-term-{term}")))
    };
    Entry { term: Term(term), index: LogIndex(index), payload }
}

fn ents(range: RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range.map(|i| entry(i, term)).collect()
}

fn concat(parts: &[Vec<Entry>]) -> Vec<Entry> {
    parts.concat()
}

/// Checks the index bounds reported by `state()`.
async fn check_bounds<L: LogStore>(log: &L, first: u64, last: u64, when: &str) -> CaseResult {
    let state = ok(log.state().await, &format!("state() {when}"))?;
    ensure_eq!((state.first_index, state.last_index), (li(first), li(last)), "(first_index, last_index) {when}");
    Ok(())
}

/// Checks `entries(from, to)` returns exactly `expected`.
async fn check_entries<L: LogStore>(log: &L, from: u64, to: u64, expected: &[Entry], when: &str) -> CaseResult {
    let what = format!("entries({from}, {to}) {when}");
    let got = ok(log.entries(li(from), li(to)).await, &what)?;
    if got.as_slice() == expected {
        return Ok(());
    }
    let at = got.iter().zip(expected).position(|(g, e)| g != e).unwrap_or(got.len().min(expected.len()));
    Err(format!(
        "{what}: expected {} entries, got {}; first difference at position {at}: expected {:?}, got {:?}",
        expected.len(),
        got.len(),
        expected.get(at),
        got.get(at)
    ))
}

async fn check_hard_state<L: LogStore>(log: &L, expected: HardState, when: &str) -> CaseResult {
    let state = ok(log.state().await, &format!("state() {when}"))?;
    ensure_eq!(state.hard_state, expected, "hard state {when}");
    Ok(())
}

/// Writes a whole snapshot in the given chunks and finishes it.
async fn write_snapshot<S: SnapshotStore>(snap: &S, meta: SnapshotMeta, chunks: &[Bytes]) -> Result<bool, String> {
    let index = meta.last_index;
    let mut writer = ok(snap.begin(meta).await, &format!("begin({meta:?})"))?;
    let mut written = 0u64;
    for chunk in chunks {
        ok(writer.write(chunk.clone()).await, &format!("write of a snapshot chunk for index {index}"))?;
        written += chunk.len() as u64;
        ensure_eq!(writer.written(), written, "written() after writing chunks of snapshot {index}");
    }
    ok(writer.finish().await, &format!("finish() of snapshot {index}"))
}

/// Reads a snapshot to its end in chunks of at most `max_len` bytes.
async fn read_all(reader: &mut dyn SnapshotReader, max_len: usize, what: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = ok(reader.next_chunk(max_len).await, &format!("next_chunk({max_len}) of {what}"))? {
        ensure!(
            !chunk.is_empty(),
            "{what}: expected non-empty chunks before None, got an empty chunk at offset {}",
            out.len()
        );
        ensure!(
            chunk.len() <= max_len,
            "{what}: expected chunks of at most {max_len} bytes, got {} at offset {}",
            chunk.len(),
            out.len()
        );
        out.extend_from_slice(&chunk);
    }
    let again = ok(reader.next_chunk(max_len).await, &format!("next_chunk({max_len}) after the end of {what}"))?;
    ensure!(again.is_none(), "{what}: expected None again after the end, got {again:?}");
    Ok(out)
}

/// Checks the latest snapshot is `expected` with exactly `data`, read in
/// chunks of at most `max_len`.
async fn check_latest<S: SnapshotStore>(
    snap: &S,
    expected: SnapshotMeta,
    data: &[u8],
    max_len: usize,
    when: &str,
) -> CaseResult {
    let latest = ok(snap.latest().await, &format!("latest() {when}"))?;
    ensure_eq!(latest, Some((expected, data.len() as u64)), "latest() {when}");
    let opened = ok(snap.open_latest().await, &format!("open_latest() {when}"))?;
    let Some((meta, mut reader)) = opened else {
        return Err(format!("open_latest() {when}: expected snapshot {expected:?}, got None"));
    };
    ensure_eq!(meta, expected, "meta from open_latest() {when}");
    let read = read_all(&mut *reader, max_len, &format!("the snapshot {when}")).await?;
    ensure!(
        read == data,
        "snapshot bytes {when}: expected {} bytes equal to those written, got {} bytes{}",
        data.len(),
        read.len(),
        first_difference(&read, data)
    );
    Ok(())
}

fn first_difference(got: &[u8], expected: &[u8]) -> String {
    got.iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .map(|i| format!(" (first difference at offset {i})"))
        .unwrap_or_default()
}

async fn check_no_snapshot<S: SnapshotStore>(snap: &S, when: &str) -> CaseResult {
    let latest = ok(snap.latest().await, &format!("latest() {when}"))?;
    ensure_eq!(latest, None, "latest() {when}");
    let opened = ok(snap.open_latest().await, &format!("open_latest() {when}"))?;
    ensure!(opened.is_none(), "open_latest() {when}: expected None, got snapshot {:?}", opened.map(|(m, _)| m));
    Ok(())
}

/// Drops every handle of the current store, then crashes and reopens it.
async fn reopen<H: StoreHarness>(h: &mut H, stores: (H::Log, H::Snap)) -> (H::Log, H::Snap) {
    drop(stores);
    h.crash_and_reopen().await
}

// ---------------------------------------------------------------- log cases

async fn empty_store_state<H: StoreHarness>(h: &mut H) -> CaseResult {
    let (log, snap) = h.fresh().await;
    let state = ok(log.state().await, "state() of a fresh store")?;
    ensure_eq!(
        state,
        LogState { hard_state: HardState::default(), first_index: li(1), last_index: li(0) },
        "state() of a fresh store"
    );
    check_entries(&log, 1, 1, &[], "(empty range) of a fresh store").await?;
    let e = err(log.entries(li(1), li(2)).await, "entries(1, 2) of a fresh store")?;
    ensure!(
        matches!(e, StorageError::Unavailable { last: LogIndex(0), .. }),
        "entries(1, 2) of a fresh store: expected Unavailable {{ last: 0 }}, got {e:?}"
    );
    ok(log.size_bytes().await, "size_bytes() of a fresh store")?;
    check_no_snapshot(&snap, "of a fresh store").await
}

async fn append_and_read_ranges<H: StoreHarness>(h: &mut H) -> CaseResult {
    let (log, _snap) = h.fresh().await;
    ok(log.append(ents(1..=3, 1)).await, "append of 1..=3")?;
    ok(log.append(ents(4..=10, 2)).await, "append of 4..=10")?;
    ok(log.append(Vec::new()).await, "append of no entries")?;
    check_bounds(&log, 1, 10, "after appending 1..=10").await?;
    let all = concat(&[ents(1..=3, 1), ents(4..=10, 2)]);
    check_entries(&log, 1, 11, &all, "(whole log)").await?;
    check_entries(&log, 3, 7, &all[2..6], "(middle, across batches)").await?;
    check_entries(&log, 1, 2, &all[..1], "(first entry)").await?;
    check_entries(&log, 10, 11, &all[9..], "(last entry)").await?;
    check_entries(&log, 5, 5, &[], "(empty range)").await?;
    let e = err(log.entries(li(1), li(12)).await, "entries(1, 12) with last index 10")?;
    ensure!(
        matches!(e, StorageError::Unavailable { last: LogIndex(10), .. }),
        "entries(1, 12) with last index 10: expected Unavailable {{ last: 10 }}, got {e:?}"
    );
    let e = err(log.entries(li(11), li(12)).await, "entries(11, 12) with last index 10")?;
    ensure!(
        matches!(e, StorageError::Unavailable { last: LogIndex(10), .. }),
        "entries(11, 12) with last index 10: expected Unavailable {{ last: 10 }}, got {e:?}"
    );
    Ok(())
}

async fn non_contiguous_append_rejected<H: StoreHarness>(h: &mut H) -> CaseResult {
    let (log, _snap) = h.fresh().await;
    let e = err(log.append(ents(2..=3, 1)).await, "append starting at 2 on an empty log")?;
    ensure!(
        matches!(e, StorageError::NotContiguous { last: LogIndex(0), got: LogIndex(2) }),
        "append starting at 2 on an empty log: expected NotContiguous {{ last: 0, got: 2 }}, got {e:?}"
    );
    check_bounds(&log, 1, 0, "after a rejected append on an empty log").await?;

    ok(log.append(ents(1..=3, 1)).await, "append of 1..=3")?;
    let e = err(log.append(ents(5..=6, 1)).await, "append starting at 5 after last index 3")?;
    ensure!(
        matches!(e, StorageError::NotContiguous { last: LogIndex(3), got: LogIndex(5) }),
        "append starting at 5 after last index 3: expected NotContiguous {{ last: 3, got: 5 }}, got {e:?}"
    );
    let e = err(log.append(ents(3..=4, 2)).await, "append starting at 3 (overlap) after last index 3")?;
    ensure!(
        matches!(e, StorageError::NotContiguous { last: LogIndex(3), got: LogIndex(3) }),
        "append starting at 3 after last index 3: expected NotContiguous {{ last: 3, got: 3 }}, got {e:?}"
    );
    let gappy = vec![entry(4, 1), entry(6, 1)];
    let e = err(log.append(gappy).await, "append of [4, 6] (gap inside the batch)")?;
    ensure!(
        matches!(e, StorageError::NotContiguous { .. }),
        "append of [4, 6] (gap inside the batch): expected NotContiguous, got {e:?}"
    );
    check_bounds(&log, 1, 3, "after rejected appends").await?;
    check_entries(&log, 1, 4, &ents(1..=3, 1), "after rejected appends").await?;
    ok(log.append(ents(4..=4, 1)).await, "append at 4 after rejected appends")?;
    check_bounds(&log, 1, 4, "after appending 4").await
}

async fn truncate_then_reappend<H: StoreHarness>(h: &mut H) -> CaseResult {
    let (log, _snap) = h.fresh().await;
    ok(log.append(ents(1..=5, 1)).await, "append of 1..=5")?;
    ok(log.truncate_after(li(3)).await, "truncate_after(3)")?;
    check_bounds(&log, 1, 3, "after truncate_after(3)").await?;
    let e = err(log.entries(li(4), li(5)).await, "entries(4, 5) after truncate_after(3)")?;
    ensure!(
        matches!(e, StorageError::Unavailable { last: LogIndex(3), .. }),
        "entries(4, 5) after truncate_after(3): expected Unavailable {{ last: 3 }}, got {e:?}"
    );
    ok(log.append(ents(4..=6, 2)).await, "append of 4..=6 in term 2 after truncation")?;
    let expected = concat(&[ents(1..=3, 1), ents(4..=6, 2)]);
    check_entries(&log, 1, 7, &expected, "after re-appending 4..=6 in term 2").await?;
    ok(log.truncate_after(li(6)).await, "truncate_after(last index)")?;
    ok(log.truncate_after(li(10)).await, "truncate_after(past the last index)")?;
    check_bounds(&log, 1, 6, "after truncating at or past the end (no-ops)").await?;
    check_entries(&log, 1, 7, &expected, "after truncating at or past the end").await?;
    ok(log.truncate_after(li(0)).await, "truncate_after(0)")?;
    check_bounds(&log, 1, 0, "after truncate_after(0)").await?;
    ok(log.append(ents(1..=2, 3)).await, "append of 1..=2 after truncate_after(0)")?;
    check_entries(&log, 1, 3, &ents(1..=2, 3), "after truncate_after(0) and re-append").await
}

async fn truncate_before_first_rejected<H: StoreHarness>(h: &mut H) -> CaseResult {
    let (log, _snap) = h.fresh().await;
    ok(log.append(ents(1..=10, 1)).await, "append of 1..=10")?;
    ok(log.purge_through(li(5)).await, "purge_through(5)")?;
    let e = err(log.truncate_after(li(3)).await, "truncate_after(3) with first index 6")?;
    ensure!(
        matches!(e, StorageError::TruncateBeforeFirst { index: LogIndex(3), first: LogIndex(6) }),
        "truncate_after(3) with first index 6: expected TruncateBeforeFirst {{ index: 3, first: 6 }}, got {e:?}"
    );
    check_bounds(&log, 6, 10, "after a rejected truncation").await?;
    check_entries(&log, 6, 11, &ents(6..=10, 1), "after a rejected truncation").await?;
    ok(log.truncate_after(li(5)).await, "truncate_after(first_index - 1)")?;
    check_bounds(&log, 6, 5, "after truncate_after(first_index - 1) (empty log)").await?;
    ok(log.append(ents(6..=7, 2)).await, "append of 6..=7 after emptying the log")?;
    check_entries(&log, 6, 8, &ents(6..=7, 2), "after emptying and re-appending").await
}

async fn purge_inside_log<H: StoreHarness>(h: &mut H) -> CaseResult {
    let (log, _snap) = h.fresh().await;
    ok(log.append(ents(1..=10, 1)).await, "append of 1..=10")?;
    ok(log.purge_through(li(4)).await, "purge_through(4)")?;
    check_bounds(&log, 5, 10, "after purge_through(4)").await?;
    check_entries(&log, 5, 11, &ents(5..=10, 1), "after purge_through(4)").await?;
    ok(log.purge_through(li(2)).await, "purge_through(2) (already purged)")?;
    check_bounds(&log, 5, 10, "after purging an already purged index").await?;
    ok(log.append(ents(11..=11, 1)).await, "append of 11 after purge")?;
    check_entries(&log, 5, 12, &ents(5..=11, 1), "after purge and append").await
}

async fn purge_at_end<H: StoreHarness>(h: &mut H) -> CaseResult {
    let (log, _snap) = h.fresh().await;
    ok(log.append(ents(1..=10, 1)).await, "append of 1..=10")?;
    ok(log.purge_through(li(10)).await, "purge_through(last index)")?;
    check_bounds(&log, 11, 10, "after purge_through(last index)").await?;
    let e = err(log.entries(li(10), li(11)).await, "entries(10, 11) after purge_through(10)")?;
    ensure!(
        matches!(e, StorageError::Compacted { index: LogIndex(10), first: LogIndex(11) }),
        "entries(10, 11) after purge_through(10): expected Compacted {{ index: 10, first: 11 }}, got {e:?}"
    );
    ok(log.append(ents(11..=12, 2)).await, "append of 11..=12 after purging everything")?;
    check_bounds(&log, 11, 12, "after purging everything and appending").await?;
    check_entries(&log, 11, 13, &ents(11..=12, 2), "after purging everything and appending").await
}

async fn purge_past_end<H: StoreHarness>(h: &mut H) -> CaseResult {
    let (log, _snap) = h.fresh().await;
    ok(log.append(ents(1..=5, 1)).await, "append of 1..=5")?;
    ok(log.purge_through(li(8)).await, "purge_through(8) past last index 5")?;
    check_bounds(&log, 9, 8, "after purge_through(8) past the end").await?;
    let e = err(log.append(ents(6..=6, 1)).await, "append at 6 after purge_through(8)")?;
    ensure!(
        matches!(e, StorageError::NotContiguous { last: LogIndex(8), got: LogIndex(6) }),
        "append at 6 after purge_through(8): expected NotContiguous {{ last: 8, got: 6 }}, got {e:?}"
    );
    ok(log.append(ents(9..=10, 2)).await, "append of 9..=10 after purge_through(8)")?;
    check_bounds(&log, 9, 10, "after purging past the end and appending").await?;
    check_entries(&log, 9, 11, &ents(9..=10, 2), "after purging past the end and appending").await
}

async fn entries_of_compacted_range<H: StoreHarness>(h: &mut H) -> CaseResult {
    let (log, _snap) = h.fresh().await;
    ok(log.append(ents(1..=10, 1)).await, "append of 1..=10")?;
    ok(log.purge_through(li(4)).await, "purge_through(4)")?;
    for (from, to) in [(1, 3), (4, 5), (3, 8), (0, 11)] {
        let what = format!("entries({from}, {to}) with first index 5");
        let e = err(log.entries(li(from), li(to)).await, &what)?;
        ensure!(
            matches!(e, StorageError::Compacted { index, first: LogIndex(5) } if index == li(from)),
            "{what}: expected Compacted {{ index: {from}, first: 5 }}, got {e:?}"
        );
    }
    // Partly compacted and partly past the end: either error is right.
    let e = err(log.entries(li(2), li(20)).await, "entries(2, 20) with first 5 and last 10")?;
    ensure!(
        matches!(e, StorageError::Compacted { .. } | StorageError::Unavailable { .. }),
        "entries(2, 20) with first 5 and last 10: expected Compacted or Unavailable, got {e:?}"
    );
    check_entries(&log, 5, 6, &ents(5..=5, 1), "(first retained entry)").await
}

async fn entries_past_end<H: StoreHarness>(h: &mut H) -> CaseResult {
    let (log, _snap) = h.fresh().await;
    ok(log.append(ents(1..=10, 1)).await, "append of 1..=10")?;
    for (from, to) in [(11, 12), (10, 12), (5, 20), (15, 16)] {
        let what = format!("entries({from}, {to}) with last index 10");
        let e = err(log.entries(li(from), li(to)).await, &what)?;
        ensure!(
            matches!(e, StorageError::Unavailable { index, last: LogIndex(10) }
                if index.0 > 10 && index.0 >= from && index.0 < to),
            "{what}: expected Unavailable {{ index in 11..{to}, last: 10 }}, got {e:?}"
        );
    }
    Ok(())
}

async fn hard_state_save_and_load<H: StoreHarness>(h: &mut H) -> CaseResult {
    let (log, _snap) = h.fresh().await;
    check_hard_state(&log, HardState::default(), "of a fresh store").await?;
    let voted = HardState { term: Term(1 << 40), vote: Some(NodeId(7)), commit: LogIndex(1 << 33) };
    ok(log.save_hard_state(voted).await, "save_hard_state with a vote")?;
    check_hard_state(&log, voted, "after saving one with a vote").await?;
    let unvoted = HardState { term: Term(3), vote: None, commit: LogIndex(2) };
    ok(log.save_hard_state(unvoted).await, "save_hard_state without a vote")?;
    check_hard_state(&log, unvoted, "after saving one without a vote (vote must be None)").await?;
    let hs = HardState { term: Term(4), vote: Some(NodeId(1)), commit: LogIndex(3) };
    ok(log.save_hard_state(hs).await, "save_hard_state")?;
    ok(log.append(ents(1..=6, 4)).await, "append of 1..=6")?;
    check_hard_state(&log, hs, "after an append").await?;
    ok(log.truncate_after(li(5)).await, "truncate_after(5)")?;
    check_hard_state(&log, hs, "after a truncation").await?;
    ok(log.purge_through(li(3)).await, "purge_through(3)")?;
    check_hard_state(&log, hs, "after a purge").await?;
    ok(log.purge_through(li(9)).await, "purge_through(9) past the end")?;
    check_hard_state(&log, hs, "after purging past the end").await
}

async fn log_write_is_atomic<H: StoreHarness>(h: &mut H) -> CaseResult {
    let (log, _snap) = h.fresh().await;
    ok(log.append(ents(1..=5, 1)).await, "append of 1..=5")?;
    let hs1 = HardState { term: Term(2), vote: Some(NodeId(1)), commit: LogIndex(2) };
    let write = LogWrite { truncate_after: Some(li(2)), entries: ents(3..=4, 2), hard_state: Some(hs1) };
    ok(log.write(write).await, "write(truncate_after 2 + entries 3..=4 + hard state)")?;
    let expected = concat(&[ents(1..=2, 1), ents(3..=4, 2)]);
    check_bounds(&log, 1, 4, "after the combined write").await?;
    check_entries(&log, 1, 5, &expected, "after the combined write").await?;
    check_hard_state(&log, hs1, "after the combined write").await?;

    // A valid truncation with non-contiguous entries: nothing is applied.
    let hs2 = HardState { term: Term(3), vote: None, commit: LogIndex(3) };
    let write = LogWrite { truncate_after: Some(li(3)), entries: ents(6..=6, 3), hard_state: Some(hs2) };
    let e = err(log.write(write).await, "write(truncate_after 3 + entries from 6 + hard state)")?;
    ensure!(
        matches!(e, StorageError::NotContiguous { last: LogIndex(3), got: LogIndex(6) }),
        "write(truncate_after 3 + entries from 6): expected NotContiguous {{ last: 3, got: 6 }}, got {e:?}"
    );
    check_bounds(&log, 1, 4, "after a rejected combined write (truncation must not apply)").await?;
    check_entries(&log, 1, 5, &expected, "after a rejected combined write").await?;
    check_hard_state(&log, hs1, "after a rejected combined write (hard state must not apply)").await?;

    // A truncation before the first index: nothing is applied.
    ok(log.purge_through(li(2)).await, "purge_through(2)")?;
    let write = LogWrite { truncate_after: Some(li(1)), entries: ents(2..=2, 3), hard_state: Some(hs2) };
    let e = err(log.write(write).await, "write(truncate_after 1 + entries + hard state) with first index 3")?;
    ensure!(
        matches!(e, StorageError::TruncateBeforeFirst { index: LogIndex(1), first: LogIndex(3) }),
        "write(truncate_after 1) with first index 3: expected TruncateBeforeFirst {{ index: 1, first: 3 }}, got {e:?}"
    );
    check_bounds(&log, 3, 4, "after a rejected truncation before the first index").await?;
    check_hard_state(&log, hs1, "after a rejected truncation before the first index").await?;

    // Entries and hard state without truncation.
    let write = LogWrite { truncate_after: None, entries: ents(5..=6, 3), hard_state: Some(hs2) };
    ok(log.write(write).await, "write(entries 5..=6 + hard state)")?;
    check_bounds(&log, 3, 6, "after write(entries + hard state)").await?;
    check_hard_state(&log, hs2, "after write(entries + hard state)").await?;
    check_entries(&log, 5, 7, &ents(5..=6, 3), "after write(entries + hard state)").await?;

    // Truncation and hard state only, then an empty write.
    let hs3 = HardState { term: Term(4), vote: Some(NodeId(2)), commit: LogIndex(4) };
    let write = LogWrite { truncate_after: Some(li(4)), entries: Vec::new(), hard_state: Some(hs3) };
    ok(log.write(write).await, "write(truncate_after 4 + hard state)")?;
    ok(log.write(LogWrite::default()).await, "empty write")?;
    check_bounds(&log, 3, 4, "after write(truncate + hard state) and an empty write").await?;
    check_hard_state(&log, hs3, "after write(truncate + hard state) and an empty write").await
}

async fn log_durable_across_crash<H: StoreHarness>(h: &mut H) -> CaseResult {
    let (log, snap) = h.fresh().await;
    ok(log.append(ents(1..=10, 1)).await, "append of 1..=10")?;
    let hs1 = HardState { term: Term(2), vote: Some(NodeId(3)), commit: LogIndex(6) };
    ok(log.save_hard_state(hs1).await, "save_hard_state")?;
    ok(log.purge_through(li(3)).await, "purge_through(3)")?;
    ok(log.truncate_after(li(8)).await, "truncate_after(8)")?;
    ok(log.append(ents(9..=9, 2)).await, "append of 9 in term 2")?;
    let snap_data = Bytes::from_static(b"state at index three");
    let finished = write_snapshot(&snap, meta(3, 1), std::slice::from_ref(&snap_data)).await?;
    ensure!(finished, "finish() of the first snapshot: expected true, got false");
    let (log, snap) = reopen(h, (log, snap)).await;
    let expected = concat(&[ents(4..=8, 1), ents(9..=9, 2)]);
    check_bounds(&log, 4, 9, "after a crash").await?;
    check_entries(&log, 4, 10, &expected, "after a crash").await?;
    check_hard_state(&log, hs1, "after a crash").await?;
    check_latest(&snap, meta(3, 1), &snap_data, 1024, "after a crash").await?;

    let hs2 = HardState { term: Term(3), vote: None, commit: LogIndex(9) };
    ok(log.append(ents(10..=10, 3)).await, "append of 10 after a crash")?;
    let write = LogWrite { truncate_after: None, entries: ents(11..=11, 3), hard_state: Some(hs2) };
    ok(log.write(write).await, "write(entry 11 + hard state) after a crash")?;
    let (log, snap) = reopen(h, (log, snap)).await;
    let expected = concat(&[ents(4..=8, 1), ents(9..=9, 2), ents(10..=11, 3)]);
    check_bounds(&log, 4, 11, "after a second crash").await?;
    check_entries(&log, 4, 12, &expected, "after a second crash").await?;
    check_hard_state(&log, hs2, "after a second crash").await?;
    ok(log.purge_through(li(20)).await, "purge_through(20) past the end")?;
    let (log, snap) = reopen(h, (log, snap)).await;
    check_bounds(&log, 21, 20, "after purging past the end and a crash").await?;
    check_hard_state(&log, hs2, "after purging past the end and a crash").await?;
    check_latest(&snap, meta(3, 1), &snap_data, 7, "after a third crash").await?;
    ok(log.append(ents(21..=21, 4)).await, "append of 21 after purging past the end and a crash")?;
    check_entries(&log, 21, 22, &ents(21..=21, 4), "after purging past the end, a crash and an append").await
}

// ----------------------------------------------------------- snapshot cases

async fn snapshot_round_trip<H: StoreHarness>(h: &mut H) -> CaseResult {
    let (_log, snap) = h.fresh().await;
    let chunks = [Bytes::from_static(b"hello "), Bytes::from_static(b"snap"), Bytes::from_static(b"shot!")];
    let data: Vec<u8> = chunks.concat();
    let finished = write_snapshot(&snap, meta(5, 2), &chunks).await?;
    ensure!(finished, "finish() of the only snapshot: expected true, got false");
    for max_len in [1, 3, 4, 7, 15, 1 << 20] {
        check_latest(&snap, meta(5, 2), &data, max_len, &format!("read with max_len {max_len}")).await?;
    }
    Ok(())
}

async fn unfinished_or_aborted_writer_leaves_previous_snapshot<H: StoreHarness>(h: &mut H) -> CaseResult {
    let (_log, snap) = h.fresh().await;
    let mut dropped = ok(snap.begin(meta(2, 1)).await, "begin(2) on an empty store")?;
    ok(dropped.write(Bytes::from_static(b"never finished")).await, "write to a writer")?;
    drop(dropped);
    check_no_snapshot(&snap, "after dropping the only writer").await?;

    let data = Bytes::from_static(b"the first snapshot");
    let finished = write_snapshot(&snap, meta(5, 1), std::slice::from_ref(&data)).await?;
    ensure!(finished, "finish() of snapshot 5: expected true, got false");

    let mut dropped = ok(snap.begin(meta(9, 2)).await, "begin(9)")?;
    ok(dropped.write(Bytes::from_static(b"never finished")).await, "write to writer 9")?;
    drop(dropped);
    check_latest(&snap, meta(5, 1), &data, 4, "after dropping an unfinished writer").await?;

    let mut aborted = ok(snap.begin(meta(10, 2)).await, "begin(10)")?;
    ok(aborted.write(Bytes::from_static(b"aborted")).await, "write to writer 10")?;
    ok(aborted.abort().await, "abort() of writer 10")?;
    check_latest(&snap, meta(5, 1), &data, 4, "after aborting a writer").await?;

    let aborted = ok(snap.begin(meta(11, 2)).await, "begin(11)")?;
    ok(aborted.abort().await, "abort() of writer 11 with nothing written")?;
    check_latest(&snap, meta(5, 1), &data, 64, "after aborting an empty writer").await
}

async fn unfinished_writer_leaves_no_trace_across_crash<H: StoreHarness>(h: &mut H) -> CaseResult {
    let (log, snap) = h.fresh().await;
    let mut stale = ok(snap.begin(meta(4, 1)).await, "begin(4) on an empty store")?;
    ok(stale.write(Bytes::from_static(b"partial")).await, "write to writer 4")?;
    let (log, snap) = reopen(h, (log, snap)).await;
    check_no_snapshot(&snap, "after a crash with an unfinished writer on an empty store").await?;
    // The writer belongs to the crashed incarnation; it goes away only now.
    drop(stale);
    check_no_snapshot(&snap, "after dropping the writer of a crashed store").await?;

    let data = Bytes::from_static(b"durable snapshot");
    let finished = write_snapshot(&snap, meta(5, 1), std::slice::from_ref(&data)).await?;
    ensure!(finished, "finish() of snapshot 5: expected true, got false");
    let mut stale = ok(snap.begin(meta(9, 2)).await, "begin(9)")?;
    ok(stale.write(Bytes::from_static(b"partial newer snapshot")).await, "write to writer 9")?;
    let (log, snap) = reopen(h, (log, snap)).await;
    check_latest(&snap, meta(5, 1), &data, 5, "after a crash with an unfinished newer writer").await?;
    drop(stale);
    check_latest(&snap, meta(5, 1), &data, 5, "after dropping the writer of a crashed store").await?;

    let mut aborted = ok(snap.begin(meta(12, 2)).await, "begin(12)")?;
    ok(aborted.write(Bytes::from_static(b"aborted")).await, "write to writer 12")?;
    ok(aborted.abort().await, "abort() of writer 12")?;
    let (_log, snap) = reopen(h, (log, snap)).await;
    check_latest(&snap, meta(5, 1), &data, 5, "after an aborted writer and a crash").await
}

async fn older_snapshot_is_discarded<H: StoreHarness>(h: &mut H) -> CaseResult {
    let (log, snap) = h.fresh().await;
    let ten = Bytes::from_static(b"snapshot at ten");
    ensure!(
        write_snapshot(&snap, meta(10, 2), std::slice::from_ref(&ten)).await?,
        "finish() of snapshot 10: expected true, got false"
    );
    let older = write_snapshot(&snap, meta(5, 1), &[Bytes::from_static(b"older")]).await?;
    ensure!(!older, "finish() of snapshot 5 while 10 is current: expected false (discarded), got true");
    check_latest(&snap, meta(10, 2), &ten, 6, "after finishing an older snapshot").await?;

    // Two writers open at once: the newer finishes first, the older is discarded.
    let mut w12 = ok(snap.begin(meta(12, 2)).await, "begin(12)")?;
    let mut w13 = ok(snap.begin(meta(13, 2)).await, "begin(13)")?;
    ok(w12.write(Bytes::from_static(b"twelve")).await, "write to writer 12")?;
    let thirteen = Bytes::from_static(b"thirteen");
    ok(w13.write(thirteen.clone()).await, "write to writer 13")?;
    let finished = ok(w13.finish().await, "finish() of writer 13")?;
    ensure!(finished, "finish() of writer 13 while 10 is current: expected true, got false");
    let finished = ok(w12.finish().await, "finish() of writer 12")?;
    ensure!(!finished, "finish() of writer 12 while 13 is current: expected false, got true");
    check_latest(&snap, meta(13, 2), &thirteen, 3, "after the older of two writers finished last").await?;

    // The same index finishing later wins.
    let again = Bytes::from_static(b"thirteen, again");
    let finished = write_snapshot(&snap, meta(13, 2), std::slice::from_ref(&again)).await?;
    ensure!(finished, "finish() of a second snapshot 13: expected true (last to finish wins), got false");
    check_latest(&snap, meta(13, 2), &again, 100, "after a second snapshot at the same index").await?;

    let (_log, snap) = reopen(h, (log, snap)).await;
    check_latest(&snap, meta(13, 2), &again, 100, "after a crash").await
}

async fn reader_keeps_its_snapshot<H: StoreHarness>(h: &mut H) -> CaseResult {
    let (_log, snap) = h.fresh().await;
    let old: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    ensure!(
        write_snapshot(&snap, meta(5, 1), &[Bytes::from(old.clone())]).await?,
        "finish() of snapshot 5: expected true, got false"
    );
    let opened = ok(snap.open_latest().await, "open_latest()")?;
    let Some((opened_meta, mut reader)) = opened else {
        return Err("open_latest() after finishing snapshot 5: expected Some, got None".to_owned());
    };
    ensure_eq!(opened_meta, meta(5, 1), "meta from open_latest()");
    let first = ok(reader.next_chunk(100).await, "next_chunk(100)")?;
    let Some(first) = first else {
        return Err("next_chunk(100) of a 1000-byte snapshot: expected a chunk, got None".to_owned());
    };
    ensure!(!first.is_empty() && first.len() <= 100, "next_chunk(100): expected 1..=100 bytes, got {}", first.len());

    let new = Bytes::from(vec![0xAB; 3000]);
    ensure!(
        write_snapshot(&snap, meta(9, 2), std::slice::from_ref(&new)).await?,
        "finish() of snapshot 9 while a reader of 5 is open: expected true, got false"
    );
    let rest = read_all(&mut *reader, 128, "the rest of snapshot 5 after 9 finished").await?;
    let mut read = first.to_vec();
    read.extend_from_slice(&rest);
    ensure!(
        read == old,
        "reader opened on snapshot 5: expected its 1000 bytes after snapshot 9 finished, got {} bytes{}",
        read.len(),
        first_difference(&read, &old)
    );
    check_latest(&snap, meta(9, 2), &new, 1000, "after snapshot 9 finished").await
}

async fn empty_snapshot<H: StoreHarness>(h: &mut H) -> CaseResult {
    let (log, snap) = h.fresh().await;
    let writer = ok(snap.begin(meta(3, 1)).await, "begin(3)")?;
    ensure_eq!(writer.written(), 0, "written() of a new writer");
    let finished = ok(writer.finish().await, "finish() of an empty snapshot")?;
    ensure!(finished, "finish() of an empty snapshot: expected true, got false");
    check_latest(&snap, meta(3, 1), &[], 16, "for an empty snapshot").await?;
    let (_log, snap) = reopen(h, (log, snap)).await;
    check_latest(&snap, meta(3, 1), &[], 16, "for an empty snapshot after a crash").await
}

async fn large_snapshot<H: StoreHarness>(h: &mut H) -> CaseResult {
    const SIZE: usize = 4 << 20;
    const CHUNK: usize = 64 << 10;
    let (log, snap) = h.fresh().await;
    let data: Bytes = (0..SIZE as u64).map(|i| (i.wrapping_mul(0x9E37_79B9) >> 13) as u8).collect::<Vec<u8>>().into();
    let chunks: Vec<Bytes> = (0..SIZE).step_by(CHUNK).map(|at| data.slice(at..at + CHUNK)).collect();
    ensure!(
        write_snapshot(&snap, meta(1000, 7), &chunks).await?,
        "finish() of a 4 MiB snapshot: expected true, got false"
    );
    check_latest(&snap, meta(1000, 7), &data, CHUNK, "of 4 MiB read in 64 KiB chunks").await?;
    check_latest(&snap, meta(1000, 7), &data, 100_000, "of 4 MiB read in 100000-byte chunks").await?;
    let (_log, snap) = reopen(h, (log, snap)).await;
    check_latest(&snap, meta(1000, 7), &data, CHUNK, "of 4 MiB after a crash").await
}

async fn size_bytes_tracks_log<H: StoreHarness>(h: &mut H) -> CaseResult {
    let (log, _snap) = h.fresh().await;
    let empty = ok(log.size_bytes().await, "size_bytes() of a fresh store")?;
    ok(log.append(ents(1..=100, 1)).await, "append of 1..=100")?;
    let s100 = ok(log.size_bytes().await, "size_bytes() after appending 100 entries")?;
    ensure!(s100 > empty, "size_bytes(): expected growth after appending 100 entries, {empty} -> {s100}");
    ok(log.append(ents(101..=200, 1)).await, "append of 101..=200")?;
    let s200 = ok(log.size_bytes().await, "size_bytes() after appending 200 entries")?;
    ensure!(s200 > s100, "size_bytes(): expected growth after appending 100 more entries, {s100} -> {s200}");
    ok(log.purge_through(li(150)).await, "purge_through(150)")?;
    let s50 = ok(log.size_bytes().await, "size_bytes() after purge_through(150)")?;
    ensure!(s50 <= s200, "size_bytes(): expected no growth after purge_through(150), {s200} -> {s50}");
    ok(log.purge_through(li(200)).await, "purge_through(200)")?;
    let purged = ok(log.size_bytes().await, "size_bytes() after purging every entry")?;
    ensure!(
        purged < s200,
        "size_bytes(): expected to shrink after purging every entry, {s200} (200 entries) -> {purged}"
    );
    Ok(())
}
