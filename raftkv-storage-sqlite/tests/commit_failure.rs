//! A failed write changes nothing, and the same write succeeds once the
//! cause is gone, on the same open store: the writer gets back to the
//! committed state by itself (the Raft driver retries failed writes).

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns panic on purpose

use std::path::Path;

use bytes::Bytes;
use raftkv_core::raft::{Entry, EntryPayload, HardState};
use raftkv_core::storage::{LogStore, LogWrite, StorageError};
use raftkv_core::{GroupId, LogIndex, NodeId, Term};
use raftkv_storage_sqlite::{SqliteOptions, SqliteStorage};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

fn entry(index: u64) -> Entry {
    Entry { term: Term(1), index: LogIndex(index), payload: EntryPayload::Command(Bytes::from(format!("x{index}"))) }
}

/// Runs `sql` on the open database behind the store's back.
async fn behind_its_back(db: &Path, sql: &str) {
    let mut raw = SqliteConnectOptions::new().filename(db).connect().await.expect("raw connection");
    sqlx::query(sql).execute(&mut raw).await.expect("raw statement");
    raw.close().await.expect("close raw connection");
}

#[tokio::test]
async fn a_failed_write_changes_nothing_and_succeeds_when_retried() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("open");
    let (log, _) = storage.member(GroupId(1), NodeId(1)).await.expect("member");
    let (other, _) = storage.member(GroupId(2), NodeId(1)).await.expect("another member");
    log.append(vec![entry(1), entry(2)]).await.expect("append");

    // Every insert into the journal fails, in the middle of the transaction
    // that also saves a hard state.
    let db = storage.path().to_path_buf();
    behind_its_back(&db, "CREATE TRIGGER refuse BEFORE INSERT ON journal BEGIN SELECT RAISE(ABORT, 'injected'); END")
        .await;
    let hs = HardState { term: Term(2), vote: Some(NodeId(1)), commit: LogIndex(3) };
    let write = LogWrite { entries: vec![entry(3), entry(4)], hard_state: Some(hs), ..LogWrite::default() };
    let err = log.write(write.clone()).await.expect_err("the write must fail");
    assert!(matches!(err, StorageError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains(&db.display().to_string()), "error must name the file: {err}");
    // Nothing of it is visible: not the entries, not the hard state.
    let state = log.state().await.expect("state");
    assert_eq!((state.last_index, state.hard_state), (LogIndex(2), HardState::default()));
    assert_eq!(log.entries(LogIndex(1), LogIndex(3)).await.expect("entries"), vec![entry(1), entry(2)]);
    // Still failing while the cause is there, for this member and others.
    assert!(log.write(write.clone()).await.is_err());
    assert!(other.append(vec![entry(1)]).await.is_err());
    // A write that needs no insert goes through meanwhile.
    other.save_hard_state(hs).await.expect("a hard state alone");

    behind_its_back(&db, "DROP TRIGGER refuse").await;
    log.write(write).await.expect("the same write succeeds once the cause is gone");
    other.append(vec![entry(1)]).await.expect("and the others' writes");
    log.append(vec![entry(5)]).await.expect("and later ones");
    storage.close().await;

    // Reopened: everything acknowledged, once.
    let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("reopen");
    let (log, _) = storage.member(GroupId(1), NodeId(1)).await.expect("member");
    let state = log.state().await.expect("state");
    assert_eq!((state.first_index, state.last_index, state.hard_state), (LogIndex(1), LogIndex(5), hs));
    assert_eq!(log.entries(LogIndex(1), LogIndex(6)).await.expect("entries"), (1..=5).map(entry).collect::<Vec<_>>());
    let (other, _) = storage.member(GroupId(2), NodeId(1)).await.expect("member");
    assert_eq!(other.state().await.expect("state").hard_state, hs);
    assert_eq!(other.entries(LogIndex(1), LogIndex(2)).await.expect("entries"), vec![entry(1)]);
    storage.close().await;
}
