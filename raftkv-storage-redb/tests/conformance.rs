//! `RedbLogStore` (with its `FileSnapshotStore`) passes the storage
//! conformance suite; a crash drops every handle and reopens the directory.

#![allow(clippy::expect_used)]

use async_trait::async_trait;
use raftkv_core::storage::FileSnapshotStore;
use raftkv_core::{GroupId, NodeId};
use raftkv_storage_redb::{RedbLogStore, RedbOptions, RedbStorage, SyncMode};
use raftkv_testkit::{storage_conformance, StoreHarness};

struct RedbHarness {
    options: RedbOptions,
    dirs: Vec<tempfile::TempDir>,
    storage: Option<RedbStorage>,
}

impl RedbHarness {
    fn new(sync: SyncMode) -> Self {
        Self { options: RedbOptions { sync, ..RedbOptions::default() }, dirs: Vec::new(), storage: None }
    }

    async fn open_last(&mut self) -> (RedbLogStore, FileSnapshotStore) {
        let dir = self.dirs.last().expect("fresh() first");
        let storage = RedbStorage::open(dir.path(), self.options).await.expect("open redb storage");
        let stores = storage.member(GroupId(1), NodeId(1)).await.expect("open member");
        self.storage = Some(storage);
        stores
    }
}

#[async_trait]
impl StoreHarness for RedbHarness {
    type Log = RedbLogStore;
    type Snap = FileSnapshotStore;

    async fn fresh(&mut self) -> (RedbLogStore, FileSnapshotStore) {
        self.storage = None;
        self.dirs.push(tempfile::tempdir().expect("temp dir"));
        self.open_last().await
    }

    async fn crash_and_reopen(&mut self) -> (RedbLogStore, FileSnapshotStore) {
        // The suite has dropped its stores; dropping the storage closes the file.
        self.storage = None;
        self.open_last().await
    }
}

#[tokio::test]
async fn redb_store_passes_conformance_with_sync_always() {
    storage_conformance(&mut RedbHarness::new(SyncMode::Always)).await;
}

#[tokio::test]
async fn redb_store_passes_conformance_with_sync_never() {
    storage_conformance(&mut RedbHarness::new(SyncMode::Never)).await;
}
