//! A damaged database file is an error naming the file (or the entry), never
//! a panic or a silently empty log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use bytes::Bytes;
use raftkv_core::raft::{Entry, EntryPayload};
use raftkv_core::storage::{LogStore, StorageError};
use raftkv_core::{GroupId, LogIndex, NodeId, Term};
use raftkv_storage_redb::{RedbOptions, RedbStorage, DB_FILE_NAME};

fn ents(range: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    range
        .map(|i| Entry {
            term: Term(1),
            index: LogIndex(i),
            payload: EntryPayload::Command(Bytes::from(format!("payload-of-entry-{i:05}"))),
        })
        .collect()
}

/// A database holding entries 1..=300 of member (1, 1); returns its file.
async fn filled_db(dir: &Path) -> PathBuf {
    let storage = RedbStorage::open(dir, RedbOptions::default()).await.unwrap();
    let (log, _) = storage.member(GroupId(1), NodeId(1)).await.unwrap();
    for chunk in 0..3 {
        log.append(ents(chunk * 100 + 1..=chunk * 100 + 100)).await.unwrap();
    }
    storage.db_path().to_path_buf()
}

async fn open_err(dir: &Path, options: RedbOptions) -> StorageError {
    match RedbStorage::open(dir, options).await {
        Ok(storage) => panic!("opening a damaged database must fail, got {storage:?}"),
        Err(e) => e,
    }
}

fn assert_names_file(err: &StorageError, file: &Path) {
    let text = err.to_string();
    assert!(text.contains(&file.display().to_string()), "the error must name {}: {text}", file.display());
}

#[tokio::test]
async fn garbage_file_fails_to_open_naming_it() {
    for len in [16usize, 4096, 1 << 20] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(DB_FILE_NAME);
        let garbage: Vec<u8> = (0..len as u64).map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8).collect();
        std::fs::write(&file, &garbage).unwrap();
        let err = open_err(dir.path(), RedbOptions::default()).await;
        assert!(matches!(err, StorageError::Corrupt { .. }), "{len} bytes of garbage: {err:?}");
        assert_names_file(&err, &file);
        assert!(err.to_string().contains("not a valid redb database"), "{err}");
    }
}

#[tokio::test]
async fn truncated_file_fails_to_open_naming_it() {
    for keep in [100u64, 1000, 5000] {
        for check_integrity_on_open in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let file = filled_db(dir.path()).await;
            let len = std::fs::metadata(&file).unwrap().len();
            let keep = keep.min(len / 2);
            std::fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(keep).unwrap();
            let options = RedbOptions { check_integrity_on_open, ..RedbOptions::default() };
            let err = open_err(dir.path(), options).await;
            assert!(matches!(err, StorageError::Corrupt { .. }), "truncated to {keep} bytes: {err:?}");
            assert!(err.to_string().contains("truncated"), "{err}");
            assert_names_file(&err, &file);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = filled_db(dir.path()).await;
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(len / 2).unwrap();
    let err = open_err(dir.path(), RedbOptions::default()).await;
    assert!(matches!(err, StorageError::Corrupt { .. }), "truncated to half: {err:?}");
    assert_names_file(&err, &file);
}

#[tokio::test]
async fn file_truncated_to_nothing_is_refused_once_members_existed() {
    let dir = tempfile::tempdir().unwrap();
    let file = filled_db(dir.path()).await;
    std::fs::write(&file, b"").unwrap();
    let err = open_err(dir.path(), RedbOptions::default()).await;
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("empty"), "{err}");
    assert_names_file(&err, &file);

    // An empty file in a directory that never held a member is a creation
    // that crashed: it becomes a new database.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(DB_FILE_NAME), b"").unwrap();
    RedbStorage::open(dir.path(), RedbOptions::default()).await.expect("an empty file is initialized");
}

/// Flips a byte in every stored copy of `needle` (copy-on-write may have left old ones).
fn damage(file: &Path, needle: &[u8]) {
    let mut bytes = std::fs::read(file).unwrap();
    let mut hits = 0;
    let mut at = 0;
    while let Some(pos) = bytes[at..].windows(needle.len()).position(|w| w == needle) {
        let pos = at + pos;
        bytes[pos + needle.len() - 1] ^= 0x55;
        hits += 1;
        at = pos + needle.len();
    }
    assert!(hits > 0, "{} not found in the file", String::from_utf8_lossy(needle));
    std::fs::write(file, bytes).unwrap();
}

#[tokio::test]
async fn damaged_page_fails_the_integrity_check_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = filled_db(dir.path()).await;
    damage(&file, b"payload-of-entry-00150");
    let err = open_err(dir.path(), RedbOptions::default()).await;
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err:?}");
    assert_names_file(&err, &file);
}

#[tokio::test]
async fn damaged_entry_is_reported_with_its_index_without_the_integrity_check() {
    let dir = tempfile::tempdir().unwrap();
    let file = filled_db(dir.path()).await;
    damage(&file, b"payload-of-entry-00150");
    let options = RedbOptions { check_integrity_on_open: false, ..RedbOptions::default() };
    let storage = RedbStorage::open(dir.path(), options).await.expect("open without the integrity check");
    // Every entry's checksum is verified when the member opens.
    let err = storage.member(GroupId(1), NodeId(1)).await.expect_err("entry 150 is damaged");
    let StorageError::Corrupt { location, reason } = &err else { panic!("expected Corrupt, got {err:?}") };
    assert_eq!(location, &format!("{} log (group 1, node 1, index 150)", file.display()));
    assert!(reason.contains("checksum"), "{reason}");
}
