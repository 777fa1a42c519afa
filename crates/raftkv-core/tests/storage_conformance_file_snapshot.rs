//! `FileSnapshotStore` passes the storage conformance suite (with the
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! in-memory log beside it) and reports damaged files by name.

use async_trait::async_trait;
use bytes::Bytes;
use raftkv_core::raft::SnapshotMeta;
use raftkv_core::storage::{FileSnapshotStore, MemDisk, MemLogStore, SnapshotStore, StorageError};
use raftkv_core::testkit::{storage_conformance, StoreHarness};
use raftkv_core::{LogIndex, Term};

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
