//! Record formats: a file written by an older version (format 1: checksums
//! that do not cover the keys) is upgraded when opened; a file of an
//! unknown format is refused, naming it; a row moved to another key fails
//! its checksum when the storage opens.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns panic on purpose

use std::path::Path;

use raftkv_core::raft::{Entry, HardState};
use raftkv_core::storage::{codec, LogStore, LogWrite, StorageError};
use raftkv_core::{GroupId, LogIndex, NodeId, Term};
use raftkv_storage_sqlite::{SqliteOptions, SqliteStorage, DB_FILE};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};

fn ents(range: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    raftkv_testkit::tagged_entries(range, 1, "f")
}

const HS: HardState = HardState { term: Term(1), vote: Some(NodeId(1)), commit: LogIndex(3) };

/// Member (1, 1): entries 1..=6, purged through 2, hard state HS; member (1, 2): entries 1..=2
/// left in the journal; closed.
async fn filled(dir: &Path) {
    let storage = SqliteStorage::open(dir, SqliteOptions::default()).await.unwrap();
    let (a, _) = storage.member(GroupId(1), NodeId(1)).await.unwrap();
    a.write(LogWrite { entries: ents(1..=6), hard_state: Some(HS), ..LogWrite::default() }).await.unwrap();
    a.purge_through(LogIndex(2)).await.unwrap();
    storage.close().await;
    let storage = SqliteStorage::open(dir, SqliteOptions::default()).await.unwrap();
    let (b, _) = storage.member(GroupId(1), NodeId(2)).await.unwrap();
    b.append(ents(1..=2)).await.unwrap();
    storage.close().await;
}

async fn raw(dir: &Path) -> SqliteConnection {
    SqliteConnectOptions::new().filename(dir.join(DB_FILE)).connect().await.unwrap()
}

#[tokio::test]
async fn a_format_1_file_is_upgraded_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path()).await;
    // Rewrite every value as format 1 wrote it (plain codec records), in `log` and the journal.
    let mut conn = raw(dir.path()).await;
    for e in ents(3..=6) {
        sqlx::query("UPDATE log SET value = ? WHERE grp = 1 AND node = 1 AND idx = ?")
            .bind(codec::encode_entry(&e))
            .bind(e.index.0 as i64)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    sqlx::query("UPDATE meta SET hard_state = ? WHERE grp = 1 AND node = 1")
        .bind(codec::encode_hard_state(&HS))
        .execute(&mut conn)
        .await
        .unwrap();
    // (A format-1 meta row without a hard state, as a purge alone wrote it.)
    sqlx::query("INSERT INTO meta (grp, node, hard_state, purged) VALUES (2, 1, NULL, 0)")
        .execute(&mut conn)
        .await
        .unwrap();
    // Entries of member (1, 2), written through the journal: appends since the last close.
    sqlx::query("INSERT INTO journal (grp, node, idx, value) VALUES (1, 2, 3, ?)")
        .bind(codec::encode_entry(&ents(3..=3)[0]))
        .execute(&mut conn)
        .await
        .unwrap();
    for e in ents(1..=2) {
        sqlx::query("UPDATE log SET value = ? WHERE grp = 1 AND node = 2 AND idx = ?")
            .bind(codec::encode_entry(&e))
            .bind(e.index.0 as i64)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    sqlx::query("PRAGMA user_version = 0").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();

    for _ in 0..2 {
        let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("a format-1 file opens");
        let (a, _) = storage.member(GroupId(1), NodeId(1)).await.unwrap();
        let state = a.state().await.unwrap();
        assert_eq!((state.first_index, state.last_index, state.hard_state), (LogIndex(3), LogIndex(6), HS));
        assert_eq!(a.entries(LogIndex(3), LogIndex(7)).await.unwrap(), ents(3..=6));
        let (b, _) = storage.member(GroupId(1), NodeId(2)).await.unwrap();
        assert_eq!(b.entries(LogIndex(1), LogIndex(4)).await.unwrap(), ents(1..=3));
        let (c, _) = storage.member(GroupId(2), NodeId(1)).await.unwrap();
        assert_eq!(c.state().await.unwrap().hard_state, HardState::default());
        storage.close().await;
    }
    let mut conn = raw(dir.path()).await;
    let version: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(&mut conn).await.unwrap();
    assert_eq!(version, 2, "upgraded");
    conn.close().await.unwrap();
}

#[tokio::test]
async fn a_file_of_an_unknown_format_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path()).await;
    let mut conn = raw(dir.path()).await;
    sqlx::query("PRAGMA user_version = 3").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    let err = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect_err("format 3");
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains(DB_FILE) && err.to_string().contains("format 3"), "{err}");
}

#[tokio::test]
async fn a_row_moved_to_another_member_fails_its_checksum() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path()).await;
    // The last entry of member (1, 1) becomes member (1, 9)'s: (1, 1) would silently end at 5,
    // and no member (1, 9) ever opens.
    let mut conn = raw(dir.path()).await;
    sqlx::query("UPDATE log SET node = 9 WHERE grp = 1 AND node = 1 AND idx = 6").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    let err = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect_err("a row moved");
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("{DB_FILE} log (group 1, node 9, index 6)")), "{err}");
    assert!(err.to_string().contains("checksum"), "{err}");
    // And a meta row moved to another member: (1, 1) would forget its vote.
    let mut conn = raw(dir.path()).await;
    sqlx::query("UPDATE log SET node = 1 WHERE grp = 1 AND node = 9 AND idx = 6").execute(&mut conn).await.unwrap();
    sqlx::query("UPDATE meta SET node = 7 WHERE grp = 1 AND node = 1").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    let err = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect_err("a meta row moved");
    assert!(err.to_string().contains(&format!("{DB_FILE} meta (group 1, node 7)")), "{err}");
}
