//! One flipped byte anywhere in the files of a storage directory — the
//! database, SQLite's write-ahead log, the snapshots — after a clean close
//! or after kill -9: opening a copy either fails with
//! `StorageError::Corrupt` naming the damaged file, or returns everything
//! acknowledged, intact. And a torn last transaction is dropped.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns panic on purpose

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use raftkv_core::raft::HardState;
use raftkv_core::storage::{LogStore, LogWrite, SnapshotStore, StorageError};
use raftkv_core::LogIndex;
use raftkv_storage_sqlite::{SqliteOptions, SqliteStorage, DB_FILE};
use raftkv_testkit::crash::{
    check_flips, copy_dir, files_under, flip_positions, kill_after, kill_members_child, member_entries, verify_members,
    write_members, Damage, MemberAck, MemberStores, MembersWorkload, OpenMembers, DAMAGE_MEMBERS,
};

const WORK: MembersWorkload =
    MembersWorkload { batch: 4, payload: 100, snapshot_every: 7, snapshot_bytes: 256, rewrite_every: 5 };

/// Writes per member before a clean close, and acknowledgements before a
/// kill: enough for the journal to be moved into `log` a few times.
const WRITES: u64 = 300;
const ACKS: usize = 1500;

/// A scratch directory, in memory where the machine has one (the checks open thousands of copies).
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).expect("temp dir in /dev/shm")
    } else {
        tempfile::tempdir().expect("temp dir")
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// Small checkpoints of SQLite's log keep each copy quick to open (and make several).
fn options() -> SqliteOptions {
    SqliteOptions { wal_autocheckpoint_pages: 100, ..SqliteOptions::default() }
}

async fn open_storage(dir: PathBuf) -> Result<(SqliteStorage, Vec<MemberStores>), StorageError> {
    let storage = SqliteStorage::open(&dir, options()).await?;
    let mut out = Vec::new();
    for (group, node) in DAMAGE_MEMBERS {
        let (log, snapshots) = storage.member(group, node).await?;
        out.push((Arc::new(log) as Arc<dyn LogStore>, Arc::new(snapshots) as Arc<dyn SnapshotStore>));
    }
    Ok((storage, out))
}

fn opener(dir: PathBuf) -> OpenMembers {
    Box::pin(async move { Ok(open_storage(dir).await?.1) })
}

/// Opens `dir` on a runtime of its own, verifies it and closes it.
fn check(dir: &Path, acks: &[MemberAck], exact: bool) -> Result<(), Damage> {
    runtime().block_on(async {
        let (storage, stores) = open_storage(dir.to_path_buf()).await?;
        let verified = verify_members(&stores, acks, exact, WORK).await;
        storage.close().await;
        verified
    })
}

/// The frames of SQLite's write-ahead log (a 32-byte header, then frames of
/// a 24-byte header and a page) and the index of the last commit frame.
fn wal_frames(bytes: &[u8]) -> (Vec<Range<u64>>, Option<usize>) {
    if bytes.len() < 32 {
        return (Vec::new(), None);
    }
    let page = u64::from(u32::from_be_bytes(bytes[8..12].try_into().unwrap()));
    let mut frames = Vec::new();
    let mut last_commit = None;
    let mut at = 32;
    while at + 24 + page <= bytes.len() as u64 {
        let head = &bytes[at as usize..at as usize + 24];
        if head[8..16] != bytes[16..24] {
            break; // another generation's salts
        }
        if head[4..8] != [0; 4] {
            last_commit = Some(frames.len());
        }
        frames.push(at..at + 24 + page);
        at += 24 + page;
    }
    (frames, last_commit)
}

/// Where to flip: every byte of the snapshots, of the log's header and of
/// its last frame's header, every 3rd byte of that frame's page; four bytes
/// of each other frame of the log (two of its header, two of its page) and
/// 200 of what follows them; every 7th byte of the database.
fn plan(dir: &Path) -> Vec<(PathBuf, Vec<u64>)> {
    files_under(dir)
        .unwrap()
        .into_iter()
        .filter(|file| !file.to_string_lossy().ends_with("-shm"))
        .map(|file| {
            let bytes = std::fs::read(dir.join(&file)).unwrap();
            let len = bytes.len() as u64;
            let positions = if file.to_string_lossy().ends_with("-wal") {
                let (frames, _) = wal_frames(&bytes);
                let end = frames.last().map_or(32, |f| f.end);
                let mut positions: Vec<u64> = (0..32).collect();
                if let Some(last) = frames.last() {
                    positions.extend((last.start..last.start + 24).chain((last.start + 24..last.end).step_by(3)));
                }
                for (k, frame) in frames.iter().enumerate() {
                    let (start, size) = (frame.start, frame.end - frame.start);
                    let seed = k as u64 * 7919;
                    positions.extend([start + seed % 24, start + (seed / 24) % 24]);
                    positions.extend([start + 24 + seed % (size - 24), start + 24 + (seed * 31) % (size - 24)]);
                }
                positions.extend(
                    flip_positions(len.saturating_sub(end), &[], (len.saturating_sub(end) / 200).max(1), len)
                        .into_iter()
                        .map(|p| p + end),
                );
                positions.sort_unstable();
                positions.dedup();
                positions
            } else if len <= 4096 {
                flip_positions(len, &[], 1, len)
            } else {
                flip_positions(len, std::slice::from_ref(&(0..100)), 7, len)
            };
            eprintln!("{}: {len} bytes, {} flips", file.display(), positions.len());
            (file, positions)
        })
        .collect()
}

fn run_flips(dir: &Path, scratch: &Path, acks: &[MemberAck], exact: bool) {
    // Opening writes (it checkpoints): check a copy.
    let pristine = scratch.join("pristine");
    copy_dir(dir, &pristine).unwrap();
    check(&pristine, acks, exact).expect("the undamaged store holds everything acknowledged");
    let plan = plan(dir);
    let start = Instant::now();
    let report = check_flips(dir, scratch, &plan, &|copy| check(copy, acks, exact));
    eprintln!("{report:?} in {:?}", start.elapsed());
}

#[test]
fn a_flipped_byte_after_a_clean_close_is_refused_naming_the_file_or_harmless() {
    let scratch = scratch();
    let dir = scratch.path().join("store");
    let acks = Mutex::new(vec![MemberAck::default(); DAMAGE_MEMBERS.len()]);
    runtime().block_on(async {
        let (storage, stores) = open_storage(dir.clone()).await.unwrap();
        write_members(&stores, Some(WRITES), WORK, &|member, event| event.apply(&mut acks.lock().unwrap()[member]))
            .await
            .unwrap();
        storage.close().await;
    });
    let acks = acks.into_inner().unwrap();
    run_flips(&dir, scratch.path(), &acks, true);
}

#[test]
fn a_flipped_byte_after_kill_9_is_refused_naming_the_file_or_harmless() {
    const NAME: &str = "a_flipped_byte_after_kill_9_is_refused_naming_the_file_or_harmless";
    let scratch = scratch();
    let dir = scratch.path().join("store");
    let acks = kill_members_child(NAME, &dir, ACKS, WORK, &opener);
    run_flips(&dir, scratch.path(), &acks, false);
}

/// A way to tear the last record: what it does, and how.
type Tear = (&'static str, Box<dyn Fn(&mut Vec<u8>)>);

/// Entries each member appends in the second run of the torn-tail test.
const TAIL_ENTRIES: u64 = 4;

/// One write per member, one after the other (so each is a transaction of
/// its own), at the stored term; returns the storage so that it stays open.
async fn one_write_each(dir: PathBuf) -> Result<Box<dyn std::any::Any>, StorageError> {
    let (storage, stores) = open_storage(dir).await?;
    for (member, (log, _)) in stores.iter().enumerate() {
        let state = log.state().await?;
        let (last, hs) = (state.last_index.0, state.hard_state);
        let entries = member_entries(member, last + 1, last + TAIL_ENTRIES, hs.term, WORK.payload);
        let hard_state = HardState { commit: LogIndex(last + TAIL_ENTRIES), ..hs };
        log.write(LogWrite { entries, hard_state: Some(hard_state), truncate_after: None }).await?;
    }
    Ok(Box::new((storage, stores)))
}

#[test]
fn a_torn_last_transaction_after_kill_9_is_dropped_and_everything_acknowledged_is_there() {
    const NAME: &str = "a_torn_last_transaction_after_kill_9_is_dropped_and_everything_acknowledged_is_there";
    let scratch = scratch();
    let dir = scratch.path().join("store");
    // A first run killed in the middle of writing; a second one that writes
    // once to each member and is killed while idle.
    let mut acks = kill_members_child(NAME, &dir, 600, WORK, &opener);
    kill_after(NAME, "tail", &dir, &|dir| Box::pin(one_write_each(dir)));

    // What the second run left, whole.
    let pristine = scratch.path().join("pristine");
    copy_dir(&dir, &pristine).unwrap();
    let last: Vec<u64> = runtime().block_on(async {
        let (storage, stores) = open_storage(pristine.clone()).await.unwrap();
        let mut last = Vec::new();
        for (log, _) in &stores {
            last.push(log.state().await.unwrap().last_index.0);
        }
        storage.close().await;
        last
    });
    for (ack, last) in acks.iter_mut().zip(&last) {
        assert!(*last >= ack.last + TAIL_ENTRIES, "the second run's writes are there");
        ack.last = *last;
    }
    // The last transaction of SQLite's log is the last member's write: tear its commit frame.
    let wal_path = dir.join(format!("{DB_FILE}-wal"));
    let wal = std::fs::read(&wal_path).unwrap();
    let (frames, last_commit) = wal_frames(&wal);
    let commit = frames[last_commit.expect("a commit frame")].clone();
    assert_eq!(commit.end, frames.last().unwrap().end, "the commit frame ends the log");
    let (start, end) = (commit.start as usize, commit.end as usize);
    // The last sector of its page that holds something.
    let sector =
        (start + 24..end).step_by(512).rev().find(|&s| wal[s..(s + 512).min(end)].iter().any(|&b| b != 0)).unwrap();
    let tears: Vec<Tear> = vec![
        ("cut inside its header", Box::new(move |b: &mut Vec<u8>| b.truncate(start + 10))),
        ("cut inside its page", Box::new(move |b: &mut Vec<u8>| b.truncate(start + 24 + 1000))),
        ("cut before its last byte", Box::new(move |b: &mut Vec<u8>| b.truncate(end - 1))),
        (
            "a sector of its page never written",
            Box::new(move |b: &mut Vec<u8>| b[sector..(sector + 512).min(end)].fill(0)),
        ),
        ("its page never written", Box::new(move |b: &mut Vec<u8>| b[start + 24..end].fill(0))),
        ("all of it zeroed", Box::new(move |b: &mut Vec<u8>| b[start..end].fill(0))),
    ];
    let members = acks.len();
    let mut expected = acks.clone();
    expected[members - 1].last -= TAIL_ENTRIES;
    for (what, tear) in tears {
        let copy = scratch.path().join(what.replace(' ', "-"));
        copy_dir(&dir, &copy).unwrap();
        let mut bytes = wal.clone();
        tear(&mut bytes);
        std::fs::write(copy.join(format!("{DB_FILE}-wal")), &bytes).unwrap();
        runtime().block_on(async {
            let (storage, stores) = open_storage(copy.clone()).await.unwrap_or_else(|e| panic!("{what}: {e}"));
            if let Err(e) = verify_members(&stores, &expected, false, WORK).await {
                panic!("{what}: {e:?}");
            }
            let state = stores[members - 1].0.state().await.unwrap();
            assert_eq!(state.last_index.0, expected[members - 1].last, "{what}: the torn write is dropped");
            storage.close().await;
        });
    }
}
