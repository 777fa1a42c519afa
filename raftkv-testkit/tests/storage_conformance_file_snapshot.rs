//! `FileSnapshotStore` passes the storage conformance suite (with the
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! in-memory log beside it) and reports damaged files by name.

use async_trait::async_trait;
use bytes::Bytes;
use raftkv_core::raft::SnapshotMeta;
use raftkv_core::storage::{FileSnapshotStore, MemDisk, MemLogStore, SnapshotStore, StorageError};
use raftkv_core::{LogIndex, Term};
use raftkv_testkit::{storage_conformance, StoreHarness};

#[derive(Default)]
struct FileHarness {
    dirs: Vec<tempfile::TempDir>,
    disk: Option<MemDisk>,
}

#[async_trait]
impl StoreHarness for FileHarness {
    type Log = MemLogStore;
    type Snap = FileSnapshotStore;

    async fn fresh(&mut self) -> (MemLogStore, FileSnapshotStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let snaps = FileSnapshotStore::open(dir.path()).await.expect("open snapshot dir");
        self.dirs.push(dir);
        let disk = MemDisk::new();
        let log = disk.log_store();
        self.disk = Some(disk);
        (log, snaps)
    }

    async fn crash_and_reopen(&mut self) -> (MemLogStore, FileSnapshotStore) {
        let disk = self.disk.as_ref().expect("fresh() first");
        disk.crash();
        let dir = self.dirs.last().expect("fresh() first");
        let snaps = FileSnapshotStore::open(dir.path()).await.expect("reopen snapshot dir");
        (disk.log_store(), snaps)
    }
}

#[tokio::test]
async fn file_snapshot_store_passes_conformance() {
    storage_conformance(&mut FileHarness::default()).await;
}

#[tokio::test]
async fn damaged_snapshot_files_are_reported_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = FileSnapshotStore::open(dir.path()).await.expect("open");
    let meta = SnapshotMeta { last_index: LogIndex(9), last_term: Term(2) };
    let mut w = store.begin(meta).await.expect("begin");
    w.write(Bytes::from(vec![7u8; 10_000])).await.expect("write");
    assert!(w.finish().await.expect("finish"));
    let path = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "snap"))
        .unwrap();

    // Flip a data byte: detected when the snapshot is read to its end.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let (_, mut reader) = store.open_latest().await.expect("open").expect("a snapshot");
    let mut err = None;
    loop {
        match reader.next_chunk(4096).await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let err = err.expect("a flipped byte must be detected");
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains(path.file_name().unwrap().to_str().unwrap()), "error must name the file: {err}");

    // Truncate the file: opening the store fails, naming the file.
    std::fs::write(&path, &bytes[..bytes.len() - 7]).unwrap();
    let err = FileSnapshotStore::open(dir.path()).await.expect_err("a truncated snapshot must fail to open");
    assert!(err.to_string().contains("truncated"), "{err}");
    assert!(err.to_string().contains(path.file_name().unwrap().to_str().unwrap()), "error must name the file: {err}");
}

/// A store in `dir` holding one finished snapshot at index 9 of 300 bytes; its file.
async fn one_snapshot(dir: &std::path::Path) -> std::path::PathBuf {
    let store = FileSnapshotStore::open(dir).await.expect("open");
    let meta = SnapshotMeta { last_index: LogIndex(9), last_term: Term(2) };
    let mut w = store.begin(meta).await.expect("begin");
    w.write(Bytes::from((0..300u32).map(|i| (i * 7) as u8).collect::<Vec<u8>>())).await.expect("write");
    assert!(w.finish().await.expect("finish"));
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "snap"))
        .unwrap()
}

/// Opens `dir` and reads its latest snapshot to the end.
async fn open_and_read(dir: &std::path::Path) -> Result<Vec<u8>, StorageError> {
    let store = FileSnapshotStore::open(dir).await?;
    let (_, mut reader) = store.open_latest().await?.expect("a snapshot");
    let mut data = Vec::new();
    while let Some(chunk) = reader.next_chunk(64).await? {
        data.extend_from_slice(&chunk);
    }
    Ok(data)
}

#[tokio::test]
async fn every_flipped_byte_of_a_snapshot_or_its_record_is_reported_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = one_snapshot(dir.path()).await;
    let current = dir.path().join(FileSnapshotStore::CURRENT_FILE_NAME);
    let data = open_and_read(dir.path()).await.expect("intact");
    for file in [&path, &current] {
        let pristine = std::fs::read(file).unwrap();
        let name = file.file_name().unwrap().to_str().unwrap();
        for at in 0..pristine.len() {
            let mut bytes = pristine.clone();
            bytes[at] ^= 0x40;
            std::fs::write(file, &bytes).unwrap();
            match open_and_read(dir.path()).await {
                Ok(read) => {
                    panic!("byte {at} of {name} flipped: read {} bytes without error (was {})", read.len(), data.len())
                }
                Err(e @ StorageError::Corrupt { .. }) => assert!(e.to_string().contains(name), "byte {at}: {e}"),
                Err(e) => panic!("byte {at} of {name} flipped: {e:?}"),
            }
        }
        std::fs::write(file, &pristine).unwrap();
    }
}

#[tokio::test]
async fn a_deleted_snapshot_file_is_named_when_the_store_opens() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = one_snapshot(dir.path()).await;
    std::fs::remove_file(&path).unwrap();
    let err = FileSnapshotStore::open(dir.path()).await.expect_err("the snapshot is gone");
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "the error names the missing file: {err}");
    assert!(err.to_string().contains("missing"), "{err}");
}

#[tokio::test]
async fn a_log_purged_past_every_snapshot_is_refused_naming_the_directory() {
    // A directory emptied of its snapshot and its record.
    let dir = tempfile::tempdir().expect("temp dir");
    one_snapshot(dir.path()).await;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let store = FileSnapshotStore::open(dir.path()).await.expect("an empty directory opens");
    store.check_covers(LogIndex(0)).await.expect("nothing purged");
    let err = store.check_covers(LogIndex(9)).await.expect_err("the log was purged past every snapshot");
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains(&dir.path().display().to_string()), "the error names the directory: {err}");

    // With its record, a directory is trusted (a log store may purge past the latest snapshot).
    let dir = tempfile::tempdir().expect("temp dir");
    one_snapshot(dir.path()).await;
    let store = FileSnapshotStore::open(dir.path()).await.expect("open");
    store.check_covers(LogIndex(9)).await.expect("covered");
    store.check_covers(LogIndex(10)).await.expect("CURRENT names a snapshot that is there");
    let dir = tempfile::tempdir().expect("temp dir");
    FileSnapshotStore::open(dir.path()).await.expect("a new store");
    let store = FileSnapshotStore::open(dir.path()).await.expect("reopened");
    store.check_covers(LogIndex(5)).await.expect("no snapshot ever finished here: a log store used without them");
    // A directory without a record that covers the purge: written by an older version, say.
    let dir = tempfile::tempdir().expect("temp dir");
    one_snapshot(dir.path()).await;
    std::fs::remove_file(dir.path().join(FileSnapshotStore::CURRENT_FILE_NAME)).unwrap();
    let store = FileSnapshotStore::open(dir.path()).await.expect("open");
    store.check_covers(LogIndex(9)).await.expect("covered");
    assert!(store.check_covers(LogIndex(10)).await.is_err(), "purged past its snapshot");
}
