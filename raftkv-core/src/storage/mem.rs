//! In-memory [`LogStore`] and [`SnapshotStore`] that model a disk.
//!
//! A [`MemDisk`] holds the durable state of one member: its log, hard state and
//! latest snapshot. Store handles ([`MemLogStore`], [`MemSnapshotStore`]) are
//! bound to the disk's current *incarnation*; [`MemDisk::crash`] starts a new
//! one, which kills every older handle while the durable state stays.
//!
//! Every durable commit (a [`LogWrite`], a purge, a finished snapshot) takes
//! effect at once, or — with [`MemDisk::with_write_latency`] — after a delay
//! measured in tokio time (virtual under a paused runtime). A crash during that
//! delay loses the commit. Commits take effect in the order they were issued,
//! and several may be in flight at once (they overlap, like a pipelined disk).

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;

use super::{LogBounds, LogState, LogStore, LogWrite, SnapshotReader, SnapshotStore, SnapshotWriter, StorageError};
use crate::raft::{Entry, HardState, SnapshotMeta};
use crate::types::LogIndex;

/// An in-memory disk holding one member's durable log, hard state and snapshot.
///
/// Clones share the same disk. Open stores on it with [`MemDisk::log_store`]
/// and [`MemDisk::snapshot_store`]; simulate a crash with [`MemDisk::crash`].
#[derive(Clone, Debug, Default)]
pub struct MemDisk {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Delay of every durable commit.
    write_latency: Duration,
    state: Mutex<DiskState>,
    /// Woken when a queued commit leaves the queue, and on a crash.
    turn: Notify,
}

/// Everything on the disk. All of it is durable: commits only touch it once
/// they take effect.
#[derive(Default)]
struct DiskState {
    /// Bumped by every crash; handles of older incarnations are dead.
    incarnation: u64,
    /// Last purged index: `log[0]` has index `purged + 1`.
    purged: u64,
    log: VecDeque<Entry>,
    /// Sum of `Entry::encoded_len` over `log`.
    log_bytes: u64,
    hard_state: HardState,
    snapshot: Option<(SnapshotMeta, Bytes)>,
    /// Durable commits so far.
    commits: u64,
    /// Ticket of the next commit issued on a disk with latency.
    next_ticket: u64,
    /// Tickets of commits issued but not yet taken effect (or abandoned).
    queued: BTreeSet<u64>,
    /// Set by [`MemDisk::set_full`]: every commit fails and changes nothing.
    full: bool,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("MemDisk");
        d.field("write_latency", &self.write_latency);
        match self.state.try_lock() {
            Ok(s) => d
                .field("incarnation", &s.incarnation)
                .field("first_index", &s.first_index())
                .field("last_index", &s.last_index())
                .field("hard_state", &s.hard_state)
                .field("snapshot", &s.snapshot.as_ref().map(|(meta, data)| (meta, data.len())))
                .field("commits", &s.commits),
            Err(_) => d.field("state", &"<locked>"),
        };
        d.finish()
    }
}

impl DiskState {
    fn check(&self, incarnation: u64) -> Result<(), StorageError> {
        if self.incarnation == incarnation {
            Ok(())
        } else {
            Err(StorageError::Closed)
        }
    }

    fn first_index(&self) -> u64 {
        self.purged.saturating_add(1)
    }

    fn last_index(&self) -> u64 {
        self.purged.saturating_add(self.log.len() as u64)
    }

    fn log_size(&self) -> u64 {
        self.log_bytes + self.hard_state.encoded_len() as u64
    }

    fn log_state(&self) -> LogState {
        LogState {
            hard_state: self.hard_state,
            first_index: LogIndex(self.first_index()),
            last_index: LogIndex(self.last_index()),
        }
    }

    fn bounds(&self) -> LogBounds {
        LogBounds { purged: self.purged, last: self.last_index() }
    }

    fn entries(&self, from: LogIndex, to: LogIndex) -> Result<Vec<Entry>, StorageError> {
        if from >= to {
            return Ok(Vec::new());
        }
        self.bounds().check_range(from, to)?;
        let first = self.first_index();
        let start = (from.0 - first) as usize;
        let end = (to.0 - first) as usize;
        Ok(self.log.range(start..end).cloned().collect())
    }

    /// Runs one commit: `apply` either changes the state and succeeds, or fails
    /// and changes nothing.
    fn commit<T>(&mut self, apply: impl FnOnce(&mut Self) -> Result<T, StorageError>) -> Result<T, StorageError> {
        if self.full {
            return Err(StorageError::Io {
                location: "in-memory disk".to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left on device"),
            });
        }
        let out = apply(self)?;
        self.commits += 1;
        Ok(out)
    }

    /// Validates the whole write first, then applies it.
    fn apply_write(&mut self, write: LogWrite) -> Result<(), StorageError> {
        let plan = self.bounds().plan_write(&write)?;
        if let Some((from, _)) = plan.remove {
            let keep = (from - 1 - self.purged) as usize;
            let removed: u64 = self.log.drain(keep..).map(|e| e.encoded_len() as u64).sum();
            self.log_bytes -= removed;
        }
        self.log.reserve(write.entries.len());
        for entry in write.entries {
            self.log_bytes += entry.encoded_len() as u64;
            self.log.push_back(entry);
        }
        if let Some(hard_state) = write.hard_state {
            self.hard_state = hard_state;
        }
        Ok(())
    }

    fn purge_through(&mut self, index: LogIndex) {
        let Some(plan) = self.bounds().plan_purge(index) else { return };
        if let Some((_, through)) = plan.remove {
            let n = (through - self.purged) as usize;
            let removed: u64 = self.log.drain(..n).map(|e| e.encoded_len() as u64).sum();
            self.log_bytes -= removed;
        }
        self.purged = plan.bounds.purged;
    }

    /// Makes `data` the current snapshot unless the current one is newer.
    fn install_snapshot(&mut self, meta: SnapshotMeta, data: Bytes) -> bool {
        if let Some((current, _)) = &self.snapshot {
            if current.last_index > meta.last_index {
                return false;
            }
        }
        self.snapshot = Some((meta, data));
        true
    }
}

/// A commit's place in the disk queue; leaving it (done, failed or
/// abandoned) lets the next commit take effect.
struct QueueSlot<'a> {
    inner: &'a Inner,
    ticket: u64,
}

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        let removed = {
            let mut state = self.inner.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.queued.remove(&self.ticket)
        };
        if removed {
            self.inner.turn.notify_waiters();
        }
    }
}

impl MemDisk {
    /// An empty disk whose commits take effect immediately.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty disk whose every durable commit ([`LogStore::write`],
    /// [`LogStore::purge_through`], [`SnapshotWriter::finish`]) waits `latency`
    /// (tokio time, so virtual under a paused runtime) before it takes effect;
    /// a crash during that wait loses the write.
    #[must_use]
    pub fn with_write_latency(latency: Duration) -> Self {
        Self { inner: Arc::new(Inner { write_latency: latency, ..Inner::default() }) }
    }

    /// A log store bound to the disk's current incarnation.
    #[must_use]
    pub fn log_store(&self) -> MemLogStore {
        MemLogStore { disk: self.clone(), incarnation: self.lock().incarnation }
    }

    /// A snapshot store bound to the disk's current incarnation.
    #[must_use]
    pub fn snapshot_store(&self) -> MemSnapshotStore {
        MemSnapshotStore { disk: self.clone(), incarnation: self.lock().incarnation }
    }

    /// Simulated crash: every handle made before this call (and every snapshot
    /// reader or writer opened through one) becomes dead: its calls, including
    /// those in flight that have not yet taken effect, return
    /// [`StorageError::Closed`] and change nothing. Durable state stays; new
    /// handles see exactly that state.
    pub fn crash(&self) {
        {
            let mut state = self.lock();
            state.incarnation += 1;
            state.queued.clear();
        }
        self.inner.turn.notify_waiters();
    }

    /// Simulated full disk: while `full`, every commit (a log write, a purge,
    /// a finished snapshot) fails with [`StorageError::Io`] and changes
    /// nothing; reads go on. Commits succeed again once it is cleared.
    pub fn set_full(&self, full: bool) {
        self.lock().full = full;
    }

    /// Bytes of durable log entries (sum of [`Entry::encoded_len`]) plus
    /// [`HardState::encoded_len`]: the "raft state size".
    #[must_use]
    pub fn log_size_bytes(&self) -> u64 {
        self.lock().log_size()
    }

    /// Size of the current durable snapshot (0 if none).
    #[must_use]
    pub fn snapshot_size_bytes(&self) -> u64 {
        self.lock().snapshot.as_ref().map_or(0, |(_, data)| data.len() as u64)
    }

    /// The current durable snapshot, whole.
    #[must_use]
    pub fn snapshot(&self) -> Option<(SnapshotMeta, Bytes)> {
        self.lock().snapshot.clone()
    }

    /// Number of durable commits so far.
    #[must_use]
    pub fn commit_count(&self) -> u64 {
        self.lock().commits
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        self.inner.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Locks the state after checking that `incarnation` is still alive.
    fn live(&self, incarnation: u64) -> Result<MutexGuard<'_, DiskState>, StorageError> {
        let state = self.lock();
        state.check(incarnation)?;
        Ok(state)
    }

    /// Fails with [`StorageError::Closed`] if `incarnation` is dead.
    fn ensure_live(&self, incarnation: u64) -> Result<(), StorageError> {
        self.lock().check(incarnation)
    }

    /// Runs `apply` as one durable commit of a handle of `incarnation`: after
    /// the write latency, in issue order, unless the disk crashed meanwhile.
    async fn commit<T, F>(&self, incarnation: u64, apply: F) -> Result<T, StorageError>
    where
        F: FnOnce(&mut DiskState) -> Result<T, StorageError>,
    {
        let latency = self.inner.write_latency;
        if latency.is_zero() {
            return self.live(incarnation)?.commit(apply);
        }
        let ticket = {
            let mut state = self.live(incarnation)?;
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            state.queued.insert(ticket);
            ticket
        };
        let _slot = QueueSlot { inner: &self.inner, ticket };
        tokio::time::sleep(latency).await;
        loop {
            let mut turn = pin!(self.inner.turn.notified());
            turn.as_mut().enable();
            {
                let mut state = self.live(incarnation)?;
                if state.queued.first() == Some(&ticket) {
                    return state.commit(apply);
                }
            }
            turn.await;
        }
    }
}

/// A [`LogStore`] on a [`MemDisk`], bound to one incarnation of it.
#[derive(Clone, Debug)]
pub struct MemLogStore {
    disk: MemDisk,
    incarnation: u64,
}

#[async_trait]
impl LogStore for MemLogStore {
    async fn state(&self) -> Result<LogState, StorageError> {
        Ok(self.disk.live(self.incarnation)?.log_state())
    }

    async fn entries(&self, from: LogIndex, to: LogIndex) -> Result<Vec<Entry>, StorageError> {
        self.disk.live(self.incarnation)?.entries(from, to)
    }

    async fn write(&self, write: LogWrite) -> Result<(), StorageError> {
        self.disk.commit(self.incarnation, move |s| s.apply_write(write)).await
    }

    async fn purge_through(&self, index: LogIndex) -> Result<(), StorageError> {
        self.disk
            .commit(self.incarnation, move |s| {
                s.purge_through(index);
                Ok(())
            })
            .await
    }

    async fn size_bytes(&self) -> Result<u64, StorageError> {
        Ok(self.disk.live(self.incarnation)?.log_size())
    }
}

/// A [`SnapshotStore`] on a [`MemDisk`], bound to one incarnation of it.
#[derive(Clone, Debug)]
pub struct MemSnapshotStore {
    disk: MemDisk,
    incarnation: u64,
}

#[async_trait]
impl SnapshotStore for MemSnapshotStore {
    async fn begin(&self, meta: SnapshotMeta) -> Result<Box<dyn SnapshotWriter>, StorageError> {
        self.disk.ensure_live(self.incarnation)?;
        Ok(Box::new(MemSnapshotWriter {
            disk: self.disk.clone(),
            incarnation: self.incarnation,
            meta,
            chunks: Vec::new(),
            written: 0,
        }))
    }

    async fn open_latest(&self) -> Result<Option<(SnapshotMeta, Box<dyn SnapshotReader>)>, StorageError> {
        let snapshot = self.disk.live(self.incarnation)?.snapshot.clone();
        Ok(snapshot.map(|(meta, data)| {
            let reader = MemSnapshotReader { disk: self.disk.clone(), incarnation: self.incarnation, data, pos: 0 };
            (meta, Box::new(reader) as Box<dyn SnapshotReader>)
        }))
    }

    async fn latest(&self) -> Result<Option<(SnapshotMeta, u64)>, StorageError> {
        let state = self.disk.live(self.incarnation)?;
        Ok(state.snapshot.as_ref().map(|(meta, data)| (*meta, data.len() as u64)))
    }
}

/// Collects chunks in memory; nothing reaches the disk before `finish`.
struct MemSnapshotWriter {
    disk: MemDisk,
    incarnation: u64,
    meta: SnapshotMeta,
    chunks: Vec<Bytes>,
    written: u64,
}

#[async_trait]
impl SnapshotWriter for MemSnapshotWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        self.disk.ensure_live(self.incarnation)?;
        if !chunk.is_empty() {
            self.written += chunk.len() as u64;
            self.chunks.push(chunk);
        }
        Ok(())
    }

    fn written(&self) -> u64 {
        self.written
    }

    async fn finish(self: Box<Self>) -> Result<bool, StorageError> {
        let Self { disk, incarnation, meta, mut chunks, written } = *self;
        disk.ensure_live(incarnation)?;
        let data = match chunks.len() {
            0 => Bytes::new(),
            1 => chunks.pop().unwrap_or_default(),
            _ => {
                let mut buf = BytesMut::with_capacity(written as usize);
                for chunk in &chunks {
                    buf.extend_from_slice(chunk);
                }
                buf.freeze()
            }
        };
        drop(chunks);
        disk.commit(incarnation, move |s| Ok(s.install_snapshot(meta, data))).await
    }

    async fn abort(self: Box<Self>) -> Result<(), StorageError> {
        self.disk.ensure_live(self.incarnation)?;
        Ok(())
    }
}

/// Reads the snapshot that was current when it was opened.
struct MemSnapshotReader {
    disk: MemDisk,
    incarnation: u64,
    data: Bytes,
    pos: usize,
}

#[async_trait]
impl SnapshotReader for MemSnapshotReader {
    /// A `max_len` of 0 is treated as 1 so that reading always progresses.
    async fn next_chunk(&mut self, max_len: usize) -> Result<Option<Bytes>, StorageError> {
        self.disk.ensure_live(self.incarnation)?;
        if self.pos >= self.data.len() {
            return Ok(None);
        }
        let end = self.data.len().min(self.pos.saturating_add(max_len.max(1)));
        let chunk = self.data.slice(self.pos..end);
        self.pos = end;
        Ok(Some(chunk))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use tokio::time::Instant;

    use super::MemDisk;
    use crate::raft::{Entry, EntryPayload, HardState, SnapshotMeta};
    use crate::storage::{LogStore, LogWrite, SnapshotStore, StorageError};
    use crate::types::{LogIndex, NodeId, Term};

    const LATENCY: Duration = Duration::from_millis(10);

    fn ents(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
        range
            .map(|i| Entry {
                term: Term(term),
                index: LogIndex(i),
                payload: EntryPayload::Command(Bytes::from(format!("cmd-{i}"))),
            })
            .collect()
    }

    fn meta(index: u64, term: u64) -> SnapshotMeta {
        SnapshotMeta { last_index: LogIndex(index), last_term: Term(term) }
    }

    #[tokio::test(start_paused = true)]
    async fn zero_latency_commits_take_no_time() {
        let disk = MemDisk::new();
        let log = disk.log_store();
        let start = Instant::now();
        log.append(ents(1..=3, 1)).await.unwrap();
        log.purge_through(LogIndex(1)).await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO, "a disk without latency must not sleep");
        assert_eq!(disk.commit_count(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn write_latency_is_virtual_and_pipelined() {
        let disk = MemDisk::with_write_latency(LATENCY);
        let log = disk.log_store();
        let start = Instant::now();
        log.append(ents(1..=3, 1)).await.unwrap();
        assert_eq!(start.elapsed(), LATENCY);
        assert_eq!(disk.commit_count(), 1);

        // Two concurrent commits overlap and take effect in issue order.
        let start = Instant::now();
        let (a, b) = tokio::join!(log.append(ents(4..=5, 1)), log.append(ents(6..=7, 1)));
        a.unwrap();
        b.unwrap();
        assert_eq!(start.elapsed(), LATENCY, "concurrent commits should overlap");
        assert_eq!(log.entries(LogIndex(1), LogIndex(8)).await.unwrap(), ents(1..=7, 1));
        assert_eq!(disk.commit_count(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn abandoned_commit_does_not_block_the_queue() {
        let disk = MemDisk::with_write_latency(LATENCY);
        let log = disk.log_store();
        let abandoned = tokio::time::timeout(LATENCY / 2, log.append(ents(1..=1, 1))).await;
        assert!(abandoned.is_err(), "the append should have timed out");
        log.append(ents(1..=2, 1)).await.unwrap();
        assert_eq!(log.state().await.unwrap().last_index, LogIndex(2));
    }

    #[tokio::test(start_paused = true)]
    async fn crash_loses_in_flight_write() {
        let disk = MemDisk::with_write_latency(LATENCY);
        let log = disk.log_store();
        log.append(ents(1..=2, 1)).await.unwrap();

        let in_flight = tokio::spawn({
            let log = log.clone();
            async move { log.append(ents(3..=4, 1)).await }
        });
        let finish = tokio::spawn({
            let snap = disk.snapshot_store();
            async move {
                let mut w = snap.begin(meta(2, 1)).await?;
                w.write(Bytes::from_static(b"snap")).await?;
                w.finish().await
            }
        });
        tokio::time::sleep(LATENCY / 2).await;
        disk.crash();
        assert!(matches!(in_flight.await.unwrap(), Err(StorageError::Closed)));
        assert!(matches!(finish.await.unwrap(), Err(StorageError::Closed)));

        // The durable state is exactly the acknowledged append.
        let state = disk.log_store().state().await.unwrap();
        assert_eq!((state.first_index, state.last_index), (LogIndex(1), LogIndex(2)));
        assert_eq!(disk.snapshot(), None);
        assert_eq!(disk.commit_count(), 1);

        // Even after the latency has passed, nothing of the lost write shows up.
        tokio::time::sleep(LATENCY * 2).await;
        assert_eq!(disk.log_store().state().await.unwrap().last_index, LogIndex(2));
    }

    #[tokio::test]
    async fn handles_from_before_a_crash_are_closed() {
        let disk = MemDisk::new();
        let log = disk.log_store();
        let snap = disk.snapshot_store();
        log.append(ents(1..=3, 1)).await.unwrap();
        let mut w = snap.begin(meta(3, 1)).await.unwrap();
        w.write(Bytes::from_static(b"abc")).await.unwrap();
        assert!(w.finish().await.unwrap());
        let (_, mut reader) = snap.open_latest().await.unwrap().unwrap();
        let mut writer = snap.begin(meta(4, 1)).await.unwrap();

        disk.crash();

        assert!(matches!(log.state().await, Err(StorageError::Closed)));
        assert!(matches!(log.entries(LogIndex(1), LogIndex(2)).await, Err(StorageError::Closed)));
        assert!(matches!(log.append(ents(4..=4, 1)).await, Err(StorageError::Closed)));
        assert!(matches!(log.purge_through(LogIndex(2)).await, Err(StorageError::Closed)));
        assert!(matches!(log.size_bytes().await, Err(StorageError::Closed)));
        assert!(matches!(snap.latest().await, Err(StorageError::Closed)));
        assert!(matches!(snap.open_latest().await, Err(StorageError::Closed)));
        assert!(matches!(snap.begin(meta(5, 1)).await, Err(StorageError::Closed)));
        assert!(matches!(reader.next_chunk(2).await, Err(StorageError::Closed)));
        assert!(matches!(writer.write(Bytes::from_static(b"x")).await, Err(StorageError::Closed)));
        assert!(matches!(writer.finish().await, Err(StorageError::Closed)));

        // New handles see the durable state, untouched by the dead calls.
        let log = disk.log_store();
        let state = log.state().await.unwrap();
        assert_eq!((state.first_index, state.last_index), (LogIndex(1), LogIndex(3)));
        assert_eq!(disk.snapshot(), Some((meta(3, 1), Bytes::from_static(b"abc"))));
        log.append(ents(4..=4, 1)).await.unwrap();
    }

    #[tokio::test]
    async fn sizes_and_counters() {
        let disk = MemDisk::new();
        let log = disk.log_store();
        let hs = HardState { term: Term(300), vote: Some(NodeId(2)), commit: LogIndex(4) };
        assert_eq!(disk.log_size_bytes(), HardState::default().encoded_len() as u64);
        let entries = ents(1..=10, 2);
        let total: u64 = entries.iter().map(|e| e.encoded_len() as u64).sum();
        log.write(LogWrite { entries: entries.clone(), hard_state: Some(hs), ..LogWrite::default() }).await.unwrap();
        assert_eq!(disk.log_size_bytes(), total + hs.encoded_len() as u64);
        assert_eq!(log.size_bytes().await.unwrap(), disk.log_size_bytes());

        log.purge_through(LogIndex(4)).await.unwrap();
        log.truncate_after(LogIndex(8)).await.unwrap();
        let kept: u64 = entries[4..8].iter().map(|e| e.encoded_len() as u64).sum();
        assert_eq!(disk.log_size_bytes(), kept + hs.encoded_len() as u64);

        assert_eq!(disk.snapshot_size_bytes(), 0);
        let snap = disk.snapshot_store();
        let mut w = snap.begin(meta(4, 2)).await.unwrap();
        w.write(Bytes::from_static(b"hello ")).await.unwrap();
        w.write(Bytes::from_static(b"world")).await.unwrap();
        assert!(w.finish().await.unwrap());
        assert_eq!(disk.snapshot_size_bytes(), 11);
        assert_eq!(disk.snapshot(), Some((meta(4, 2), Bytes::from_static(b"hello world"))));
        assert_eq!(disk.commit_count(), 4);

        // Clones share the disk.
        let clone = disk.clone();
        clone.crash();
        assert!(matches!(log.state().await, Err(StorageError::Closed)));
        assert_eq!(clone.log_size_bytes(), disk.log_size_bytes());
    }
}
