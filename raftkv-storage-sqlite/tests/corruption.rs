//! Damaged files fail with errors that name them, never with a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns panic on purpose

use std::path::Path;

use bytes::Bytes;
use raftkv_core::raft::{Entry, EntryPayload, HardState};
use raftkv_core::storage::{LogStore, LogWrite, StorageError};
use raftkv_core::{GroupId, LogIndex, NodeId, Term};
use raftkv_storage_sqlite::{SqliteOptions, SqliteStorage, DB_FILE};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

fn entries(range: std::ops::RangeInclusive<u64>, payload_len: usize) -> Vec<Entry> {
    range
        .map(|i| Entry {
            term: Term(1),
            index: LogIndex(i),
            payload: EntryPayload::Command(Bytes::from(vec![i as u8; payload_len])),
        })
        .collect()
}

/// A closed database in `dir` whose member (1, 1) holds `count` entries and a hard state.
async fn filled(dir: &Path, count: u64, payload_len: usize) {
    let storage = SqliteStorage::open(dir, SqliteOptions::default()).await.expect("open");
    let (log, _snapshots) = storage.member(GroupId(1), NodeId(1)).await.expect("member");
    let hard_state = HardState { term: Term(1), vote: Some(NodeId(1)), commit: LogIndex(1) };
    for chunk in (1..=count).collect::<Vec<_>>().chunks(100) {
        let write = LogWrite {
            entries: entries(chunk[0]..=chunk[chunk.len() - 1], payload_len),
            hard_state: Some(hard_state),
            ..LogWrite::default()
        };
        log.write(write).await.expect("write");
    }
    storage.close().await;
}

/// Runs `sql` on the closed database in `dir`, behind the store's back.
async fn tamper(dir: &Path, sql: &str) {
    let mut conn = SqliteConnectOptions::new().filename(dir.join(DB_FILE)).connect().await.expect("raw connection");
    sqlx::query(sql).execute(&mut conn).await.expect("tamper");
    conn.close().await.expect("close raw connection");
}

fn assert_names(err: &StorageError, needle: &str) {
    assert!(err.to_string().contains(needle), "error should mention {needle:?}: {err}");
}

#[tokio::test]
async fn a_garbage_file_fails_to_open_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(DB_FILE);
    let garbage: Vec<u8> = (0..64 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&path, garbage).expect("write garbage");
    let err = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect_err("garbage must not open");
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err:?}");
    assert_names(&err, &path.display().to_string());
}

#[tokio::test]
async fn a_truncated_file_fails_to_open_naming_it() {
    for keep in [0.5, 0.9] {
        let dir = tempfile::tempdir().expect("temp dir");
        filled(dir.path(), 2000, 300).await;
        let path = dir.path().join(DB_FILE);
        let len = std::fs::metadata(&path).expect("db file").len();
        assert!(len > 500_000, "the database should hold the entries ({len} bytes)");
        let file = std::fs::OpenOptions::new().write(true).open(&path).expect("open db file");
        file.set_len((len as f64 * keep) as u64).expect("truncate");
        drop(file);
        let err = SqliteStorage::open(dir.path(), SqliteOptions::default())
            .await
            .expect_err("a truncated database must not open");
        assert!(matches!(err, StorageError::Corrupt { .. }), "kept {keep}: {err:?}");
        assert_names(&err, &path.display().to_string());
    }
}

#[tokio::test]
async fn a_file_truncated_inside_its_header_fails_to_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    filled(dir.path(), 10, 10).await;
    let path = dir.path().join(DB_FILE);
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..60]).expect("truncate");
    let err = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect_err("must not open");
    assert_names(&err, &path.display().to_string());
}

#[tokio::test]
async fn a_damaged_entry_is_reported_with_file_member_and_index() {
    let dir = tempfile::tempdir().expect("temp dir");
    filled(dir.path(), 5, 10).await;
    // Flip the last byte of entry 3's record (inside the checksummed payload).
    let mut conn =
        SqliteConnectOptions::new().filename(dir.path().join(DB_FILE)).connect().await.expect("raw connection");
    let mut value: Vec<u8> =
        sqlx::query_scalar("SELECT value FROM log WHERE idx = 3").fetch_one(&mut conn).await.expect("entry 3");
    *value.last_mut().expect("non-empty record") ^= 0xff;
    sqlx::query("UPDATE log SET value = ? WHERE idx = 3").bind(value).execute(&mut conn).await.expect("tamper");
    conn.close().await.expect("close raw connection");
    // Every entry's checksum is verified when the storage opens.
    let err = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect_err("entry 3 is damaged");
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err:?}");
    let location = format!("{} log (group 1, node 1, index 3)", dir.path().join(DB_FILE).display());
    assert_names(&err, &location);
    assert_names(&err, "checksum");
}

#[tokio::test]
async fn a_damaged_hard_state_fails_the_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    filled(dir.path(), 5, 10).await;
    tamper(dir.path(), "UPDATE meta SET hard_state = X'0102030405'").await;
    let err = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect_err("hard state is damaged");
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err:?}");
    assert_names(&err, &format!("{} meta (group 1, node 1)", dir.path().join(DB_FILE).display()));
}

#[tokio::test]
async fn a_gap_in_the_log_fails_the_member() {
    let dir = tempfile::tempdir().expect("temp dir");
    filled(dir.path(), 5, 10).await;
    tamper(dir.path(), "DELETE FROM log WHERE idx = 3").await;
    let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("open");
    let err = storage.member(GroupId(1), NodeId(1)).await.expect_err("entry 3 is missing");
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err:?}");
    assert_names(&err, &storage.path().display().to_string());
    assert_names(&err, "missing");
}

#[tokio::test]
async fn a_damaged_page_fails_the_integrity_check_on_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    filled(dir.path(), 2000, 300).await;
    let path = dir.path().join(DB_FILE);
    let mut bytes = std::fs::read(&path).expect("read");
    // Overwrite the b-tree page header and cell pointers of a page in the middle.
    let page_size = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
    let at = bytes.len() / 2 / page_size * page_size;
    for b in &mut bytes[at..at + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &bytes).expect("damage a page");
    let err =
        SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect_err("a damaged page must be found");
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err:?}");
    assert_names(&err, &path.display().to_string());
    assert_names(&err, "integrity check");
}
