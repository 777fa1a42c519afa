//! The write-ahead log in front of the database (`raftkv.wal`).
//!
//! A redb commit that is made durable writes and syncs several B-tree pages
//! at scattered offsets; an append to one file plus one `fdatasync` is about
//! three times cheaper. So each group commit is made durable here — one
//! record holding every mutation of the batch — and applied to the database
//! in a non-durable redb commit (visible to readers at once, persisted
//! later). Once the log holds [`WAL_CHECKPOINT_BYTES`], a durable redb commit
//! persists everything applied so far and the log starts over.
//!
//! Record: `body length u32 LE | crc32c(epoch ‖ seq ‖ body) u32 LE | seq u64 LE | body`.
//! Every batch records its `seq` in the database too (table `raft_wal`), so
//! reopening replays exactly the records after the last durable commit, in
//! order, through the same validation as the writer. The `epoch` is a random
//! number chosen at every checkpoint and stored, durably, in the same commit:
//! after a checkpoint the file is overwritten from its start (so that syncs of
//! allocated blocks need no metadata update), and a record left from an
//! earlier generation — or a frame planted inside an entry's payload, or a log
//! beside another database — fails its checksum. Reading stops at the first
//! record that is torn (a crash during an append: never acknowledged), fails
//! its checksum, or whose number does not follow on from the last durable
//! batch.
//!
//! Body: one mutation after another — `group u64 | node u64 | tag u8`, then
//! for a write (tag 1): `flags u8` (1: truncation, 2: hard state),
//! `[truncate_after u64]`, `[term u64, vote u64 (0: none), commit u64]`,
//! `count u32`, then per entry `index u64 | length u32 | entry record`
//! ([`codec::encode_entry`]); for a purge (tag 2): `index u64`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use raftkv_core::raft::HardState;
use raftkv_core::storage::{codec, LogWrite, StorageError};
use raftkv_core::{LogIndex, NodeId, Term};
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::error::ResultExt;
use crate::tables::LogId;
use crate::writer::WriteOp;

/// Name of the write-ahead log inside the storage directory.
pub const WAL_FILE_NAME: &str = "raftkv.wal";

/// Log size past which the next batch checkpoints (a durable redb commit,
/// then an empty log). A checkpoint stalls the writer while redb writes and
/// syncs what the batches since the last one changed: small ones keep those
/// stalls short (the tail latency of writes), at the price of more of them.
pub(crate) const WAL_CHECKPOINT_BYTES: u64 = 4 << 20;

/// The sequence number of the last batch applied to the database.
pub(crate) const WAL_STATE: TableDefinition<&str, u64> = TableDefinition::new("raft_wal");
const APPLIED_KEY: &str = "applied";
const EPOCH_KEY: &str = "epoch";

const HEADER: usize = 16;
const TAG_WRITE: u8 = 1;
const TAG_PURGE: u8 = 2;
const HAS_TRUNCATE: u8 = 1;
const HAS_HARD_STATE: u8 = 2;

/// The open write-ahead log.
pub(crate) struct Wal {
    file: File,
    path: PathBuf,
    len: u64,
    /// Sequence number of the next record.
    pub(crate) next_seq: u64,
    /// This generation's epoch (mixed into every checksum).
    epoch: u64,
    /// Size past which the writer checkpoints.
    pub(crate) checkpoint_bytes: u64,
}

/// A batch read back from the log: its sequence number and mutations.
pub(crate) type Recorded = (u64, Vec<(LogId, WriteOp)>);

fn io(path: &Path, what: &str) -> impl FnOnce(std::io::Error) -> StorageError {
    let location = format!("{} ({what})", path.display());
    move |source| StorageError::Io { location, source }
}

fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> StorageError {
    StorageError::Corrupt { location: format!("{} at byte {offset}", path.display()), reason: reason.into() }
}

impl Wal {
    /// Open (creating it) the log at `path` and read back the records of
    /// generation `epoch` that follow batch `applied`, the last one the
    /// database holds durably.
    pub(crate) fn open(path: &Path, epoch: u64, applied: u64) -> Result<(Self, Vec<Recorded>), StorageError> {
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io(path, "open"))?;
        if !existed {
            sync_parent(path)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io(path, "read"))?;
        let mut records: Vec<Recorded> = Vec::new();
        let mut at = 0usize;
        while let Some((seq, body, next)) = frame_at(&bytes, at, epoch) {
            let expected = records.last().map_or(applied + 1, |(last, _)| last + 1);
            if seq != expected {
                break;
            }
            let ops = decode_body(body).map_err(|why| corrupt(path, at as u64, why))?;
            records.push((seq, ops));
            at = next;
        }
        file.seek(SeekFrom::Start(at as u64)).map_err(io(path, "seek"))?;
        let next_seq = records.last().map_or(applied + 1, |(seq, _)| seq + 1);
        let checkpoint_bytes = WAL_CHECKPOINT_BYTES;
        Ok((Self { file, path: path.to_path_buf(), len: at as u64, next_seq, epoch, checkpoint_bytes }, records))
    }

    /// Append batch `seq` (its [`encode_op`]s in `body`); durable on return if `sync`.
    pub(crate) fn append(&mut self, seq: u64, body: &[u8], sync: bool) -> Result<(), StorageError> {
        let len = u32::try_from(body.len())
            .map_err(|_| StorageError::Backend(format!("a batch of {} bytes is too large to log", body.len())))?;
        let mut record = Vec::with_capacity(HEADER + body.len());
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&checksum(self.epoch, seq, body).to_le_bytes());
        record.extend_from_slice(&seq.to_le_bytes());
        record.extend_from_slice(body);
        self.file.write_all(&record).map_err(io(&self.path, "append"))?;
        if sync {
            self.file.sync_data().map_err(io(&self.path, "sync"))?;
        }
        self.len += record.len() as u64;
        Ok(())
    }

    /// Whether the log has grown past its checkpoint size.
    pub(crate) fn wants_checkpoint(&self) -> bool {
        self.len >= self.checkpoint_bytes
    }

    /// Bytes in the log.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Start generation `epoch` at the beginning of the file, once the
    /// database holds everything durably and `epoch` with it. The file keeps
    /// its size: overwriting allocated blocks needs no metadata update in the
    /// next syncs, and the records left behind fail their checksums.
    pub(crate) fn reset(&mut self, epoch: u64) -> Result<(), StorageError> {
        self.file.seek(SeekFrom::Start(0)).map_err(io(&self.path, "seek"))?;
        self.len = 0;
        self.epoch = epoch;
        Ok(())
    }
}

fn checksum(epoch: u64, seq: u64, body: &[u8]) -> u32 {
    let mut head = [0u8; 16];
    head[..8].copy_from_slice(&epoch.to_le_bytes());
    head[8..].copy_from_slice(&seq.to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&head), body)
}

/// Make a new file's directory entry durable.
fn sync_parent(path: &Path) -> Result<(), StorageError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir, "sync directory"))
}

/// A fresh epoch: random per process (std's hasher seeds) and time.
pub(crate) fn new_epoch() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish()
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The complete, intact record at `at`: (seq, body, offset after it).
fn frame_at(bytes: &[u8], at: usize, epoch: u64) -> Option<(u64, &[u8], usize)> {
    let len = u32_at(bytes, at)? as usize;
    let crc = u32_at(bytes, at + 4)?;
    let seq = u64_at(bytes, at + 8)?;
    let body = bytes.get(at + HEADER..at + HEADER + len)?;
    (checksum(epoch, seq, body) == crc).then_some((seq, body, at + HEADER + len))
}

/// Append `op` on `log` to a batch body.
pub(crate) fn encode_op(body: &mut Vec<u8>, log: LogId, op: &WriteOp) {
    body.extend_from_slice(&log.group.to_le_bytes());
    body.extend_from_slice(&log.node.to_le_bytes());
    match op {
        WriteOp::Write(w) => {
            body.push(TAG_WRITE);
            let flags = if w.truncate_after.is_some() { HAS_TRUNCATE } else { 0 }
                | if w.hard_state.is_some() { HAS_HARD_STATE } else { 0 };
            body.push(flags);
            if let Some(t) = w.truncate_after {
                body.extend_from_slice(&t.0.to_le_bytes());
            }
            if let Some(hs) = &w.hard_state {
                body.extend_from_slice(&hs.term.0.to_le_bytes());
                body.extend_from_slice(&hs.vote.map_or(0, |v| v.0).to_le_bytes());
                body.extend_from_slice(&hs.commit.0.to_le_bytes());
            }
            // A batch never holds 2^32 entries (the engine's appends are far smaller).
            body.extend_from_slice(&(w.entries.len() as u32).to_le_bytes());
            for entry in &w.entries {
                let record = codec::encode_entry(entry);
                body.extend_from_slice(&entry.index.0.to_le_bytes());
                body.extend_from_slice(&(record.len() as u32).to_le_bytes());
                body.extend_from_slice(&record);
            }
        }
        WriteOp::Purge(index) => {
            body.push(TAG_PURGE);
            body.extend_from_slice(&index.0.to_le_bytes());
        }
    }
}

/// A reader over a batch body that names what is missing.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let got = self.bytes.get(self.at..self.at + n).ok_or_else(|| format!("record ends inside {what}"))?;
        self.at += n;
        Ok(got)
    }

    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        u32_at(self.take(4, what)?, 0).ok_or_else(|| format!("record ends inside {what}"))
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        u64_at(self.take(8, what)?, 0).ok_or_else(|| format!("record ends inside {what}"))
    }
}

fn decode_body(bytes: &[u8]) -> Result<Vec<(LogId, WriteOp)>, String> {
    let mut c = Cursor { bytes, at: 0 };
    let mut ops = Vec::new();
    while c.at < bytes.len() {
        let log = LogId { group: c.u64("a group id")?, node: c.u64("a node id")? };
        let op = match c.u8("a mutation tag")? {
            TAG_WRITE => {
                let flags = c.u8("write flags")?;
                let truncate_after =
                    if flags & HAS_TRUNCATE != 0 { Some(LogIndex(c.u64("a truncation index")?)) } else { None };
                let hard_state = if flags & HAS_HARD_STATE != 0 {
                    let term = Term(c.u64("a hard state")?);
                    let vote = c.u64("a hard state")?;
                    let commit = LogIndex(c.u64("a hard state")?);
                    Some(HardState { term, vote: (vote != 0).then_some(NodeId(vote)), commit })
                } else {
                    None
                };
                let count = c.u32("an entry count")?;
                let mut entries = Vec::with_capacity(count.min(1 << 16) as usize);
                for _ in 0..count {
                    let index = LogIndex(c.u64("an entry index")?);
                    let len = c.u32("an entry length")? as usize;
                    let record = c.take(len, "an entry")?;
                    entries.push(codec::decode_entry(index, record).map_err(|e| format!("entry {}: {e}", index.0))?);
                }
                WriteOp::Write(LogWrite { truncate_after, entries, hard_state })
            }
            TAG_PURGE => WriteOp::Purge(LogIndex(c.u64("a purge index")?)),
            other => return Err(format!("unknown mutation tag {other}")),
        };
        ops.push((log, op));
    }
    Ok(ops)
}

/// The sequence number of the last batch the database holds, and the
/// epoch of the log's current generation.
pub(crate) fn wal_state(txn: &WriteTransaction, file: &Path) -> Result<(u64, u64), StorageError> {
    let table = txn.open_table(WAL_STATE).at(file, "open wal state table")?;
    let applied = table.get(APPLIED_KEY).at(file, "read wal state")?.map_or(0, |v| v.value());
    let epoch = table.get(EPOCH_KEY).at(file, "read wal state")?.map_or(0, |v| v.value());
    Ok((applied, epoch))
}

/// Record, in `txn`, the epoch of the log's next generation.
pub(crate) fn set_epoch(txn: &WriteTransaction, file: &Path, epoch: u64) -> Result<(), StorageError> {
    let mut table = txn.open_table(WAL_STATE).at(file, "open wal state table")?;
    table.insert(EPOCH_KEY, epoch).at(file, "write wal state")?;
    Ok(())
}

/// Record, in `txn`, that it holds batch `seq`.
pub(crate) fn set_applied_seq(txn: &WriteTransaction, file: &Path, seq: u64) -> Result<(), StorageError> {
    let mut table = txn.open_table(WAL_STATE).at(file, "open wal state table")?;
    table.insert(APPLIED_KEY, seq).at(file, "write wal state")?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use bytes::Bytes;
    use raftkv_core::raft::{Entry, EntryPayload};

    use super::*;

    fn ops() -> Vec<(LogId, WriteOp)> {
        let entry = |i| Entry { term: Term(3), index: LogIndex(i), payload: EntryPayload::Command(Bytes::from("cmd")) };
        vec![
            (
                LogId { group: 1, node: 2 },
                WriteOp::Write(LogWrite {
                    truncate_after: Some(LogIndex(4)),
                    entries: vec![entry(5), entry(6)],
                    hard_state: Some(HardState { term: Term(3), vote: Some(NodeId(2)), commit: LogIndex(4) }),
                }),
            ),
            (LogId { group: 7, node: 1 }, WriteOp::Purge(LogIndex(9))),
            (LogId { group: 7, node: 1 }, WriteOp::Write(LogWrite::default())),
        ]
    }

    fn body() -> Vec<u8> {
        let mut body = Vec::new();
        for (log, op) in &ops() {
            encode_op(&mut body, *log, op);
        }
        body
    }

    fn same(a: &[(LogId, WriteOp)], b: &[(LogId, WriteOp)]) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    #[test]
    fn records_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WAL_FILE_NAME);
        let (mut wal, none) = Wal::open(&path, 7, 0).unwrap();
        assert!(none.is_empty());
        wal.append(1, &body(), true).unwrap();
        wal.append(2, &body(), true).unwrap();
        drop(wal);
        let (wal, records) = Wal::open(&path, 7, 0).unwrap();
        assert_eq!(records.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 2]);
        assert!(same(&records[1].1, &ops()));
        assert_eq!(wal.next_seq, 3);
    }

    #[test]
    fn a_torn_tail_is_ignored_and_appends_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WAL_FILE_NAME);
        let (mut wal, _) = Wal::open(&path, 7, 0).unwrap();
        wal.append(1, &body(), true).unwrap();
        let whole = wal.len();
        wal.append(2, &body(), true).unwrap();
        drop(wal);
        // A crash in the middle of the second append.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(whole + 20).unwrap();
        drop(file);
        let (mut wal, records) = Wal::open(&path, 7, 0).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(wal.len(), whole);
        wal.append(2, &body(), true).unwrap();
        drop(wal);
        let (_, records) = Wal::open(&path, 7, 0).unwrap();
        assert_eq!(records.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn after_a_reset_older_records_are_not_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WAL_FILE_NAME);
        let (mut wal, _) = Wal::open(&path, 7, 0).unwrap();
        for seq in 1..=3 {
            wal.append(seq, &body(), true).unwrap();
        }
        wal.reset(9).unwrap();
        wal.append(4, &body(), true).unwrap();
        drop(wal);
        let (wal, records) = Wal::open(&path, 9, 3).unwrap();
        // Record 4 overwrote record 1; records 2 and 3 follow it in the file.
        assert_eq!(records.iter().map(|r| r.0).collect::<Vec<_>>(), vec![4]);
        assert_eq!(wal.next_seq, 5);
        // Under another epoch (another generation, another database) nothing is current.
        let (wal, records) = Wal::open(&path, 7, 0).unwrap();
        assert!(records.is_empty());
        assert_eq!(wal.next_seq, 1);
        // Nor are records that do not follow the last durable batch.
        let (_, records) = Wal::open(&path, 9, 1).unwrap();
        assert!(records.is_empty());
    }

    #[test]
    fn a_damaged_record_ends_the_log_and_a_bad_body_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WAL_FILE_NAME);
        let (mut wal, _) = Wal::open(&path, 7, 0).unwrap();
        wal.append(1, &body(), true).unwrap();
        drop(wal);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (_, records) = Wal::open(&path, 7, 0).unwrap();
        assert!(records.is_empty(), "a record whose checksum fails is not replayed");

        assert!(decode_body(&[1, 2, 3]).unwrap_err().contains("group id"));
        let mut bad = Vec::new();
        bad.extend_from_slice(&1u64.to_le_bytes());
        bad.extend_from_slice(&1u64.to_le_bytes());
        bad.push(9);
        assert!(decode_body(&bad).unwrap_err().contains("tag 9"));
    }
}
