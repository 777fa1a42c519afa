//! The lab-3C (persistence) and 3D (snapshot) scenarios once more, with every
//! member's log and snapshots in a real redb store on a temporary directory
//! (fsync on), restarting from those files after each simulated crash.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use raftkv_core::storage::{LogStore, SnapshotStore};
use raftkv_core::testkit::sim::{lab3, simulate, DirStorage, MemberStorage};
use raftkv_core::{GroupId, NodeId};
use raftkv_storage_redb::{RedbOptions, RedbStorage};

fn on_disk(root: &Path) -> Arc<dyn MemberStorage> {
    Arc::new(DirStorage::new(
        root,
        Box::new(|dir: PathBuf| {
            Box::pin(async move {
                let storage = RedbStorage::open(&dir, RedbOptions::default()).await?;
                let (log, snapshots) = storage.member(GroupId(1), NodeId(1)).await?;
                Ok((Arc::new(log) as Arc<dyn LogStore>, Arc::new(snapshots) as Arc<dyn SnapshotStore>))
            })
        }),
    ))
}

macro_rules! scenarios_on_disk {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let dir = tempfile::tempdir().expect("temp dir");
                let storage = on_disk(dir.path());
                simulate(concat!(stringify!($name), "_redb"), move |seed| lab3::$name(seed, Some(storage)));
            }
        )*
    };
}

scenarios_on_disk!(
    persist1_3c,
    persist2_3c,
    persist3_3c,
    figure8_3c,
    unreliable_agree_3c,
    figure8_unreliable_3c,
    reliable_churn_3c,
    unreliable_churn_3c,
    snapshot_basic_3d,
    snapshot_install_3d,
    snapshot_install_unreliable_3d,
    snapshot_install_crash_3d,
    snapshot_install_un_crash_3d,
    snapshot_all_crash_3d,
    snapshot_init_3d,
);
