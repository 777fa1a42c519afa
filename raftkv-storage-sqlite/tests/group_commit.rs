//! Group commit: concurrent writes of many members share commits, an invalid
//! write fails alone, and database work never lets a paused clock advance.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns panic on purpose

use std::time::Duration;

use bytes::Bytes;
use raftkv_core::raft::{Entry, EntryPayload};
use raftkv_core::storage::{LogStore, StorageError};
use raftkv_core::{GroupId, LogIndex, NodeId, Term};
use raftkv_storage_sqlite::{SqliteOptions, SqliteStorage};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::ConnectOptions;
use tokio::time::Instant;

const MEMBERS: u64 = 16;
const APPENDS: u64 = 40;

fn entry(index: u64, member: u64) -> Entry {
    Entry {
        term: Term(1),
        index: LogIndex(index),
        payload: EntryPayload::Command(Bytes::from(format!("m{member}-{index}"))),
    }
}

/// Member `m` of the test: groups 1..=8, nodes 1..=2.
fn member_id(m: u64) -> (GroupId, NodeId) {
    (GroupId(m / 2 + 1), NodeId(m % 2 + 1))
}

async fn concurrent_appends_share_commits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("open");
    let mut tasks = Vec::new();
    for m in 0..MEMBERS {
        let (group, node) = member_id(m);
        let (log, _snapshots) = storage.member(group, node).await.expect("member");
        tasks.push(tokio::spawn(async move {
            for i in 1..=APPENDS {
                log.append(vec![entry(i, m)]).await.expect("append");
            }
        }));
    }
    for task in tasks {
        task.await.expect("appender task");
    }
    let commits = storage.commits();
    let appends = MEMBERS * APPENDS;
    assert!(commits * 4 <= appends, "{appends} appends took {commits} commits: expected group commit to share them");
    storage.close().await;

    let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("reopen");
    for m in 0..MEMBERS {
        let (group, node) = member_id(m);
        let (log, _snapshots) = storage.member(group, node).await.expect("member after reopen");
        let state = log.state().await.expect("state");
        assert_eq!((state.first_index, state.last_index), (LogIndex(1), LogIndex(APPENDS)), "member {m}");
        let expected: Vec<Entry> = (1..=APPENDS).map(|i| entry(i, m)).collect();
        assert_eq!(log.entries(LogIndex(1), LogIndex(APPENDS + 1)).await.expect("entries"), expected, "member {m}");
    }
}

#[tokio::test]
async fn concurrent_appends_of_sixteen_members_share_commits() {
    concurrent_appends_share_commits().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_commits_on_a_multi_thread_runtime() {
    concurrent_appends_share_commits().await;
}

#[tokio::test]
async fn an_invalid_write_fails_alone_in_its_batch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("open");
    let mut logs = Vec::new();
    for m in 0..8 {
        let (group, node) = member_id(m);
        logs.push(storage.member(group, node).await.expect("member").0);
    }
    let before = storage.commits();
    // Spawned together, the requests reach the writer's queue together.
    let tasks: Vec<_> = logs
        .iter()
        .enumerate()
        .map(|(m, log)| {
            let log = log.clone();
            let first = if m == 3 { 2 } else { 1 }; // member 3 skips index 1
            tokio::spawn(async move { log.append(vec![entry(first, m as u64), entry(first + 1, m as u64)]).await })
        })
        .collect();
    for (m, task) in tasks.into_iter().enumerate() {
        let result = task.await.expect("task");
        if m == 3 {
            assert!(
                matches!(result, Err(StorageError::NotContiguous { last: LogIndex(0), got: LogIndex(2) })),
                "member 3: {result:?}"
            );
        } else {
            result.unwrap_or_else(|e| panic!("member {m}: {e}"));
        }
    }
    assert_eq!(storage.commits() - before, 1, "the valid appends should have shared one commit");
    for (m, log) in logs.iter().enumerate() {
        let last = if m == 3 { 0 } else { 2 };
        assert_eq!(log.state().await.expect("state").last_index, LogIndex(last), "member {m}");
    }
}

#[tokio::test(start_paused = true)]
async fn database_work_does_not_advance_a_paused_clock() {
    let start = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("open");
    let (log, _snapshots) = storage.member(GroupId(1), NodeId(1)).await.expect("member");
    // A pending timer: were the runtime idle during disk I/O, the paused clock
    // would jump to it and the timeout would fire.
    let hour = Duration::from_secs(3600);
    for i in 1..=20 {
        tokio::time::timeout(hour, log.append(vec![entry(i, 0)]))
            .await
            .expect("no virtual time passes")
            .expect("append");
    }
    let read =
        tokio::time::timeout(hour, log.entries(LogIndex(1), LogIndex(21))).await.expect("no virtual time passes");
    assert_eq!(read.expect("entries").len(), 20);
    tokio::time::timeout(hour, log.purge_through(LogIndex(10))).await.expect("no virtual time passes").expect("purge");
    storage.close().await;
    assert_eq!(start.elapsed(), Duration::ZERO, "database work must take no virtual time");
}

/// Why the store runs sqlx on the blocking pool: awaited directly, SQLite's
/// worker thread leaves the runtime idle, and a paused clock jumps ahead.
#[tokio::test(start_paused = true)]
async fn awaiting_sqlx_directly_would_let_the_paused_clock_jump() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = SqliteConnectOptions::new().filename(dir.path().join("raw.sqlite")).create_if_missing(true);
    let mut conn = options.connect().await.expect("connect");
    let start = Instant::now();
    let _timer = tokio::spawn(tokio::time::sleep(Duration::from_secs(3600)));
    tokio::task::yield_now().await;
    for i in 0..20 {
        sqlx::query(&format!("CREATE TABLE t{i} (x INTEGER)")).execute(&mut conn).await.expect("create table");
    }
    assert!(start.elapsed() > Duration::ZERO, "the clock was expected to jump while sqlx worked");
}
