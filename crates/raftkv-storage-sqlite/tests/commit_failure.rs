//! After a commit fails, the state on disk is unknown: that write and every
//! later one fail with `Io`, and the cached bounds keep the last committed state.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns panic on purpose

use bytes::Bytes;
use raftkv_core::raft::{Entry, EntryPayload};
use raftkv_core::storage::{LogStore, StorageError};
use raftkv_core::{GroupId, LogIndex, NodeId, Term};
use raftkv_storage_sqlite::{SqliteOptions, SqliteStorage};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

fn entry(index: u64) -> Entry {
    Entry { term: Term(1), index: LogIndex(index), payload: EntryPayload::Command(Bytes::from_static(b"x")) }
}

#[tokio::test]
async fn a_failed_commit_fails_every_later_write_until_reopened() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("open");
    let (log, _) = storage.member(GroupId(1), NodeId(1)).await.expect("member");
    let (other, _) = storage.member(GroupId(2), NodeId(1)).await.expect("another member");
    log.append(vec![entry(1), entry(2)]).await.expect("append");

    // Behind the store's back, make the next commit fail.
    let mut raw = SqliteConnectOptions::new().filename(storage.path()).connect().await.expect("raw connection");
    // (Appends go to the journal, and to `log` only when it is checkpointed: drop both.)
    for table in ["log", "journal"] {
        sqlx::query(&format!("DROP TABLE {table}")).execute(&mut raw).await.expect("drop a table");
    }
    raw.close().await.expect("close raw connection");

    let err = log.append(vec![entry(3)]).await.expect_err("the commit must fail");
    assert!(matches!(err, StorageError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains(&storage.path().display().to_string()), "error must name the file: {err}");
    assert_eq!(log.state().await.expect("state").last_index, LogIndex(2), "bounds keep the committed state");

    for (what, result) in
        [("same member", log.append(vec![entry(3)]).await), ("other member", other.append(vec![entry(1)]).await)]
    {
        let err = result.expect_err("writes after a failed commit must fail");
        assert!(matches!(err, StorageError::Io { .. }), "{what}: {err:?}");
        assert!(err.to_string().contains("reopen"), "{what}: {err}");
    }
    storage.close().await;
}
