//! A member restarts cleanly from whatever a crash in the middle of
//! installing a received snapshot leaves on disk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use raftkv_core::raft::core::RaftConfig;
use raftkv_core::raft::driver::{DriverConfig, Raft};
use raftkv_core::raft::{Entry, EntryPayload, HardState, SnapshotMeta};
use raftkv_core::storage::{LogStore, MemDisk, SnapshotStore};
use raftkv_core::transport::LocalTransport;
use raftkv_core::{GroupId, LogIndex, NodeId, Term};
use raftkv_testkit::sim::{cmd, simulate, AppliedView, RecordingStateMachine};

fn entries(from: u64, to: u64, term: u64) -> Vec<Entry> {
    (from..=to)
        .map(|i| Entry { term: Term(term), index: LogIndex(i), payload: EntryPayload::Command(cmd(i)) })
        .collect()
}

/// Write a snapshot taken by a recording state machine that applied `1..=last`.
async fn install_snapshot(disk: &MemDisk, last: u64, term: u64) {
    let mut sm = RecordingStateMachine::new(9, AppliedView::default());
    use raftkv_core::state_machine::{Committed, StateMachine};
    let batch = (1..=last).map(|i| Committed { index: LogIndex(i), term: Term(term), command: cmd(i) }).collect();
    sm.apply(batch).await.unwrap();
    let store = disk.snapshot_store();
    let mut w = store.begin(SnapshotMeta { last_index: LogIndex(last), last_term: Term(term) }).await.unwrap();
    sm.snapshot().await.unwrap().write_to(w.as_mut()).await.unwrap();
    assert!(w.finish().await.unwrap());
    // A member that received a snapshot of `term` had adopted at least that term.
    disk.log_store().save_hard_state(HardState { term: Term(term), vote: None, commit: LogIndex(0) }).await.unwrap();
}

async fn restart_and_propose(disk: &MemDisk) -> LogIndex {
    let raft = Raft::start(
        RaftConfig::new(GroupId(1), NodeId(1), vec![NodeId(1)]),
        DriverConfig::default(),
        Arc::new(disk.log_store()),
        Arc::new(disk.snapshot_store()),
        Arc::new(LocalTransport::new()),
        RecordingStateMachine::new(0, AppliedView::default()),
    )
    .await
    .expect("the member restarts");
    for _ in 0..100 {
        match raft.propose(Bytes::from_static(b"after restart")).await {
            Ok(index) => return index,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("no proposal committed after restart");
}

#[test]
fn restart_after_snapshot_beyond_the_log_end() {
    simulate("restart_after_snapshot_beyond_the_log_end", |_| async move {
        // The log ends at 77; a received snapshot at 120 became durable, then the member crashed.
        let disk = MemDisk::new();
        disk.log_store().append(entries(1, 77, 1)).await.unwrap();
        install_snapshot(&disk, 120, 2).await;
        let index = restart_and_propose(&disk).await;
        assert!(index > LogIndex(120), "new entries follow the snapshot, got {index}");
        let state = disk.log_store().state().await.unwrap();
        assert_eq!(state.first_index, LogIndex(121), "entries covered by the snapshot were purged");
    });
}

#[test]
fn restart_drops_a_stale_suffix_after_the_snapshot() {
    simulate("restart_drops_a_stale_suffix_after_the_snapshot", |_| async move {
        // The log holds 1..=130 of term 1; the snapshot at 120 is of term 3, so 121..=130 conflict.
        let disk = MemDisk::new();
        disk.log_store().append(entries(1, 130, 1)).await.unwrap();
        install_snapshot(&disk, 120, 3).await;
        let index = restart_and_propose(&disk).await;
        assert!(index > LogIndex(120), "got {index}");
        let kept = disk.log_store().entries(LogIndex(121), index.next()).await.unwrap();
        assert!(kept.iter().all(|e| e.term > Term(3)), "stale term-1 entries after the snapshot survived: {kept:?}");
    });
}
