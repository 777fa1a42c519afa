//! Many members in one database: isolation, shared handles, closing, sizes,
//! and acknowledged writes found again without a clean shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns panic on purpose

use raftkv_core::raft::{Entry, HardState};
use raftkv_core::storage::{LogStore, LogWrite, StorageError};
use raftkv_core::{GroupId, LogIndex, NodeId, Term};
use raftkv_storage_sqlite::{SqliteOptions, SqliteStorage, DB_FILE};

fn ents(range: std::ops::RangeInclusive<u64>, term: u64, tag: &str) -> Vec<Entry> {
    raftkv_testkit::tagged_entries(range, term, tag)
}

fn hs(term: u64, vote: u64) -> HardState {
    HardState { term: Term(term), vote: Some(NodeId(vote)), commit: LogIndex(0) }
}

#[tokio::test]
async fn members_do_not_see_each_others_entries() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ids = [(GroupId(1), NodeId(1)), (GroupId(1), NodeId(2)), (GroupId(2), NodeId(1))];
    for round in 0..2 {
        let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("open");
        let mut logs = Vec::new();
        for (group, node) in ids {
            logs.push(storage.member(group, node).await.expect("member").0);
        }
        if round == 0 {
            logs[0]
                .write(LogWrite { entries: ents(1..=5, 1, "a"), hard_state: Some(hs(1, 1)), ..LogWrite::default() })
                .await
                .expect("a");
            logs[1].append(ents(1..=3, 2, "b")).await.expect("b");
            logs[1].purge_through(LogIndex(2)).await.expect("purge b");
            logs[2]
                .write(LogWrite { entries: ents(1..=1, 3, "c"), hard_state: Some(hs(3, 2)), ..LogWrite::default() })
                .await
                .expect("c");
            // Truncating one member's log leaves the others alone.
            logs[0].truncate_after(LogIndex(4)).await.expect("truncate a");
        }
        let expect = [(1, 4, hs(1, 1)), (3, 3, HardState::default()), (1, 1, hs(3, 2))];
        for (log, (first, last, hard_state)) in logs.iter().zip(expect) {
            let state = log.state().await.expect("state");
            assert_eq!(
                (state.first_index, state.last_index, state.hard_state),
                (LogIndex(first), LogIndex(last), hard_state),
                "round {round}, {log:?}"
            );
        }
        assert_eq!(logs[0].entries(LogIndex(1), LogIndex(5)).await.expect("a"), ents(1..=4, 1, "a"));
        assert_eq!(logs[1].entries(LogIndex(3), LogIndex(4)).await.expect("b"), ents(3..=3, 2, "b"));
        assert_eq!(logs[2].entries(LogIndex(1), LogIndex(2)).await.expect("c"), ents(1..=1, 3, "c"));
        assert_ne!(storage.snapshot_dir(GroupId(1), NodeId(2)), storage.snapshot_dir(GroupId(2), NodeId(1)));
        storage.close().await;
    }
}

#[tokio::test]
async fn handles_of_one_member_share_its_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("open");
    let (first, _) = storage.member(GroupId(7), NodeId(3)).await.expect("member");
    let (second, _) = storage.member(GroupId(7), NodeId(3)).await.expect("member again");
    first.append(ents(1..=2, 1, "x")).await.expect("append");
    assert_eq!(second.state().await.expect("state").last_index, LogIndex(2));
    let e = second.append(ents(2..=2, 1, "x")).await.expect_err("index 2 is taken");
    assert!(matches!(e, StorageError::NotContiguous { last: LogIndex(2), got: LogIndex(2) }), "{e:?}");
}

#[tokio::test]
async fn calls_after_close_fail_with_closed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("open");
    let (log, _) = storage.member(GroupId(1), NodeId(1)).await.expect("member");
    log.append(ents(1..=2, 1, "x")).await.expect("append");
    storage.clone().close().await;
    assert!(matches!(log.state().await, Err(StorageError::Closed)));
    assert!(matches!(log.entries(LogIndex(1), LogIndex(2)).await, Err(StorageError::Closed)));
    assert!(matches!(log.append(ents(3..=3, 1, "x")).await, Err(StorageError::Closed)));
    assert!(matches!(log.purge_through(LogIndex(1)).await, Err(StorageError::Closed)));
    assert!(matches!(log.size_bytes().await, Err(StorageError::Closed)));
    assert!(matches!(storage.member(GroupId(1), NodeId(2)).await, Err(StorageError::Closed)));
}

#[tokio::test]
async fn size_bytes_is_the_same_after_reopening() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("open");
    let (log, _) = storage.member(GroupId(1), NodeId(1)).await.expect("member");
    assert_eq!(log.size_bytes().await.expect("size"), 0);
    log.write(LogWrite { entries: ents(1..=50, 1, "x"), hard_state: Some(hs(1, 1)), ..LogWrite::default() })
        .await
        .expect("write");
    let full = log.size_bytes().await.expect("size");
    log.write(LogWrite { truncate_after: Some(LogIndex(40)), entries: ents(41..=45, 2, "yy"), ..LogWrite::default() })
        .await
        .expect("truncate and append");
    log.purge_through(LogIndex(10)).await.expect("purge");
    let size = log.size_bytes().await.expect("size");
    assert!(size < full, "{full} -> {size}");
    storage.close().await;

    let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("reopen");
    let (log, _) = storage.member(GroupId(1), NodeId(1)).await.expect("member");
    assert_eq!(log.size_bytes().await.expect("size"), size, "cached size must match the stored one");
    log.purge_through(LogIndex(100)).await.expect("purge past the end");
    let hard_state_only = log.size_bytes().await.expect("size");
    assert!(hard_state_only > 0 && hard_state_only < 64, "only the hard state is left: {hard_state_only}");
}

/// A crash, approximated: the database and its WAL are copied while the
/// storage is still open (no checkpoint, no clean close), and the copy is
/// opened. Every acknowledged write must be in it.
#[tokio::test]
async fn acknowledged_writes_are_found_in_the_wal_without_a_clean_close() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("open");
    let (log, _) = storage.member(GroupId(1), NodeId(1)).await.expect("member");
    log.write(LogWrite { entries: ents(1..=30, 1, "x"), hard_state: Some(hs(1, 1)), ..LogWrite::default() })
        .await
        .expect("write");
    log.purge_through(LogIndex(5)).await.expect("purge");
    log.truncate_after(LogIndex(20)).await.expect("truncate");

    let copy = tempfile::tempdir().expect("temp dir");
    let wal = format!("{DB_FILE}-wal");
    assert!(std::fs::metadata(dir.path().join(&wal)).expect("WAL file").len() > 0, "writes should be in the WAL");
    for name in [DB_FILE, wal.as_str()] {
        std::fs::copy(dir.path().join(name), copy.path().join(name)).expect("copy");
    }
    // (The member's snapshot directory belongs to the copy too: its record
    // says no snapshot was taken, which a purged log needs.)
    raftkv_testkit::crash::copy_dir(&dir.path().join("snapshots"), &copy.path().join("snapshots")).expect("copy");

    let reopened = SqliteStorage::open(copy.path(), SqliteOptions::default()).await.expect("open the copy");
    let (log, _) = reopened.member(GroupId(1), NodeId(1)).await.expect("member");
    let state = log.state().await.expect("state");
    assert_eq!((state.first_index, state.last_index, state.hard_state), (LogIndex(6), LogIndex(20), hs(1, 1)));
    assert_eq!(log.entries(LogIndex(6), LogIndex(21)).await.expect("entries"), ents(6..=20, 1, "x"));
    storage.close().await;
}
