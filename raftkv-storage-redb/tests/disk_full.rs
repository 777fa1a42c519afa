//! A full disk: a write fails with an I/O error naming the file; once space
//! is freed the same write, retried on the same open store, succeeds; after a
//! reopen everything acknowledged is there, once, and nothing of the failed
//! attempts. On a small tmpfs (needs root; skipped, saying so, otherwise).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use bytes::Bytes;
use raftkv_core::raft::{Entry, EntryPayload, HardState};
use raftkv_core::storage::{LogStore, LogWrite, StorageError};
use raftkv_core::{GroupId, LogIndex, NodeId, Term};
use raftkv_storage_redb::{RedbOptions, RedbStorage};
use raftkv_testkit::crash::Tmpfs;

const ENTRIES_PER_WRITE: u64 = 4;

fn entry(index: u64) -> Entry {
    let payload = format!("{index:08}").repeat(128); // 1 KiB, different per index
    Entry { term: Term(1), index: LogIndex(index), payload: EntryPayload::Command(Bytes::from(payload)) }
}

/// The write that appends the entries after `last` with their hard state.
fn write_after(last: u64) -> LogWrite {
    let to = last + ENTRIES_PER_WRITE;
    LogWrite {
        entries: (last + 1..=to).map(entry).collect(),
        hard_state: Some(HardState { term: Term(1), vote: Some(NodeId(1)), commit: LogIndex(to) }),
        truncate_after: None,
    }
}

async fn fill_and_retry(fs: &Tmpfs, dir: &Path, options: RedbOptions) {
    let storage = RedbStorage::open(dir, options).await.unwrap();
    let (log, _) = storage.member(GroupId(1), NodeId(1)).await.unwrap();
    let (other, _) = storage.member(GroupId(1), NodeId(2)).await.unwrap();
    let mut last = 0;
    for _ in 0..50 {
        log.write(write_after(last)).await.unwrap();
        last += ENTRIES_PER_WRITE;
    }
    other.append(vec![entry(1)]).await.unwrap();

    let filler = fs.fill();
    let (write, err) = loop {
        let write = write_after(last);
        match log.write(write.clone()).await {
            Ok(()) => last += ENTRIES_PER_WRITE,
            Err(e) => break (write, e),
        }
        assert!(last < 100_000, "the disk never filled up");
    };
    eprintln!("{}: write of {}.. failed: {err}", dir.display(), last + 1);
    assert!(matches!(err, StorageError::Io { .. }), "an I/O error: {err:?}");
    assert!(err.to_string().contains(&dir.display().to_string()), "the error names the file: {err}");
    // (Reads may fail too until space is back: reopening the database after
    // the failed write writes to it. A Raft member reads its log only when
    // it starts. That nothing of the failed write shows is checked below:
    // the retried write lands once, right after `last`.)

    std::fs::remove_file(&filler).unwrap();
    log.write(write).await.expect("the same write succeeds once space is freed");
    last += ENTRIES_PER_WRITE;
    for _ in 0..3 {
        log.write(write_after(last)).await.unwrap();
        last += ENTRIES_PER_WRITE;
    }
    other.append(vec![entry(2)]).await.expect("the other member's write too");
    let state = log.state().await.unwrap();
    assert_eq!(state.last_index, LogIndex(last));
    drop((log, other, storage));

    let storage = RedbStorage::open(dir, options).await.expect("reopen");
    let (log, _) = storage.member(GroupId(1), NodeId(1)).await.unwrap();
    let state = log.state().await.unwrap();
    assert_eq!((state.first_index, state.last_index), (LogIndex(1), LogIndex(last)));
    assert_eq!(state.hard_state.commit, LogIndex(last));
    let entries = log.entries(LogIndex(1), LogIndex(last + 1)).await.unwrap();
    assert!(entries == (1..=last).map(entry).collect::<Vec<_>>(), "every acknowledged entry, once, intact");
    let (other, _) = storage.member(GroupId(1), NodeId(2)).await.unwrap();
    assert_eq!(other.entries(LogIndex(1), LogIndex(3)).await.unwrap(), vec![entry(1), entry(2)]);
}

#[tokio::test]
async fn a_write_that_fails_on_a_full_disk_succeeds_when_retried_after_space_is_freed() {
    // Checkpoints every 128 KiB (the failure lands in a durable redb commit or
    // the reopen after it); none (the log grows: the failure lands in it);
    // none with a small page cache (redb writes pages in between: the failure
    // lands in a non-durable commit, whose logged batch is taken back).
    for (name, checkpoint, cache) in
        [("checkpoints", 128 << 10, 32 << 20), ("log-grows", 64 << 20, 32 << 20), ("small-cache", 64 << 20, 64 << 10)]
    {
        let Some(fs) = Tmpfs::mount(12 << 20) else { return };
        let options = RedbOptions { wal_checkpoint_bytes: checkpoint, cache_bytes: cache, ..RedbOptions::default() };
        fill_and_retry(&fs, &fs.path().join(name), options).await;
    }
}
