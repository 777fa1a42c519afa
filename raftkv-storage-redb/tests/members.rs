//! Members sharing one database keep separate logs, hard states and snapshots.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use raftkv_core::raft::{Entry, HardState, SnapshotMeta};
use raftkv_core::storage::{LogStore, SnapshotStore, StorageError};
use raftkv_core::{GroupId, LogIndex, NodeId, Term};
use raftkv_storage_redb::{RedbLogStore, RedbOptions, RedbStorage};

fn ents(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    raftkv_testkit::tagged_entries(range, term, &format!("t{term}"))
}

/// The state left by the writes of the test below.
async fn check(a: &RedbLogStore, b: &RedbLogStore, c: &RedbLogStore, hs: HardState) {
    let sa = a.state().await.unwrap();
    assert_eq!((sa.first_index, sa.last_index, sa.hard_state), (LogIndex(5), LogIndex(10), HardState::default()));
    assert_eq!(a.entries(LogIndex(5), LogIndex(11)).await.unwrap(), ents(5..=10, 1));
    let sb = b.state().await.unwrap();
    assert_eq!((sb.first_index, sb.last_index, sb.hard_state), (LogIndex(1), LogIndex(1), hs));
    assert_eq!(b.entries(LogIndex(1), LogIndex(2)).await.unwrap(), ents(1..=1, 2));
    assert!(matches!(b.entries(LogIndex(1), LogIndex(3)).await, Err(StorageError::Unavailable { .. })));
    let sc = c.state().await.unwrap();
    assert_eq!((sc.first_index, sc.last_index), (LogIndex(1), LogIndex(0)));
    assert!(a.size_bytes().await.unwrap() > b.size_bytes().await.unwrap());
    assert_eq!(c.size_bytes().await.unwrap(), 0);
}

#[tokio::test]
async fn members_in_one_database_do_not_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let storage = RedbStorage::open(dir.path(), RedbOptions::default()).await.unwrap();
    // Same node in two groups, and two nodes of one group: keys differ in each part.
    let (a, snap_a) = storage.member(GroupId(1), NodeId(1)).await.unwrap();
    let (b, snap_b) = storage.member(GroupId(1), NodeId(2)).await.unwrap();
    let (c, _snap_c) = storage.member(GroupId(2), NodeId(1)).await.unwrap();

    a.append(ents(1..=10, 1)).await.unwrap();
    b.append(ents(1..=3, 2)).await.unwrap();
    let hs = HardState { term: Term(5), vote: Some(NodeId(2)), commit: LogIndex(3) };
    b.save_hard_state(hs).await.unwrap();
    a.purge_through(LogIndex(4)).await.unwrap();
    b.truncate_after(LogIndex(1)).await.unwrap();

    check(&a, &b, &c, hs).await;

    let meta = SnapshotMeta { last_index: LogIndex(4), last_term: Term(1) };
    let mut w = snap_a.begin(meta).await.unwrap();
    w.write(Bytes::from_static(b"a's state")).await.unwrap();
    assert!(w.finish().await.unwrap());
    assert_eq!(snap_a.latest().await.unwrap(), Some((meta, 9)));
    assert_eq!(snap_b.latest().await.unwrap(), None);
    assert_ne!(snap_a.dir(), snap_b.dir());
    assert!(snap_a.dir().ends_with("snapshots/g1-n1"), "{}", snap_a.dir().display());

    // The same after reopening, and a second handle to a member shares its log.
    drop((a, b, c, snap_a, snap_b, storage));
    let storage = RedbStorage::open(dir.path(), RedbOptions::default()).await.unwrap();
    let (a, snap_a) = storage.member(GroupId(1), NodeId(1)).await.unwrap();
    let (b, _) = storage.member(GroupId(1), NodeId(2)).await.unwrap();
    let (c, _) = storage.member(GroupId(2), NodeId(1)).await.unwrap();
    check(&a, &b, &c, hs).await;
    assert_eq!(snap_a.latest().await.unwrap(), Some((meta, 9)));
    let (a_again, _) = storage.member(GroupId(1), NodeId(1)).await.unwrap();
    a_again.append(ents(11..=11, 2)).await.unwrap();
    assert_eq!(a.state().await.unwrap().last_index, LogIndex(11));
    assert!(matches!(a.append(ents(11..=11, 2)).await, Err(StorageError::NotContiguous { last: LogIndex(11), .. })));
}
