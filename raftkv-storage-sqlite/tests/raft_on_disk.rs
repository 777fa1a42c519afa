//! The lab-3C (persistence) and 3D (snapshot) scenarios once more, with every
//! member's log and snapshots in a real sqlite store on a temporary directory
//! (fsync on), restarting from those files after each simulated crash.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use raftkv_core::storage::{LogStore, SnapshotStore};
use raftkv_core::{GroupId, NodeId};
use raftkv_storage_sqlite::{SqliteOptions, SqliteStorage};
use raftkv_testkit::sim::{DirStorage, MemberStorage};

fn on_disk(root: &Path) -> Arc<dyn MemberStorage> {
    Arc::new(DirStorage::new(
        root,
        Box::new(|dir: PathBuf| {
            Box::pin(async move {
                let storage = SqliteStorage::open(&dir, SqliteOptions::default()).await?;
                let (log, snapshots) = storage.member(GroupId(1), NodeId(1)).await?;
                Ok((Arc::new(log) as Arc<dyn LogStore>, Arc::new(snapshots) as Arc<dyn SnapshotStore>))
            })
        }),
    ))
}

raftkv_testkit::lab3_scenarios_on!(on_disk, "_sqlite");
