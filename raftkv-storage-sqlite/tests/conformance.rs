//! `SqliteLogStore` (with its `FileSnapshotStore`) passes the storage
//! conformance suite unchanged.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns panic on purpose

use async_trait::async_trait;
use raftkv_core::storage::FileSnapshotStore;
use raftkv_core::{GroupId, NodeId};
use raftkv_storage_sqlite::{SqliteLogStore, SqliteOptions, SqliteStorage, SyncMode};
use raftkv_testkit::{storage_conformance, StoreHarness};

/// Each `fresh` store is a new directory; a crash closes the storage (writer
/// and read connections) and reopens the same directory.
struct SqliteHarness {
    sync: SyncMode,
    dirs: Vec<tempfile::TempDir>,
    storage: Option<SqliteStorage>,
}

impl SqliteHarness {
    fn new(sync: SyncMode) -> Self {
        Self { sync, dirs: Vec::new(), storage: None }
    }

    async fn open_last(&mut self) -> (SqliteLogStore, FileSnapshotStore) {
        let dir = self.dirs.last().expect("fresh() first").path();
        let options = SqliteOptions { sync: self.sync, ..SqliteOptions::default() };
        let storage = SqliteStorage::open(dir, options).await.expect("open the database");
        let stores = storage.member(GroupId(1), NodeId(1)).await.expect("open member (1, 1)");
        self.storage = Some(storage);
        stores
    }
}

#[async_trait]
impl StoreHarness for SqliteHarness {
    type Log = SqliteLogStore;
    type Snap = FileSnapshotStore;

    async fn fresh(&mut self) -> (SqliteLogStore, FileSnapshotStore) {
        if let Some(old) = self.storage.take() {
            old.close().await;
        }
        self.dirs.push(tempfile::tempdir().expect("temp dir"));
        self.open_last().await
    }

    async fn crash_and_reopen(&mut self) -> (SqliteLogStore, FileSnapshotStore) {
        if let Some(old) = self.storage.take() {
            old.close().await;
        }
        self.open_last().await
    }
}

#[tokio::test]
async fn sqlite_store_passes_storage_conformance() {
    storage_conformance(&mut SqliteHarness::new(SyncMode::Always)).await;
}

#[tokio::test(start_paused = true)]
async fn sqlite_store_passes_storage_conformance_under_a_paused_clock() {
    storage_conformance(&mut SqliteHarness::new(SyncMode::Never)).await;
}
