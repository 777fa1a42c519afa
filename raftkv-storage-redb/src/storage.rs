//! [`RedbStorage`]: one redb database file holding the logs of many Raft
//! members, with a snapshot directory per member beside it.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use raftkv_core::storage::codec;
use raftkv_core::storage::{FileSnapshotStore, StorageError};
use raftkv_core::MemberId;
use raftkv_core::{GroupId, LogIndex, NodeId};
use redb::{Database, ReadableDatabase};
use tokio::sync::mpsc;

use crate::database::{open_database, DbSlot};
use crate::error::{blocking, corrupt_hard_state, ResultExt};
use crate::journal::JOURNAL;
use crate::keys::{LOG, META};
use crate::log_store::RedbLogStore;
use crate::options::RedbOptions;
use crate::tables::{load_bounds, read_meta, verify_entries};
use crate::wal::Wal;
use crate::writer::{BoundsMap, WriteRequest, Writer};

/// Name of the database file inside the storage directory.
pub const DB_FILE_NAME: &str = "raftkv.redb";

/// Name of the directory of snapshot directories inside the storage directory.
pub const SNAPSHOTS_DIR_NAME: &str = "snapshots";

/// What every handle of one open database shares.
pub(crate) struct Shared {
    /// The database; the writer reopens it after a failed write.
    pub db: Arc<DbSlot>,
    /// The database file, for error locations.
    pub file: Arc<PathBuf>,
    pub dir: PathBuf,
    pub writes: mpsc::UnboundedSender<WriteRequest>,
    pub bounds: BoundsMap,
    pub commits: Arc<AtomicU64>,
}

/// One redb database shared by the Raft logs of many members (multi-raft),
/// plus a [`FileSnapshotStore`] per member.
///
/// Every write of every log goes through one writer task that coalesces
/// concurrent requests into one commit (group commit; see the crate docs).
/// Clones share the same database. The file stays locked until every handle
/// (this, its clones and every [`RedbLogStore`]) is dropped.
#[derive(Clone)]
pub struct RedbStorage {
    shared: Arc<Shared>,
}

impl fmt::Debug for RedbStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStorage").field("file", &self.shared.file).field("commits", &self.commits()).finish()
    }
}

impl RedbStorage {
    /// Opens (creating them if needed) the database `dir/raftkv.redb` and the
    /// snapshot directory `dir/snapshots/`.
    ///
    /// A file that is not a redb database, or that is damaged (truncated, a
    /// page checksum mismatch with [`RedbOptions::check_integrity_on_open`]),
    /// fails with an error naming the file. Must be called inside a tokio
    /// runtime: it starts the writer task.
    pub async fn open(dir: impl AsRef<Path>, options: RedbOptions) -> Result<Self, StorageError> {
        let dir = dir.as_ref().to_path_buf();
        let file = Arc::new(dir.join(DB_FILE_NAME));
        let db = {
            let (dir, file) = (dir.clone(), file.clone());
            move || open_database(&dir, &file, options)
        };
        let (db, wal) = blocking(&file, "open database", db).await?;
        tracing::debug!(file = %file.display(), ?options, "opened redb storage");
        Ok(Self::start(dir, file, db, options, wal))
    }

    /// Wraps an open database whose tables exist and starts its writer task.
    fn start(dir: PathBuf, file: Arc<PathBuf>, db: Database, options: RedbOptions, wal: Wal) -> Self {
        let db = Arc::new(DbSlot::new(db));
        let (writes, requests) = mpsc::unbounded_channel();
        let bounds: BoundsMap = Arc::new(Mutex::new(HashMap::new()));
        let commits = Arc::new(AtomicU64::new(0));
        let writer = Writer::new(
            requests,
            Arc::downgrade(&db),
            dir.clone(),
            file.clone(),
            options,
            bounds.clone(),
            commits.clone(),
            wal,
        );
        tokio::spawn(writer.run());
        Self { shared: Arc::new(Shared { db, file, dir, writes, bounds, commits }) }
    }

    /// The log store and snapshot store of one member: its log in the shared
    /// database, and a [`FileSnapshotStore`] at `dir/snapshots/g<group>-n<node>`.
    ///
    /// Reads the log's bounds, checking them, the hard state and the
    /// checksum of every stored entry, and that the latest snapshot covers
    /// the purged part of the log; may be called again for the same member,
    /// and all its handles share one log.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] naming the database file and the entry, or
    /// the snapshot directory or file, that is damaged or missing.
    pub async fn member(
        &self,
        group: GroupId,
        node: NodeId,
    ) -> Result<(RedbLogStore, FileSnapshotStore), StorageError> {
        let log = MemberId::new(group, node);
        let (db, file) = (self.shared.db.clone(), self.shared.file.clone());
        let loaded = blocking(&self.shared.file, "load log", move || {
            let txn = db.get(&file)?.begin_read().at(&file, "begin read transaction")?;
            let meta_table = txn.open_table(META).at(&file, "open meta table")?;
            let log_table = txn.open_table(LOG).at(&file, "open log table")?;
            let journal_table = txn.open_table(JOURNAL).at(&file, "open journal table")?;
            let meta = read_meta(&meta_table, &file, log)?;
            if let Some(record) = &meta.hard_state {
                codec::decode_hard_state(record).map_err(|e| corrupt_hard_state(&file, log, &e))?;
            }
            let bounds = load_bounds(&log_table, &journal_table, &meta, &file, log)?;
            verify_entries(&log_table, &journal_table, &file, log)?;
            Ok(bounds)
        })
        .await?;
        // Keep bounds already cached: the writer may have moved them since we read.
        let purged = {
            let mut all = self.shared.bounds.lock().unwrap_or_else(PoisonError::into_inner);
            all.entry(log).or_insert(loaded).purged
        };

        let snapshots_dir = self.shared.dir.join(SNAPSHOTS_DIR_NAME).join(format!("g{}-n{}", group.0, node.0));
        let snapshots = FileSnapshotStore::open(snapshots_dir).await?;
        // A log purged past every snapshot lost one: refuse it, naming the directory.
        snapshots.check_covers(LogIndex(purged)).await?;
        Ok((RedbLogStore::new(self.shared.clone(), log), snapshots))
    }

    /// Number of write transactions the group-commit writer has committed
    /// since the database was opened (each one fsync with
    /// [`SyncMode::Always`](crate::SyncMode::Always)).
    #[must_use]
    pub fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// Path of the database file.
    #[must_use]
    pub fn db_path(&self) -> &Path {
        &self.shared.file
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use raftkv_core::raft::{Entry, EntryPayload};
    use raftkv_core::storage::LogStore;
    use raftkv_core::{LogIndex, Term};
    use redb::ReadableTable;

    use super::*;
    use crate::journal;
    use crate::wal::WAL_FILE_NAME;

    fn ents(range: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
        range.map(|i| Entry { term: Term(1), index: LogIndex(i), payload: EntryPayload::Blank }).collect()
    }

    /// A database with entries 1..=5 (checkpointed into `raft_log` by a
    /// reopen) and a hard state for member (1, 1).
    async fn filled(dir: &Path) -> PathBuf {
        let storage = RedbStorage::open(dir, RedbOptions::default()).await.unwrap();
        let (log, _) = storage.member(GroupId(1), NodeId(1)).await.unwrap();
        log.append(ents(1..=5)).await.unwrap();
        log.save_hard_state(raftkv_core::raft::HardState { term: Term(1), vote: None, commit: LogIndex(2) })
            .await
            .unwrap();
        drop((log, storage));
        let storage = RedbStorage::open(dir, RedbOptions::default()).await.unwrap();
        storage.db_path().to_path_buf()
    }

    /// Indices of member (g, n) in `raft_log` and in the journal (in seq order).
    fn placement(file: &Path, g: u64, n: u64) -> (Vec<u64>, Vec<u64>) {
        let db = Database::create(file).unwrap();
        let txn = db.begin_read().unwrap();
        let logged = txn
            .open_table(LOG)
            .unwrap()
            .range((g, n, 0)..=(g, n, u64::MAX))
            .unwrap()
            .map(|r| r.unwrap().0.value().2)
            .collect();
        let journaled = txn
            .open_table(JOURNAL)
            .unwrap()
            .iter()
            .unwrap()
            .filter_map(|r| {
                let (_, row) = r.unwrap();
                let (log, index, _) = journal::decode_row(row.value()).unwrap();
                (log == MemberId::new(GroupId(g), NodeId(n))).then_some(index)
            })
            .collect();
        (logged, journaled)
    }

    /// Sum of stored row bytes of member (g, n), as `size_bytes` should count them.
    fn stored_bytes(file: &Path, g: u64, n: u64) -> u64 {
        let db = Database::create(file).unwrap();
        let txn = db.begin_read().unwrap();
        let mut bytes = 0;
        for r in txn.open_table(LOG).unwrap().range((g, n, 0)..=(g, n, u64::MAX)).unwrap() {
            bytes += 24 + r.unwrap().1.value().len() as u64;
        }
        for r in txn.open_table(JOURNAL).unwrap().iter().unwrap() {
            let (_, row) = r.unwrap();
            let (log, _, _) = journal::decode_row(row.value()).unwrap();
            if log == (MemberId::new(GroupId(g), NodeId(n))) {
                bytes += row.value().len() as u64;
            }
        }
        bytes
    }

    /// Entries 1..=5 of member (1, 1) in `raft_log` and 6..=8 in the journal; returns the file.
    async fn split(dir: &Path) -> PathBuf {
        let file = filled(dir).await;
        let storage = RedbStorage::open(dir, RedbOptions::default()).await.unwrap();
        let (log, _) = storage.member(GroupId(1), NodeId(1)).await.unwrap();
        log.append(ents(6..=8)).await.unwrap();
        drop((log, storage));
        assert_eq!(placement(&file, 1, 1), (vec![1, 2, 3, 4, 5], vec![6, 7, 8]));
        file
    }

    /// Opens `dir` without the checkpoint `open` runs, so the journal stays as it is.
    fn open_without_checkpoint(dir: &Path, file: &Path) -> RedbStorage {
        let db = Database::create(file).unwrap();
        let wal = crate::database::replay_for_test(&db, file, &dir.join(WAL_FILE_NAME)).unwrap();
        RedbStorage::start(dir.to_path_buf(), Arc::new(file.to_path_buf()), db, RedbOptions::default(), wal)
    }

    #[tokio::test]
    async fn entries_split_across_the_journal_and_the_log_read_as_one_log() {
        let dir = tempfile::tempdir().unwrap();
        let file = split(dir.path()).await;
        let storage = open_without_checkpoint(dir.path(), &file);
        let (log, _) = storage.member(GroupId(1), NodeId(1)).await.unwrap();
        let state = log.state().await.unwrap();
        assert_eq!((state.first_index, state.last_index), (LogIndex(1), LogIndex(8)));
        assert_eq!(log.entries(LogIndex(1), LogIndex(9)).await.unwrap(), ents(1..=8));
        assert_eq!(log.entries(LogIndex(4), LogIndex(7)).await.unwrap(), ents(4..=6));
        assert_eq!(log.entries(LogIndex(7), LogIndex(9)).await.unwrap(), ents(7..=8));
        assert!(matches!(log.entries(LogIndex(5), LogIndex(10)).await, Err(StorageError::Unavailable { .. })));
        let size = log.size_bytes().await.unwrap();
        log.append(ents(9..=9)).await.unwrap();
        assert!(matches!(log.append(ents(9..=9)).await, Err(StorageError::NotContiguous { .. })));
        drop((log, storage));
        assert_eq!(placement(&file, 1, 1), (vec![1, 2, 3, 4, 5], vec![6, 7, 8, 9]));
        let storage = open_without_checkpoint(dir.path(), &file);
        let (log, _) = storage.member(GroupId(1), NodeId(1)).await.unwrap();
        assert!(log.size_bytes().await.unwrap() > size);
    }

    #[tokio::test]
    async fn truncation_and_purge_remove_entries_from_the_journal_and_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let file = split(dir.path()).await;
        let storage = open_without_checkpoint(dir.path(), &file);
        let (log, _) = storage.member(GroupId(1), NodeId(1)).await.unwrap();
        let hs = log.size_bytes().await.unwrap() - stored_bytes_while_open(&log).await;
        log.truncate_after(LogIndex(6)).await.unwrap();
        assert_eq!(log.entries(LogIndex(1), LogIndex(7)).await.unwrap(), ents(1..=6));
        log.purge_through(LogIndex(3)).await.unwrap();
        let size = log.size_bytes().await.unwrap();
        drop((log, storage));
        assert_eq!(placement(&file, 1, 1), (vec![4, 5], vec![6]));
        assert_eq!(size, stored_bytes(&file, 1, 1) + hs);

        // Truncating into `raft_log` and purging into the journal.
        let storage = open_without_checkpoint(dir.path(), &file);
        let (log, _) = storage.member(GroupId(1), NodeId(1)).await.unwrap();
        log.truncate_after(LogIndex(4)).await.unwrap();
        log.append(ents(5..=7)).await.unwrap();
        log.purge_through(LogIndex(5)).await.unwrap();
        assert_eq!(log.entries(LogIndex(6), LogIndex(8)).await.unwrap(), ents(6..=7));
        let size = log.size_bytes().await.unwrap();
        drop((log, storage));
        assert_eq!(placement(&file, 1, 1), (vec![], vec![6, 7]));
        assert_eq!(size, stored_bytes(&file, 1, 1) + hs);

        // A reopen checkpoints the journal; the log reads the same.
        let storage = RedbStorage::open(dir.path(), RedbOptions::default()).await.unwrap();
        let (log, _) = storage.member(GroupId(1), NodeId(1)).await.unwrap();
        let state = log.state().await.unwrap();
        assert_eq!((state.first_index, state.last_index), (LogIndex(6), LogIndex(7)));
        assert_eq!(log.entries(LogIndex(6), LogIndex(8)).await.unwrap(), ents(6..=7));
        assert_eq!(log.size_bytes().await.unwrap(), size);
        drop((log, storage));
        assert_eq!(placement(&file, 1, 1), (vec![6, 7], vec![]));
    }

    /// Bytes of the stored entries of `log` as the codec records them plus 24 bytes of key each.
    async fn stored_bytes_while_open(log: &RedbLogStore) -> u64 {
        let state = log.state().await.unwrap();
        let entries = log.entries(state.first_index, LogIndex(state.last_index.0 + 1)).await.unwrap();
        entries.iter().map(|e| 24 + codec::encode_entry(e).len() as u64).sum()
    }

    #[tokio::test]
    async fn the_writer_checkpoints_a_full_journal_and_the_log_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let storage = RedbStorage::open(dir.path(), RedbOptions::default()).await.unwrap();
        let file = storage.db_path().to_path_buf();
        let (a, _) = storage.member(GroupId(1), NodeId(1)).await.unwrap();
        let (b, _) = storage.member(GroupId(2), NodeId(1)).await.unwrap();
        let half = journal::JOURNAL_CHECKPOINT / 2;
        for chunk in 0..2 {
            let (from, to) = (chunk * half + 1, chunk * half + half);
            let (ra, rb) = tokio::join!(a.append(ents(from..=to)), b.append(ents(from..=to)));
            ra.unwrap();
            rb.unwrap();
        }
        // The journal is full: this write first moves it into `raft_log`.
        let last = 2 * half;
        a.append(ents(last + 1..=last + 1)).await.unwrap();
        let (size_a, size_b) = (a.size_bytes().await.unwrap(), b.size_bytes().await.unwrap());
        assert_eq!(a.entries(LogIndex(1), LogIndex(last + 2)).await.unwrap(), ents(1..=last + 1));
        drop((a, b, storage));
        let (logged, journaled) = placement(&file, 1, 1);
        assert_eq!((logged.len() as u64, journaled), (last, vec![last + 1]));
        assert_eq!(placement(&file, 2, 1).1, Vec::<u64>::new());
        assert_eq!(stored_bytes(&file, 1, 1), size_a);

        let storage = RedbStorage::open(dir.path(), RedbOptions::default()).await.unwrap();
        let (a, _) = storage.member(GroupId(1), NodeId(1)).await.unwrap();
        let (b, _) = storage.member(GroupId(2), NodeId(1)).await.unwrap();
        assert_eq!((a.size_bytes().await.unwrap(), b.size_bytes().await.unwrap()), (size_a, size_b));
        assert_eq!(a.entries(LogIndex(1), LogIndex(last + 2)).await.unwrap(), ents(1..=last + 1));
        assert_eq!(b.entries(LogIndex(1), LogIndex(last + 1)).await.unwrap(), ents(1..=last));
        a.append(ents(last + 2..=last + 2)).await.unwrap();
        drop((a, b, storage));
        assert_eq!(placement(&file, 1, 1).1, vec![last + 2]);
    }

    #[tokio::test]
    async fn a_journal_holding_several_members_keeps_their_logs_apart() {
        let dir = tempfile::tempdir().unwrap();
        let storage = RedbStorage::open(dir.path(), RedbOptions::default()).await.unwrap();
        let file = storage.db_path().to_path_buf();
        let members = [(1, 1), (1, 2), (2, 1)];
        let mut logs = Vec::new();
        for (g, n) in members {
            logs.push(storage.member(GroupId(g), NodeId(n)).await.unwrap().0);
        }
        for i in 1..=6 {
            for (k, log) in logs.iter().enumerate() {
                if i <= 4 + k as u64 {
                    log.append(ents(i..=i)).await.unwrap();
                }
            }
        }
        logs[1].truncate_after(LogIndex(2)).await.unwrap();
        logs[2].purge_through(LogIndex(3)).await.unwrap();
        drop((logs, storage));
        assert_eq!(placement(&file, 1, 1), (vec![], vec![1, 2, 3, 4]));
        assert_eq!(placement(&file, 1, 2), (vec![], vec![1, 2]));
        assert_eq!(placement(&file, 2, 1), (vec![], vec![4, 5, 6]));

        let storage = open_without_checkpoint(dir.path(), &file);
        for ((g, n), (first, last)) in members.into_iter().zip([(1, 4), (1, 2), (4, 6)]) {
            let (log, _) = storage.member(GroupId(g), NodeId(n)).await.unwrap();
            let state = log.state().await.unwrap();
            assert_eq!((state.first_index, state.last_index), (LogIndex(first), LogIndex(last)), "({g}, {n})");
            assert_eq!(log.entries(LogIndex(first), LogIndex(last + 1)).await.unwrap(), ents(first..=last));
            assert_eq!(log.size_bytes().await.unwrap(), stored_bytes_while_open(&log).await);
        }
    }

    #[tokio::test]
    async fn journal_damage_is_reported_with_the_file_and_the_journal_seq() {
        let dir = tempfile::tempdir().unwrap();
        let file = split(dir.path()).await;
        // A damaged record: entry 7 is journal row 1 (rows 0..=2 hold 6..=8).
        {
            let db = Database::create(&file).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut table = txn.open_table(JOURNAL).unwrap();
                let mut row = table.get(1).unwrap().unwrap().value().to_vec();
                assert_eq!(journal::decode_row(&row).unwrap().1, 7);
                let end = row.len() - 1;
                row[end] ^= 0x55;
                table.insert(1, row.as_slice()).unwrap();
            }
            txn.commit().unwrap();
        }
        // Every entry is verified when the member opens.
        let storage = open_without_checkpoint(dir.path(), &file);
        let err = storage.member(GroupId(1), NodeId(1)).await.expect_err("entry 7 is damaged");
        let StorageError::Corrupt { location, reason } = &err else { panic!("expected Corrupt, got {err:?}") };
        assert_eq!(location, &format!("{} log (group 1, node 1, index 7) (journal seq 1)", file.display()));
        assert!(reason.contains("checksum"), "{reason}");
        drop(storage);

        // A row too short to name its entry fails the checkpoint when the storage opens.
        {
            let db = Database::create(&file).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(JOURNAL).unwrap().insert(2, &b"short"[..]).unwrap();
            txn.commit().unwrap();
        }
        let err = RedbStorage::open(dir.path(), RedbOptions::default()).await.expect_err("journal row 2 is damaged");
        let StorageError::Corrupt { location, .. } = &err else { panic!("expected Corrupt, got {err:?}") };
        assert_eq!(location, &format!("{} journal (journal seq 2)", file.display()));
    }

    #[tokio::test]
    async fn a_gap_in_the_journal_is_reported_when_the_member_opens() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(DB_FILE_NAME);
        {
            let storage = RedbStorage::open(dir.path(), RedbOptions::default()).await.unwrap();
            let (log, _) = storage.member(GroupId(1), NodeId(1)).await.unwrap();
            log.append(ents(1..=3)).await.unwrap();
        }
        let db = Database::create(&file).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(JOURNAL).unwrap().remove(0).unwrap();
        txn.commit().unwrap();
        drop(db);
        let storage = open_without_checkpoint(dir.path(), &file);
        let err = storage.member(GroupId(1), NodeId(1)).await.expect_err("entry 1 is missing");
        let StorageError::Corrupt { location, reason } = &err else { panic!("expected Corrupt, got {err:?}") };
        assert_eq!(location, &format!("{} log (group 1, node 1, index 2)", file.display()));
        assert!(reason.contains("last purged index is 0"), "{reason}");
    }

    async fn member_err(dir: &Path) -> StorageError {
        let storage = RedbStorage::open(dir, RedbOptions::default()).await.unwrap();
        storage.member(GroupId(1), NodeId(1)).await.expect_err("the member's log is damaged")
    }

    #[tokio::test]
    async fn a_gap_before_the_first_entry_is_reported_when_the_member_opens() {
        let dir = tempfile::tempdir().unwrap();
        let file = filled(dir.path()).await;
        let db = Database::create(&file).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(LOG).unwrap().remove((1, 1, 1)).unwrap();
        txn.commit().unwrap();
        drop(db);
        let err = member_err(dir.path()).await;
        let StorageError::Corrupt { location, reason } = &err else { panic!("expected Corrupt, got {err:?}") };
        assert_eq!(location, &format!("{} log (group 1, node 1, index 2)", file.display()));
        assert!(reason.contains("last purged index is 0"), "{reason}");
    }

    #[tokio::test]
    async fn a_damaged_hard_state_is_reported_when_the_member_opens() {
        let dir = tempfile::tempdir().unwrap();
        let file = filled(dir.path()).await;
        let db = Database::create(&file).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn.open_table(META).unwrap();
            let row = meta.get((1, 1)).unwrap().unwrap();
            let (purged, bytes, hs) = row.value();
            let mut hs = hs.unwrap().to_vec();
            drop(row);
            hs[10] ^= 1;
            meta.insert((1, 1), (purged, bytes, Some(hs.as_slice()))).unwrap();
        }
        txn.commit().unwrap();
        drop(db);
        let err = member_err(dir.path()).await;
        let StorageError::Corrupt { location, reason } = &err else { panic!("expected Corrupt, got {err:?}") };
        assert_eq!(location, &format!("{} hard state (group 1, node 1)", file.display()));
        assert!(reason.contains("checksum"), "{reason}");
    }

    #[tokio::test]
    async fn a_database_open_elsewhere_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let first = RedbStorage::open(dir.path(), RedbOptions::default()).await.unwrap();
        let err = RedbStorage::open(dir.path(), RedbOptions::default()).await.expect_err("the file is locked");
        assert!(err.to_string().contains("already open"), "{err}");
        assert!(err.to_string().contains(&first.db_path().display().to_string()), "{err}");
        drop(first);
        RedbStorage::open(dir.path(), RedbOptions::default()).await.expect("reopen once the first handle is gone");
    }

    #[tokio::test]
    async fn writes_that_change_nothing_need_no_commit() {
        let dir = tempfile::tempdir().unwrap();
        let storage = RedbStorage::open(dir.path(), RedbOptions::default()).await.unwrap();
        let (log, _) = storage.member(GroupId(1), NodeId(1)).await.unwrap();
        log.append(ents(1..=1)).await.unwrap();
        assert_eq!(storage.commits(), 1);
        log.append(Vec::new()).await.unwrap();
        log.truncate_after(LogIndex(9)).await.unwrap();
        log.purge_through(LogIndex(0)).await.unwrap();
        assert_eq!(storage.commits(), 1);
    }

    #[tokio::test]
    async fn reopening_replays_the_write_ahead_log_once() {
        let dir = tempfile::tempdir().unwrap();
        let wal_path = dir.path().join(WAL_FILE_NAME);
        {
            let storage = RedbStorage::open(dir.path(), RedbOptions::default()).await.unwrap();
            let (log, _) = storage.member(GroupId(1), NodeId(1)).await.unwrap();
            log.append(ents(1..=3)).await.unwrap();
            log.append(ents(4..=5)).await.unwrap();
        }
        let logged = std::fs::read(&wal_path).unwrap();
        assert!(!logged.is_empty(), "the batches are in the write-ahead log");
        {
            let storage = RedbStorage::open(dir.path(), RedbOptions::default()).await.unwrap();
            let (log, _) = storage.member(GroupId(1), NodeId(1)).await.unwrap();
            assert_eq!(log.entries(LogIndex(1), LogIndex(6)).await.unwrap(), ents(1..=5));
        }
        // A crash after a checkpoint's durable commit but before the log was
        // emptied leaves batches the database already holds: they are skipped.
        std::fs::write(&wal_path, &logged).unwrap();
        let storage = RedbStorage::open(dir.path(), RedbOptions::default()).await.unwrap();
        let (log, _) = storage.member(GroupId(1), NodeId(1)).await.unwrap();
        assert_eq!(log.entries(LogIndex(1), LogIndex(6)).await.unwrap(), ents(1..=5));
        log.append(ents(6..=6)).await.unwrap();
        drop((log, storage));
        let storage = RedbStorage::open(dir.path(), RedbOptions::default()).await.unwrap();
        let (log, _) = storage.member(GroupId(1), NodeId(1)).await.unwrap();
        assert_eq!(log.entries(LogIndex(1), LogIndex(7)).await.unwrap(), ents(1..=6));
    }
}
