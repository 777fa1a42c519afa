//! The write-ahead log in front of the database (`raftkv.wal`).
//!
//! A redb commit that is made durable writes and syncs several B-tree pages
//! at scattered offsets; an append to one file plus one `fdatasync` is about
//! three times cheaper. So each group commit is made durable here — one
//! record holding every mutation of the batch ([`body`]) — and applied to the
//! database in a non-durable redb commit (visible to readers at once,
//! persisted later). Once the log holds [`WAL_CHECKPOINT_BYTES`], a durable
//! redb commit persists everything applied so far (a **checkpoint**) and a
//! new **generation** of the log starts at the beginning of the file, which
//! keeps its size (overwriting allocated blocks needs no metadata update in
//! the next syncs).
//!
//! Every batch has a number; the database records the last one it holds
//! ([`state`]), so reopening replays exactly the batches after the last
//! durable commit, in order, through the writer's validation. Each
//! generation has a random **epoch**, stored durably by the checkpoint that
//! starts it together with the previous one, and written in the file header
//! ([`record`] has the byte layout).
//!
//! # Damage is never mistaken for the end of the log
//!
//! The writer keeps the bytes past the last record zero on disk before it
//! writes there: it zeroes the file a chunk ((a quarter of the checkpoint size, at most 1 MiB)) ahead of the
//! records and syncs the zeros before the first record lands in them. So a
//! crash in the middle of an append (never acknowledged) leaves zeros where
//! the write did not reach, and opening reads the log as follows:
//!
//! - The file header names the generation. That of the database's epoch is
//!   read; that of its previous epoch is a crash between a checkpoint's
//!   commit and the reset of the log (the database holds all of it); a
//!   header whose *previous* epoch is the database's means the database lost
//!   its last checkpoint (redb fell back to an older commit, say after a
//!   damaged commit slot), which is reported naming the database file. Any
//!   other header, or a damaged one, is reported naming the log.
//! - Records must number on from the generation's first batch. An all-zero
//!   record header ends the log; a header that is not zero and fails its
//!   checksum is damage. A record whose payload fails its checksum is torn
//!   (ended by the crash) only if it runs past the end of the file or one of
//!   its sector pieces is all zero; otherwise it is damage.
//! - After the end, no intact record of this generation may follow (a
//!   damaged record in the middle, whatever the damage): the rest of the
//!   file is scanned for one.
//!
//! Damage fails the open with [`StorageError::Corrupt`] naming the file and
//! the byte offset. Every record read is verified, including those the
//! database already holds. Records are read whole at open; the log holds at
//! most [`WAL_CHECKPOINT_BYTES`] plus one batch.
//!
//! # A failed append changes nothing
//!
//! If writing or syncing a record fails, the bytes it may have left past the
//! end of the log are zeroed (and synced) before the next record is written
//! ([`Wal::clean`]), and [`Wal::discard_from`] takes back a record whose
//! batch could not be applied to the database. Either way the log reads as
//! if the failed attempt never happened, and the same batch can be appended
//! again.

mod body;
mod legacy;
mod record;
mod state;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use raftkv_core::storage::StorageError;
use raftkv_core::MemberId;

pub(crate) use body::encode_op;
pub(crate) use state::{Stored, WalState};

use crate::op::WriteOp;
use record::{FileHeader, Header, FIRST_RECORD, RECORD_HEADER_LEN};

/// Name of the write-ahead log inside the storage directory.
pub const WAL_FILE_NAME: &str = "raftkv.wal";

/// Default log size past which the next batch checkpoints (a durable redb
/// commit, then a new generation). A checkpoint stalls the writer while redb
/// writes and syncs what the batches since the last one changed: small ones
/// keep those stalls short (the tail latency of writes), at the price of
/// more of them.
pub(crate) const WAL_CHECKPOINT_BYTES: u64 = 4 << 20;

/// Bytes zeroed (and synced) at a time ahead of the records: a quarter of
/// the checkpoint size, between 64 KiB and 1 MiB.
fn zero_chunk(checkpoint_bytes: u64) -> u64 {
    (checkpoint_bytes / 4).clamp(64 << 10, 1 << 20)
}

/// A batch read back from the log: its number and mutations.
pub(crate) type Recorded = (u64, Vec<(MemberId, WriteOp)>);

/// Re-exports for the storage's open path.
pub(crate) mod stored {
    pub(crate) use super::state::{read, set_applied, set_applied_v1, upgrade, write};
}

fn io(path: &Path, what: &str) -> impl FnOnce(std::io::Error) -> StorageError {
    let location = format!("{} ({what})", path.display());
    move |source| StorageError::Io { location, source }
}

fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> StorageError {
    StorageError::Corrupt { location: format!("{} at byte {offset}", path.display()), reason: reason.into() }
}

/// The open write-ahead log.
pub(crate) struct Wal {
    file: File,
    path: PathBuf,
    /// End of the last record: where the next one goes.
    len: u64,
    /// Bytes in `len..dirty` may hold a failed attempt (to be zeroed).
    dirty: u64,
    /// Bytes in `dirty..zeroed` are zero on disk.
    zeroed: u64,
    /// Number of the next batch.
    pub(crate) next_seq: u64,
    /// This generation's epoch (mixed into every checksum).
    epoch: u64,
    /// Whether writes are synced ([`SyncMode::Always`](crate::SyncMode::Always)).
    sync: bool,
    /// Size past which the writer checkpoints.
    checkpoint_bytes: u64,
    /// Bytes zeroed at a time ahead of the records.
    zero_chunk: u64,
}

/// Make a new file's directory entry durable.
fn sync_parent(path: &Path) -> Result<(), StorageError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir, "sync directory"))
}

/// Opens (creating it) the log at `path` and reads it whole.
fn read_file(path: &Path) -> Result<(File, Vec<u8>), StorageError> {
    let existed = path.exists();
    let mut file =
        OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io(path, "open"))?;
    if !existed {
        sync_parent(path)?;
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io(path, "read"))?;
    Ok((file, bytes))
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The batches after `state.applied` in the log `bytes` (of file `path`,
/// in front of database `db_file`); see the module docs for the rules.
fn read_generation(bytes: &[u8], path: &Path, db_file: &Path, state: WalState) -> Result<Vec<Recorded>, StorageError> {
    let header = match FileHeader::decode(bytes) {
        Err(reason) => return Err(corrupt(path, 0, reason)),
        Ok(None) => {
            // A generation whose header never reached the disk has no records.
            check_nothing_follows(bytes, path, FIRST_RECORD, state.epoch, state.applied + 1)?;
            return Ok(Vec::new());
        }
        Ok(Some(header)) => header,
    };
    if header.epoch != state.epoch {
        if header.epoch == state.prev_epoch {
            // The database's last checkpoint committed before the log was reset: it holds all of it.
            return Ok(Vec::new());
        }
        if header.prev_epoch == state.epoch {
            return Err(StorageError::Corrupt {
                location: db_file.display().to_string(),
                reason: format!(
                    "the database is at generation {:#x} of its write-ahead log but {} already holds the next one \
                     ({:#x}): the database lost its last checkpoint (a damaged commit slot?)",
                    state.epoch,
                    path.display(),
                    header.epoch
                ),
            });
        }
        return Err(corrupt(
            path,
            0,
            format!(
                "the log is generation {:#x} (after {:#x}) but the database {} expects generation {:#x}: \
                 a log of another database?",
                header.epoch,
                header.prev_epoch,
                db_file.display(),
                state.epoch
            ),
        ));
    }
    if header.start_seq > state.applied + 1 {
        return Err(StorageError::Corrupt {
            location: db_file.display().to_string(),
            reason: format!(
                "the database holds batches through {} but its write-ahead log {} starts at batch {}: \
                 the batches in between are lost",
                state.applied,
                path.display(),
                header.start_seq
            ),
        });
    }
    let mut records = Vec::new();
    let mut at = FIRST_RECORD;
    let mut expected = header.start_seq;
    // The loop ends where the file ends (or inside a header cut short by a crash).
    while let Some(head) = bytes.get(to_usize(at)..to_usize(at + RECORD_HEADER_LEN)) {
        let (len, seq) = match record::header(head, state.epoch) {
            Header::Zero => break,
            Header::Invalid => return Err(corrupt(path, at, "damaged record header (checksum mismatch)")),
            Header::Valid { len, seq } => (len, seq),
        };
        if seq != expected {
            return Err(corrupt(path, at, format!("record of batch {seq} where batch {expected} should follow")));
        }
        let end = at + record::record_len(len);
        let Some(payload) = bytes.get(to_usize(at + RECORD_HEADER_LEN)..to_usize(end)) else {
            break; // runs past the end of the file: torn
        };
        let Some(body) = record::body(payload, state.epoch, seq, len) else {
            if record::has_zero_sector(bytes, at + RECORD_HEADER_LEN..end) {
                break; // a sector of it was never written: torn
            }
            return Err(corrupt(path, at, format!("damaged record of batch {seq} (checksum mismatch)")));
        };
        let ops = body::decode_body(&body).map_err(|why| corrupt(path, at, why))?;
        if seq > state.applied {
            records.push((seq, ops));
        }
        at = end;
        expected += 1;
    }
    check_nothing_follows(bytes, path, at, state.epoch, expected)?;
    Ok(records)
}

/// Fails if an intact record of generation `epoch`, of batch `expected` or
/// later, lies after `end`, where the log ended: the record at `end` was
/// damaged, not torn.
fn check_nothing_follows(bytes: &[u8], path: &Path, end: u64, epoch: u64, expected: u64) -> Result<(), StorageError> {
    let mut at = end.next_multiple_of(record::ALIGN).max(FIRST_RECORD);
    while let Some(head) = bytes.get(to_usize(at)..to_usize(at + RECORD_HEADER_LEN)) {
        if let Header::Valid { len, seq } = record::header(head, epoch) {
            let payload = bytes.get(to_usize(at + RECORD_HEADER_LEN)..to_usize(at + record::record_len(len)));
            if seq >= expected && payload.is_some_and(|p| record::body(p, epoch, seq, len).is_some()) {
                return Err(corrupt(
                    path,
                    end,
                    format!("the log ends here but the record of batch {seq} follows at byte {at}: damaged in between"),
                ));
            }
        }
        at += record::ALIGN;
    }
    Ok(())
}

impl Wal {
    /// Opens (creating it) the log at `path`, in front of the database
    /// `db_file` whose place in it is `state`, and reads back the batches
    /// the database does not hold. The caller applies them and then starts
    /// a new generation with [`Wal::reset`].
    pub(crate) fn open(
        path: &Path,
        db_file: &Path,
        state: WalState,
        sync: bool,
        checkpoint_bytes: u64,
    ) -> Result<(Self, Vec<Recorded>), StorageError> {
        let (file, bytes) = read_file(path)?;
        let records = read_generation(&bytes, path, db_file, state)?;
        let wal = Self {
            file,
            path: path.to_path_buf(),
            len: FIRST_RECORD,
            dirty: bytes.len() as u64,
            zeroed: bytes.len() as u64,
            next_seq: records.last().map_or(state.applied + 1, |(seq, _)| seq + 1),
            epoch: state.epoch,
            sync,
            checkpoint_bytes,
            zero_chunk: zero_chunk(checkpoint_bytes),
        };
        Ok((wal, records))
    }

    /// Reads a format-1 log (older versions) at `path`: the batches after
    /// `applied` of generation `epoch`.
    pub(crate) fn read_format1(path: &Path, epoch: u64, applied: u64) -> Result<Vec<Recorded>, StorageError> {
        let (_, bytes) = read_file(path)?;
        legacy::read(&bytes, epoch, applied).map_err(|(at, why)| corrupt(path, at, why))
    }

    /// Zeroes the whole file at `path` and syncs it (the end of a format-1 log).
    pub(crate) fn erase_file(path: &Path) -> Result<(), StorageError> {
        let (mut file, bytes) = read_file(path)?;
        write_zeros(&mut file, path, 0, bytes.len() as u64)?;
        file.sync_data().map_err(io(path, "sync"))
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        self.file.seek(SeekFrom::Start(offset)).map_err(io(&self.path, "seek"))?;
        self.file.write_all(data).map_err(io(&self.path, "append"))
    }

    fn sync_data(&mut self) -> Result<(), StorageError> {
        if self.sync {
            self.file.sync_data().map_err(io(&self.path, "sync"))?;
        }
        Ok(())
    }

    /// Zeroes what a failed attempt may have left past the end of the log,
    /// and makes sure at least `need` bytes from it are zero on disk (a
    /// chunk more at a time), syncing before any record lands there.
    pub(crate) fn clean(&mut self, need: u64) -> Result<(), StorageError> {
        if self.dirty == self.len && self.zeroed >= self.len + need {
            return Ok(());
        }
        let from = self.len;
        // Zero a chunk ahead when the zeros run out, else just the failed attempt.
        let ahead = if self.zeroed >= self.len + need { self.len + need } else { self.len + need + self.zero_chunk };
        let to = ahead.max(self.dirty).next_multiple_of(4096);
        write_zeros(&mut self.file, &self.path, from, to)?;
        self.sync_data()?;
        // `dirty..zeroed` was zero already; `from..to` is now, with `to >= dirty`.
        self.zeroed = self.zeroed.max(to);
        self.dirty = from;
        Ok(())
    }

    /// Appends batch `seq` (its [`encode_op`]s in `body`); durable on
    /// return unless writes are not synced. On failure the log is as before
    /// (see [`Wal::clean`]) and the batch may be appended again.
    pub(crate) fn append(&mut self, seq: u64, body: &[u8]) -> Result<(), StorageError> {
        let record = record::encode(self.epoch, seq, body)
            .ok_or_else(|| StorageError::Backend(format!("a batch of {} bytes is too large to log", body.len())))?;
        let size = record.len() as u64;
        // One more record header's worth of zeros: where the next reader stops.
        self.clean(size + RECORD_HEADER_LEN)?;
        self.dirty = self.len + size;
        let at = self.len;
        self.write_at(at, &record)?;
        self.sync_data()?;
        self.len += size;
        self.dirty = self.len;
        Ok(())
    }

    /// Takes back the records from offset `from` (a value of [`Wal::len`]
    /// taken before them) whose batch `seq` on could not be applied: they are
    /// zeroed on disk before the next append (or by [`Wal::clean`]).
    pub(crate) fn discard_from(&mut self, from: u64, seq: u64) {
        self.dirty = self.dirty.max(self.len);
        self.len = from;
        self.next_seq = seq;
    }

    /// Where the next record goes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Whether the log has grown past its checkpoint size.
    pub(crate) fn wants_checkpoint(&self) -> bool {
        self.len >= self.checkpoint_bytes
    }

    /// Starts generation `epoch` (after `prev_epoch`), whose first batch is
    /// `start_seq`, at the beginning of the file, once the database holds
    /// everything durably and the new epochs with it. The file keeps its
    /// size: overwriting allocated blocks needs no metadata update in the
    /// next syncs, and the records left behind fail the new checksums.
    pub(crate) fn reset(&mut self, epoch: u64, prev_epoch: u64, start_seq: u64) -> Result<(), StorageError> {
        let header = FileHeader { epoch, prev_epoch, start_seq }.encode();
        self.dirty = self.dirty.max(self.len).max(self.zeroed);
        write_zeros(&mut self.file, &self.path, 0, self.zero_chunk)?;
        self.write_at(0, &header)?;
        self.sync_data()?;
        self.len = FIRST_RECORD;
        self.dirty = FIRST_RECORD;
        self.zeroed = self.zero_chunk;
        self.epoch = epoch;
        self.next_seq = start_seq;
        Ok(())
    }
}

/// Writes zeros over `from..to` of `file`.
fn write_zeros(file: &mut File, path: &Path, from: u64, to: u64) -> Result<(), StorageError> {
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    file.seek(SeekFrom::Start(from)).map_err(io(path, "seek"))?;
    let mut left = to.saturating_sub(from);
    while left > 0 {
        let n = to_usize(left.min(ZEROS.len() as u64));
        file.write_all(&ZEROS[..n]).map_err(io(path, "zero"))?;
        left -= n as u64;
    }
    Ok(())
}

/// A fresh epoch: random per process (std's hasher seeds) and time.
pub(crate) fn new_epoch() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn body() -> Vec<u8> {
        let mut body = Vec::new();
        for (log, op) in &body::tests::ops() {
            encode_op(&mut body, *log, op);
        }
        body
    }

    const DB: &str = "/db/raftkv.redb";

    fn state(applied: u64, epoch: u64, prev_epoch: u64) -> WalState {
        WalState { applied, epoch, prev_epoch }
    }

    /// A log of generation 7 (after 6) starting at batch 1, holding batches 1..=n.
    fn log_with(path: &Path, n: u64) -> Wal {
        let (mut wal, none) = Wal::open(path, Path::new(DB), state(0, 6, 5), true, WAL_CHECKPOINT_BYTES).unwrap();
        assert!(none.is_empty());
        wal.reset(7, 6, 1).unwrap();
        for seq in 1..=n {
            wal.append(seq, &body()).unwrap();
        }
        wal
    }

    fn seqs(records: &[Recorded]) -> Vec<u64> {
        records.iter().map(|r| r.0).collect()
    }

    fn open(path: &Path, applied: u64) -> Result<Vec<Recorded>, StorageError> {
        Wal::open(path, Path::new(DB), state(applied, 7, 6), true, WAL_CHECKPOINT_BYTES).map(|(_, records)| records)
    }

    fn damage(path: &Path, at: u64) {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[to_usize(at)] ^= 0x01;
        std::fs::write(path, &bytes).unwrap();
    }

    fn corrupt_at(result: Result<Vec<Recorded>, StorageError>, offset: u64) -> String {
        match result {
            Err(StorageError::Corrupt { location, reason }) => {
                assert!(location.ends_with(&format!("raftkv.wal at byte {offset}")), "{location}: {reason}");
                reason
            }
            other => panic!("expected Corrupt at byte {offset}, got {other:?}"),
        }
    }

    #[test]
    fn records_read_back_in_order_and_those_the_database_holds_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WAL_FILE_NAME);
        drop(log_with(&path, 3));
        let records = open(&path, 0).unwrap();
        assert_eq!(seqs(&records), vec![1, 2, 3]);
        assert_eq!(format!("{:?}", records[1].1), format!("{:?}", body::tests::ops()));
        assert_eq!(seqs(&open(&path, 2).unwrap()), vec![3]);
        assert!(open(&path, 3).unwrap().is_empty());
    }

    #[test]
    fn a_torn_last_record_is_dropped_and_appends_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WAL_FILE_NAME);
        let mut wal = log_with(&path, 1);
        let whole = wal.len();
        wal.append(2, &body()).unwrap();
        let end = wal.len();
        drop(wal);
        let pristine = std::fs::read(&path).unwrap();
        // Cut inside the second record's payload, or its last sector never written.
        for torn in [&pristine[..to_usize(whole + 40)], &pristine[..to_usize(whole + 10)]] {
            std::fs::write(&path, torn).unwrap();
            assert_eq!(seqs(&open(&path, 0).unwrap()), vec![1]);
        }
        let mut zeroed = pristine.clone();
        let last_sector = ((end - 1) / record::SECTOR * record::SECTOR).max(whole + RECORD_HEADER_LEN);
        zeroed[to_usize(last_sector)..to_usize(end)].fill(0);
        std::fs::write(&path, &zeroed).unwrap();
        assert_eq!(seqs(&open(&path, 0).unwrap()), vec![1]);

        // The next generation overwrites the torn record.
        let (mut wal, records) = Wal::open(&path, Path::new(DB), state(0, 7, 6), true, WAL_CHECKPOINT_BYTES).unwrap();
        assert_eq!(seqs(&records), vec![1]);
        wal.reset(8, 7, 2).unwrap();
        wal.append(2, &body()).unwrap();
        drop(wal);
        let records = Wal::open(&path, Path::new(DB), state(1, 8, 7), true, WAL_CHECKPOINT_BYTES).unwrap().1;
        assert_eq!(seqs(&records), vec![2]);
    }

    #[test]
    fn a_flipped_byte_in_any_record_is_damage_even_in_the_last_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WAL_FILE_NAME);
        let mut wal = log_with(&path, 2);
        let second = wal.len();
        wal.append(3, &body()).unwrap();
        let end = wal.len();
        drop(wal);
        let pristine = std::fs::read(&path).unwrap();
        for at in 0..end {
            std::fs::write(&path, &pristine).unwrap();
            damage(&path, at);
            let result = open(&path, 0);
            let offset = if at < FIRST_RECORD {
                0
            } else if at < second {
                // The record holding `at`: records 1 and 2 are the same size.
                FIRST_RECORD + (at - FIRST_RECORD) / ((second - FIRST_RECORD) / 2) * ((second - FIRST_RECORD) / 2)
            } else {
                second
            };
            corrupt_at(result, offset);
        }
        // Where the next header would be, the bytes must be zero; further on only intact records matter.
        std::fs::write(&path, &pristine).unwrap();
        damage(&path, end + 5);
        corrupt_at(open(&path, 0), end);
        std::fs::write(&path, &pristine).unwrap();
        damage(&path, end + 100);
        assert_eq!(seqs(&open(&path, 0).unwrap()), vec![1, 2, 3]);
    }

    #[test]
    fn a_zeroed_record_followed_by_intact_ones_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WAL_FILE_NAME);
        let mut wal = log_with(&path, 1);
        let second = wal.len();
        wal.append(2, &body()).unwrap();
        wal.append(3, &body()).unwrap();
        drop(wal);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[to_usize(second)..to_usize(second + 16)].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        let reason = corrupt_at(open(&path, 0), second);
        assert!(reason.contains("batch 3 follows"), "{reason}");
    }

    #[test]
    fn generations_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WAL_FILE_NAME);
        drop(log_with(&path, 2));
        let db = Path::new(DB);
        // The database committed the next generation (8 after 7) before the log was reset.
        assert!(Wal::open(&path, db, state(2, 8, 7), true, WAL_CHECKPOINT_BYTES).unwrap().1.is_empty());
        // The database fell back to the generation before (6): it lost its last checkpoint.
        let err = Wal::open(&path, db, state(0, 6, 5), true, WAL_CHECKPOINT_BYTES).err().unwrap();
        assert!(matches!(&err, StorageError::Corrupt { location, .. } if location == DB), "{err:?}");
        // A log of another database.
        let err = Wal::open(&path, db, state(0, 99, 98), true, WAL_CHECKPOINT_BYTES).err().unwrap();
        assert!(err.to_string().contains("raftkv.wal at byte 0"), "{err}");
        // A database older than the generation's first batch.
        let (mut wal, _) = Wal::open(&path, db, state(2, 7, 6), true, WAL_CHECKPOINT_BYTES).unwrap();
        wal.reset(9, 7, 10).unwrap();
        drop(wal);
        let err = Wal::open(&path, db, state(5, 9, 7), true, WAL_CHECKPOINT_BYTES).err().unwrap();
        assert!(err.to_string().contains("starts at batch 10"), "{err}");
    }

    #[test]
    fn a_failed_attempt_is_taken_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WAL_FILE_NAME);
        let mut wal = log_with(&path, 1);
        let before = wal.len();
        wal.append(2, &body()).unwrap();
        // The batch could not be applied: the record is taken back, then batch 2 is appended again.
        wal.discard_from(before, 2);
        assert!(open(&path, 0).is_ok());
        wal.clean(0).unwrap();
        assert_eq!(seqs(&open(&path, 0).unwrap()), vec![1]);
        wal.append(2, &body()).unwrap();
        wal.append(3, &body()).unwrap();
        drop(wal);
        assert_eq!(seqs(&open(&path, 0).unwrap()), vec![1, 2, 3]);
    }

    #[test]
    fn a_format_1_log_is_read_as_older_versions_did() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WAL_FILE_NAME);
        let mut bytes = Vec::new();
        for seq in 1..=3 {
            bytes.extend_from_slice(&legacy::encode(7, seq, &body()));
        }
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(seqs(&Wal::read_format1(&path, 7, 0).unwrap()), vec![1, 2, 3]);
        // As before: records the database holds are not read (they precede the first to replay).
        assert!(Wal::read_format1(&path, 7, 3).unwrap().is_empty());
        Wal::erase_file(&path).unwrap();
        assert!(Wal::read_format1(&path, 7, 0).unwrap().is_empty());
        // A format-1 log is no format-2 log.
        std::fs::write(&path, &bytes).unwrap();
        assert!(open(&path, 0).is_err());
    }
}
