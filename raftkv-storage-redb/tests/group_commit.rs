//! Concurrent writes from many logs share commits, each still answered on
//! its own, and an invalid request in a batch fails alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use raftkv_core::raft::{Entry, EntryPayload, HardState};
use raftkv_core::storage::{LogStore, LogWrite, StorageError};
use raftkv_core::{GroupId, LogIndex, NodeId, Term};
use raftkv_storage_redb::{RedbOptions, RedbStorage};

fn entry(index: u64, tag: u64) -> Entry {
    Entry {
        term: Term(1),
        index: LogIndex(index),
        payload: EntryPayload::Command(Bytes::from(format!("{tag}:{index}"))),
    }
}

#[tokio::test]
async fn concurrent_appends_from_sixteen_logs_are_coalesced_and_durable() {
    const LOGS: u64 = 16;
    const APPENDS: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let storage = RedbStorage::open(dir.path(), RedbOptions::default()).await.unwrap();

    let mut tasks = tokio::task::JoinSet::new();
    for tag in 0..LOGS {
        let (log, _snapshots) = storage.member(GroupId(tag / 4), NodeId(tag % 4 + 1)).await.unwrap();
        tasks.spawn(async move {
            for index in 1..=APPENDS {
                log.append(vec![entry(index, tag)]).await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let commits = storage.commits();
    assert!(commits >= APPENDS, "every append of one log needs its own commit: {commits}");
    assert!(commits <= LOGS * APPENDS / 4, "{commits} commits for {} appends: no coalescing", LOGS * APPENDS);
    drop(storage);

    let storage = RedbStorage::open(dir.path(), RedbOptions::default()).await.unwrap();
    for tag in 0..LOGS {
        let (log, _snapshots) = storage.member(GroupId(tag / 4), NodeId(tag % 4 + 1)).await.unwrap();
        let state = log.state().await.unwrap();
        assert_eq!((state.first_index, state.last_index), (LogIndex(1), LogIndex(APPENDS)), "log {tag}");
        let expected: Vec<Entry> = (1..=APPENDS).map(|i| entry(i, tag)).collect();
        assert_eq!(log.entries(LogIndex(1), LogIndex(APPENDS + 1)).await.unwrap(), expected, "log {tag}");
    }
}

#[tokio::test]
async fn an_invalid_request_fails_alone_in_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let storage = RedbStorage::open(dir.path(), RedbOptions::default()).await.unwrap();
    let (a, _) = storage.member(GroupId(1), NodeId(1)).await.unwrap();
    let (b, _) = storage.member(GroupId(1), NodeId(2)).await.unwrap();
    let hs = HardState { term: Term(2), vote: Some(NodeId(1)), commit: LogIndex(0) };

    // Issued within one poll on a current-thread runtime: all three are
    // queued before the writer runs, so they share one batch.
    let (first, gap, second) = tokio::join!(
        a.append(vec![entry(1, 0), entry(2, 0)]),
        b.write(LogWrite { entries: vec![entry(3, 1)], hard_state: Some(hs), ..LogWrite::default() }),
        a.append(vec![entry(3, 0)]),
    );
    first.unwrap();
    second.unwrap();
    assert!(matches!(gap, Err(StorageError::NotContiguous { last: LogIndex(0), got: LogIndex(3) })), "{gap:?}");
    assert_eq!(storage.commits(), 1, "the three requests should have shared one commit");

    assert_eq!(a.state().await.unwrap().last_index, LogIndex(3));
    let b_state = b.state().await.unwrap();
    assert_eq!(b_state.last_index, LogIndex(0), "the rejected write must not apply");
    assert_eq!(b_state.hard_state, HardState::default(), "the rejected write's hard state must not apply");
}

#[tokio::test(start_paused = true)]
async fn disk_work_does_not_advance_a_paused_clock() {
    let dir = tempfile::tempdir().unwrap();
    let storage = RedbStorage::open(dir.path(), RedbOptions::default()).await.unwrap();
    let (log, _) = storage.member(GroupId(1), NodeId(1)).await.unwrap();
    let start = tokio::time::Instant::now();
    for index in 1..=20 {
        // With the clock paused, a timer would fire at once if the runtime
        // counted the fsync as idle time.
        tokio::time::timeout(Duration::from_millis(1), log.append(vec![entry(index, 0)]))
            .await
            .expect("an append must not let the paused clock advance")
            .unwrap();
        tokio::time::timeout(Duration::from_millis(1), log.entries(LogIndex(1), LogIndex(index + 1)))
            .await
            .expect("a read must not let the paused clock advance")
            .unwrap();
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
}
