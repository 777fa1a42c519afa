//! Kill -9 at random moments: every acknowledged entry and hard state
//! survives, intact, and appends continue (see `raftkv_testkit::crash`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use raftkv_core::{GroupId, NodeId};
use raftkv_storage_redb::{RedbOptions, RedbStorage};
use raftkv_testkit::crash::{crash_test_entry, CrashTestConfig, CHILD_ENV};

#[test]
fn acknowledged_writes_survive_kill_9() {
    // The child (re-run of this test with CHILD_ENV set) gets its directory from the environment.
    let tmp = std::env::var_os(CHILD_ENV).is_none().then(|| tempfile::tempdir().expect("temp dir"));
    let dir = tmp.as_ref().map(|t| t.path().to_path_buf()).unwrap_or_default();
    let cfg = CrashTestConfig { kills: 50, seed: 0x5eed_0001, ..CrashTestConfig::default() };
    let report = crash_test_entry("acknowledged_writes_survive_kill_9", &cfg, &dir, |dir| async move {
        let storage = RedbStorage::open(&dir, RedbOptions::default()).await?;
        Ok(storage.member(GroupId(1), NodeId(1)).await?.0)
    });
    eprintln!("{report:?}");
    assert_eq!(report.kills, 50, "every kill must be delivered and checked");
    assert!(report.kills_mid_write >= 40, "most kills must land while writes are acknowledged: {report:?}");
    assert!(report.max_acked > 1000, "the children must have made progress: {report:?}");
}
