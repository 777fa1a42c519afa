//! One flipped byte anywhere in the files of a storage directory — the
//! database, the write-ahead log, the snapshots — after a clean close or
//! after kill -9: opening a copy either fails with `StorageError::Corrupt`
//! naming the damaged file, or returns everything acknowledged, intact.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use raftkv_core::raft::HardState;
use raftkv_core::storage::{LogStore, LogWrite, SnapshotStore, StorageError};
use raftkv_core::LogIndex;
use raftkv_storage_redb::{RedbOptions, RedbStorage, WAL_FILE_NAME};
use raftkv_testkit::crash::{
    check_flips, copy_dir, files_under, flip_positions, kill_after, kill_members_child, member_entries, verify_members,
    write_members, Damage, MemberAck, MemberStores, MembersWorkload, OpenMembers, DAMAGE_MEMBERS,
};

const WORK: MembersWorkload =
    MembersWorkload { batch: 4, payload: 100, snapshot_every: 7, snapshot_bytes: 256, rewrite_every: 5 };

/// Writes per member before a clean close, and acknowledgements before a
/// kill: enough for several checkpoints (the log starts over at each).
const WRITES: u64 = 300;
const ACKS: usize = 1500;

/// Small checkpoints keep each copy quick to open (and make several).
fn options() -> RedbOptions {
    RedbOptions { wal_checkpoint_bytes: 128 << 10, ..RedbOptions::default() }
}

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

async fn open_members(dir: PathBuf) -> Result<Vec<MemberStores>, StorageError> {
    let storage = RedbStorage::open(&dir, options()).await?;
    let mut out = Vec::new();
    for (group, node) in DAMAGE_MEMBERS {
        let (log, snapshots) = storage.member(group, node).await?;
        out.push((Arc::new(log) as Arc<dyn LogStore>, Arc::new(snapshots) as Arc<dyn SnapshotStore>));
    }
    Ok(out)
}

fn opener(dir: PathBuf) -> OpenMembers {
    Box::pin(open_members(dir))
}

/// Opens `dir` on a runtime of its own (dropping it closes the storage) and verifies it.
fn check(dir: &Path, acks: &[MemberAck], exact: bool) -> Result<(), Damage> {
    runtime().block_on(async {
        let stores = open_members(dir.to_path_buf()).await?;
        verify_members(&stores, acks, exact, WORK).await
    })
}

/// The records of a write-ahead log (format 2: a 64-byte file header, then
/// records of a 16-byte header starting with the body length, and the body
/// with a 4-byte checksum padded to a multiple of 16), up to the first
/// all-zero header.
fn wal_records(bytes: &[u8]) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    let mut at = 64usize;
    while let Some(head) = bytes.get(at..at + 16) {
        if head.iter().all(|&b| b == 0) {
            break;
        }
        let len = u32::from_le_bytes(head[..4].try_into().unwrap()) as usize;
        let end = at + 16 + (len + 4).div_ceil(16) * 16;
        out.push(at as u64..end as u64);
        at = end;
    }
    out
}

/// Where to flip: every byte of the snapshots, of the database's first
/// sector (its commit slots) and of the log's header and last record; every
/// 31st byte of the log's other records, every 127th of the rest of the
/// database, and a few of the zeros past the log's end.
fn plan(dir: &Path) -> Vec<(PathBuf, Vec<u64>)> {
    files_under(dir)
        .unwrap()
        .into_iter()
        .map(|file| {
            let bytes = std::fs::read(dir.join(&file)).unwrap();
            let len = bytes.len() as u64;
            let positions = if file.ends_with(WAL_FILE_NAME) {
                let records = wal_records(&bytes);
                let end = records.last().map_or(64, |r| r.end);
                let mut dense: Vec<Range<u64>> = records.last().cloned().into_iter().collect();
                dense.push(0..64);
                let mut positions = flip_positions(end, &dense, 31, len);
                positions.extend(
                    flip_positions(len, std::slice::from_ref(&(end..end + 16)), 16381, len)
                        .into_iter()
                        .filter(|&p| p >= end),
                );
                positions
            } else if file.extension().is_some_and(|e| e == "snap") {
                flip_positions(len, &[], 1, len)
            } else {
                flip_positions(len, std::slice::from_ref(&(0..512)), 127, len)
            };
            eprintln!("{}: {len} bytes, {} flips", file.display(), positions.len());
            (file, positions)
        })
        .collect()
}

fn run_flips(dir: &Path, scratch: &Path, acks: &[MemberAck], exact: bool) {
    // Opening writes (it replays the log and starts a new one): check a copy.
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
        let stores = open_members(dir.clone()).await.unwrap();
        write_members(&stores, Some(WRITES), WORK, &|member, event| event.apply(&mut acks.lock().unwrap()[member]))
            .await
            .unwrap();
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

/// One write per member, one after the other (so each is a record of its
/// own), at the stored term; returns the stores so that they stay open.
async fn one_write_each(dir: PathBuf) -> Result<Box<dyn std::any::Any>, StorageError> {
    let stores = open_members(dir).await?;
    for (member, (log, _)) in stores.iter().enumerate() {
        let state = log.state().await?;
        let (last, hs) = (state.last_index.0, state.hard_state);
        let entries = member_entries(member, last + 1, last + TAIL_ENTRIES, hs.term, WORK.payload);
        let hard_state = HardState { commit: LogIndex(last + TAIL_ENTRIES), ..hs };
        log.write(LogWrite { entries, hard_state: Some(hard_state), truncate_after: None }).await?;
    }
    Ok(Box::new(stores))
}

#[test]
fn a_torn_tail_after_kill_9_is_dropped_and_everything_acknowledged_is_there() {
    const NAME: &str = "a_torn_tail_after_kill_9_is_dropped_and_everything_acknowledged_is_there";
    let scratch = scratch();
    let dir = scratch.path().join("store");
    // A first run killed in the middle of writing; a second one that
    // replays its log, writes once to each member and is killed while idle.
    let mut acks = kill_members_child(NAME, &dir, 600, WORK, &opener);
    kill_after(NAME, "tail", &dir, &|dir| Box::pin(one_write_each(dir)));

    // What the second run left, whole.
    let pristine = scratch.path().join("pristine");
    copy_dir(&dir, &pristine).unwrap();
    let last: Vec<u64> = runtime().block_on(async {
        let stores = open_members(pristine.clone()).await.unwrap();
        let mut last = Vec::new();
        for (log, _) in &stores {
            last.push(log.state().await.unwrap().last_index.0);
        }
        last
    });
    for (ack, last) in acks.iter_mut().zip(&last) {
        assert!(*last >= ack.last + TAIL_ENTRIES, "the second run's writes are there");
        ack.last = *last;
    }
    // The last record of the log is the last member's write: tear it.
    let wal = std::fs::read(dir.join(WAL_FILE_NAME)).unwrap();
    let tail = wal_records(&wal).last().cloned().expect("the second run's records");
    let (start, end) = (tail.start as usize, tail.end as usize);
    let sector = ((end - 1) / 512 * 512).max(start + 16);
    let tears: Vec<Tear> = vec![
        ("cut inside its header", Box::new(move |b: &mut Vec<u8>| b.truncate(start + 8))),
        ("cut inside its payload", Box::new(move |b: &mut Vec<u8>| b.truncate(start + 40))),
        ("cut before its last byte", Box::new(move |b: &mut Vec<u8>| b.truncate(end - 1))),
        ("its last sector zeroed", Box::new(move |b: &mut Vec<u8>| b[sector..end].fill(0))),
        ("its payload zeroed", Box::new(move |b: &mut Vec<u8>| b[start + 16..end].fill(0))),
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
        std::fs::write(copy.join(WAL_FILE_NAME), &bytes).unwrap();
        runtime().block_on(async {
            let stores = open_members(copy.clone()).await.unwrap_or_else(|e| panic!("{what}: {e}"));
            if let Err(e) = verify_members(&stores, &expected, false, WORK).await {
                panic!("{what}: {e:?}");
            }
            let state = stores[members - 1].0.state().await.unwrap();
            assert_eq!(state.last_index.0, expected[members - 1].last, "{what}: the torn write is dropped");
        });
    }
}
