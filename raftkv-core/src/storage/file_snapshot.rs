//! [`FileSnapshotStore`]: snapshots as files in a directory, shared by the
//! durable backends.
//!
//! Layout: `snapshot-<index>-<term>.snap` for the current snapshot,
//! `CURRENT` naming it, and `*.tmp` files for snapshots being written
//! (removed when the store opens).
//! File format: `RKVSNAP1 | index u64 | term u64 | data … | data_len u64 |
//! crc32c(data) u32 | RKVEND01` (integers little-endian). `finish` writes the
//! trailer, fsyncs the file, renames it into place, fsyncs the directory,
//! records it in `CURRENT` (written aside, fsynced, renamed, directory
//! fsynced) and only then removes older snapshots, so a crash leaves either
//! the old or the new one, and `CURRENT` names one that exists.
//!
//! Damage is reported naming the file: a bad magic, header (index and term
//! must match the file name) or trailer (its data length must match the
//! file's) when the snapshot is opened, a checksum mismatch in the data when
//! it has been read to the end.
//!
//! `CURRENT` (`RKVCUR01 | has snapshot u8 | index u64 | term u64 |
//! crc32c u32`, written when the directory is first opened and at every
//! finished snapshot) is what tells a deleted snapshot from one never
//! written: opening fails, naming the missing file, when `CURRENT` names a
//! snapshot that is gone and nothing newer replaced it; and
//! [`FileSnapshotStore::check_covers`] lets a log store refuse a log purged
//! past every snapshot the directory holds. A directory written by an
//! older version, without `CURRENT`, is read as before and gets one.
//!
//! Blocking file work runs on tokio's blocking pool (which also keeps a
//! paused test clock from advancing while a disk operation is in progress).

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};

use super::{SnapshotReader, SnapshotStore, SnapshotWriter, StorageError};
use crate::raft::SnapshotMeta;
use crate::types::{LogIndex, Term};

const MAGIC: &[u8; 8] = b"RKVSNAP1";
const END: &[u8; 8] = b"RKVEND01";
const HEADER: u64 = 24;
const TRAILER: u64 = 20;

/// Name of the file recording the latest finished snapshot.
const CURRENT_FILE_NAME: &str = "CURRENT";
const CURRENT_MAGIC: &[u8; 8] = b"RKVCUR01";
const CURRENT_LEN: usize = 29;

/// What `CURRENT` records: the latest finished snapshot, if one ever finished.
fn encode_current(latest: Option<SnapshotMeta>) -> [u8; CURRENT_LEN] {
    let mut out = [0u8; CURRENT_LEN];
    out[..8].copy_from_slice(CURRENT_MAGIC);
    if let Some(meta) = latest {
        out[8] = 1;
        out[9..17].copy_from_slice(&meta.last_index.0.to_le_bytes());
        out[17..25].copy_from_slice(&meta.last_term.0.to_le_bytes());
    }
    let crc = crate::storage::codec::crc32c(&out[..25]);
    out[25..].copy_from_slice(&crc.to_le_bytes());
    out
}

fn decode_current(path: &Path, bytes: &[u8]) -> Result<Option<SnapshotMeta>, StorageError> {
    if bytes.len() != CURRENT_LEN || &bytes[..8] != CURRENT_MAGIC {
        return Err(corrupt(path, format!("not a snapshot record ({} bytes, or a bad magic)", bytes.len())));
    }
    let stored = u32::from_le_bytes(bytes[25..29].try_into().unwrap_or_default());
    let computed = crate::storage::codec::crc32c(&bytes[..25]);
    if stored != computed {
        return Err(corrupt(path, format!("checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")));
    }
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
    match bytes[8] {
        0 if bytes[9..25].iter().all(|&b| b == 0) => Ok(None),
        1 => Ok(Some(SnapshotMeta { last_index: LogIndex(u64_at(9)), last_term: Term(u64_at(17)) })),
        _ => Err(corrupt(path, "damaged snapshot record")),
    }
}

/// Records `latest` in `dir/CURRENT`: written aside, synced, renamed into
/// place, directory synced.
fn write_current(dir: &Path, latest: Option<SnapshotMeta>, nonce: u64) -> Result<(), StorageError> {
    let tmp = dir.join(format!("{CURRENT_FILE_NAME}.{nonce}.tmp"));
    let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(|e| io_err(&tmp, e))?;
    file.write_all(&encode_current(latest)).map_err(|e| io_err(&tmp, e))?;
    file.sync_all().map_err(|e| io_err(&tmp, e))?;
    drop(file);
    let path = dir.join(CURRENT_FILE_NAME);
    fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
    sync_dir(dir)
}

/// What `CURRENT` said when the store was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Recorded {
    /// No snapshot ever finished in this directory.
    Never,
    /// A snapshot finished here (`CURRENT` named one that exists, or a newer one).
    Finished,
    /// There was no `CURRENT` (a new directory, one written by an older
    /// version, or one whose files were deleted).
    Unknown,
}

fn io_err(path: &Path, source: std::io::Error) -> StorageError {
    StorageError::Io { location: path.display().to_string(), source }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> StorageError {
    StorageError::Corrupt { location: path.display().to_string(), reason: reason.into() }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StorageError::Backend(format!("blocking task failed: {e}")))?
}

fn file_name(meta: SnapshotMeta) -> String {
    format!("snapshot-{:020}-{:020}.snap", meta.last_index.0, meta.last_term.0)
}

fn parse_name(name: &str) -> Option<SnapshotMeta> {
    let rest = name.strip_prefix("snapshot-")?.strip_suffix(".snap")?;
    let (index, term) = rest.split_once('-')?;
    Some(SnapshotMeta { last_index: LogIndex(index.parse().ok()?), last_term: Term(term.parse().ok()?) })
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_err(dir, e))
}

/// Finished snapshots in `dir`, oldest first.
fn list(dir: &Path) -> Result<Vec<(SnapshotMeta, PathBuf)>, StorageError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let name = entry.file_name();
        if let Some(meta) = name.to_str().and_then(parse_name) {
            out.push((meta, entry.path()));
        }
    }
    out.sort_by_key(|(m, _)| (m.last_index, m.last_term));
    Ok(out)
}

/// Check header and trailer of a snapshot file; returns its data length.
fn validate(path: &Path, meta: SnapshotMeta) -> Result<(File, u64, u32), StorageError> {
    let mut file = File::open(path).map_err(|e| io_err(path, e))?;
    let len = file.metadata().map_err(|e| io_err(path, e))?.len();
    if len < HEADER + TRAILER {
        return Err(corrupt(path, format!("snapshot file is truncated ({len} bytes)")));
    }
    let mut header = [0u8; HEADER as usize];
    file.read_exact(&mut header).map_err(|e| io_err(path, e))?;
    if &header[..8] != MAGIC {
        return Err(corrupt(path, "not a RaftKV snapshot (bad magic)"));
    }
    let index = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
    let term = u64::from_le_bytes(header[16..24].try_into().unwrap_or_default());
    if index != meta.last_index.0 || term != meta.last_term.0 {
        return Err(corrupt(path, format!("header says index {index} term {term}, file name disagrees")));
    }
    let mut trailer = [0u8; TRAILER as usize];
    file.seek(SeekFrom::End(-(TRAILER as i64))).map_err(|e| io_err(path, e))?;
    file.read_exact(&mut trailer).map_err(|e| io_err(path, e))?;
    if &trailer[12..] != END {
        return Err(corrupt(path, "snapshot file is truncated (missing trailer)"));
    }
    let data_len = u64::from_le_bytes(trailer[..8].try_into().unwrap_or_default());
    if data_len != len - HEADER - TRAILER {
        return Err(corrupt(
            path,
            format!("trailer records {data_len} data bytes but the file holds {}", len - HEADER - TRAILER),
        ));
    }
    let crc = u32::from_le_bytes(trailer[8..12].try_into().unwrap_or_default());
    file.seek(SeekFrom::Start(HEADER)).map_err(|e| io_err(path, e))?;
    Ok((file, data_len, crc))
}

/// Snapshots stored as files in one directory.
#[derive(Clone, Debug)]
pub struct FileSnapshotStore {
    dir: Arc<PathBuf>,
    nonce: Arc<AtomicU64>,
    /// What `CURRENT` said at open.
    recorded: Recorded,
    /// Held while a snapshot is made current, so that `CURRENT` follows the files.
    finishing: Arc<std::sync::Mutex<()>>,
}

impl FileSnapshotStore {
    /// Name of the file, in the snapshot directory, that records the latest
    /// finished snapshot (see the module docs).
    pub const CURRENT_FILE_NAME: &'static str = CURRENT_FILE_NAME;

    /// Open (creating it if needed) the snapshot directory `dir`, removing
    /// unfinished snapshots and checking the current one's header and
    /// trailer, and that the snapshot `CURRENT` names is there.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] naming the damaged snapshot or record, or
    /// the snapshot file that is missing; [`StorageError::Io`] naming the
    /// path that could not be read or written.
    pub async fn open(dir: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let dir: PathBuf = dir.into();
        let d = dir.clone();
        let recorded = blocking(move || {
            let existed = d.is_dir();
            fs::create_dir_all(&d).map_err(|e| io_err(&d, e))?;
            if !existed {
                // Make the new directory's entry durable in its parent.
                if let Some(parent) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
                    sync_dir(parent)?;
                }
            }
            for entry in fs::read_dir(&d).map_err(|e| io_err(&d, e))? {
                let entry = entry.map_err(|e| io_err(&d, e))?;
                if entry.file_name().to_str().is_some_and(|n| n.ends_with(".tmp")) {
                    fs::remove_file(entry.path()).map_err(|e| io_err(&entry.path(), e))?;
                }
            }
            let latest = list(&d)?.pop();
            if let Some((meta, path)) = &latest {
                validate(path, *meta)?;
            }
            let current = d.join(CURRENT_FILE_NAME);
            let recorded = match fs::read(&current) {
                Ok(bytes) => match decode_current(&current, &bytes)? {
                    None if latest.is_none() => Recorded::Never,
                    None => Recorded::Finished, // a crash before the first finish recorded itself
                    Some(named) => {
                        let named_path = d.join(file_name(named));
                        match &latest {
                            Some((meta, _)) if *meta == named => {}
                            Some((meta, _)) if meta.last_index > named.last_index => {
                                // A crash between a newer snapshot's rename and its record.
                                if !named_path.exists() {
                                    tracing::warn!(missing = %named_path.display(), "snapshot named by CURRENT is gone; a newer one replaces it");
                                }
                            }
                            _ => {
                                return Err(corrupt(
                                    &named_path,
                                    format!(
                                        "snapshot file is missing: {} records it as the latest finished snapshot \
                                         (deleted, or the directory restored from an older copy?)",
                                        current.display()
                                    ),
                                ))
                            }
                        }
                        Recorded::Finished
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    write_current(&d, latest.as_ref().map(|(m, _)| *m), 0)?;
                    Recorded::Unknown
                }
                Err(e) => return Err(io_err(&current, e)),
            };
            Ok(recorded)
        })
        .await?;
        Ok(Self {
            dir: Arc::new(dir),
            nonce: Arc::new(AtomicU64::new(1)),
            recorded,
            finishing: Arc::new(std::sync::Mutex::new(())),
        })
    }

    /// Fails, naming the directory, if a log purged through `purged` may
    /// have lost the snapshot that covered it: the directory had no
    /// `CURRENT` record when the store opened (it was deleted or emptied, or
    /// written by an older version) and holds no snapshot reaching
    /// `purged`. A Raft member purges its log only once a snapshot covering
    /// it is durable, and a snapshot file deleted while `CURRENT` names it
    /// already fails [`FileSnapshotStore::open`]; a directory with a
    /// `CURRENT` record is trusted otherwise (the log store contract allows
    /// purging past the latest snapshot).
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] naming the directory.
    pub async fn check_covers(&self, purged: LogIndex) -> Result<(), StorageError> {
        if purged == LogIndex(0) || self.recorded != Recorded::Unknown {
            return Ok(());
        }
        let dir = self.dir.clone();
        blocking(move || {
            let covered = list(&dir)?.pop().map_or(LogIndex(0), |(meta, _)| meta.last_index);
            if covered >= purged {
                return Ok(());
            }
            Err(corrupt(
                &dir,
                format!(
                    "the log is purged through {purged} but the latest snapshot here ends at {covered}, and the \
                     directory had no {CURRENT_FILE_NAME} record: its snapshot was deleted (with the record, or the \
                     whole directory)?"
                ),
            ))
        })
        .await
    }

    /// The directory holding the snapshots.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[async_trait]
impl SnapshotStore for FileSnapshotStore {
    async fn begin(&self, meta: SnapshotMeta) -> Result<Box<dyn SnapshotWriter>, StorageError> {
        let nonce = self.nonce.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!("snapshot-{}-{}.{nonce}.tmp", meta.last_index, meta.last_term));
        let path = tmp.clone();
        let file = blocking(move || {
            let file = OpenOptions::new().write(true).create_new(true).open(&path).map_err(|e| io_err(&path, e))?;
            let mut w = BufWriter::with_capacity(256 << 10, file);
            w.write_all(MAGIC).map_err(|e| io_err(&path, e))?;
            w.write_all(&meta.last_index.0.to_le_bytes()).map_err(|e| io_err(&path, e))?;
            w.write_all(&meta.last_term.0.to_le_bytes()).map_err(|e| io_err(&path, e))?;
            Ok(w)
        })
        .await?;
        Ok(Box::new(FileSnapshotWriter {
            dir: self.dir.clone(),
            meta,
            tmp,
            file: Some(file),
            written: 0,
            crc: !0,
            nonce: self.nonce.clone(),
            finishing: self.finishing.clone(),
        }))
    }

    async fn open_latest(&self) -> Result<Option<(SnapshotMeta, Box<dyn SnapshotReader>)>, StorageError> {
        let dir = self.dir.clone();
        blocking(move || {
            let Some((meta, path)) = list(&dir)?.pop() else { return Ok(None) };
            let (file, remaining, crc) = validate(&path, meta)?;
            let reader: Box<dyn SnapshotReader> =
                Box::new(FileSnapshotReader { path, file: Some(file), remaining, expected_crc: crc, crc: !0 });
            Ok(Some((meta, reader)))
        })
        .await
    }

    async fn latest(&self) -> Result<Option<(SnapshotMeta, u64)>, StorageError> {
        let dir = self.dir.clone();
        blocking(move || {
            let Some((meta, path)) = list(&dir)?.pop() else { return Ok(None) };
            let len = fs::metadata(&path).map_err(|e| io_err(&path, e))?.len();
            Ok(Some((meta, len.saturating_sub(HEADER + TRAILER))))
        })
        .await
    }
}

fn crc_update(crc: u32, data: &[u8]) -> u32 {
    // The running state is the inverted checksum of what came so far.
    !crc32c::crc32c_append(!crc, data)
}

struct FileSnapshotWriter {
    dir: Arc<PathBuf>,
    meta: SnapshotMeta,
    tmp: PathBuf,
    file: Option<BufWriter<File>>,
    written: u64,
    crc: u32,
    nonce: Arc<AtomicU64>,
    finishing: Arc<std::sync::Mutex<()>>,
}

#[async_trait]
impl SnapshotWriter for FileSnapshotWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        let Some(mut file) = self.file.take() else {
            return Err(StorageError::SnapshotWriterClosed(self.meta.last_index));
        };
        let path = self.tmp.clone();
        self.crc = crc_update(self.crc, &chunk);
        self.written += chunk.len() as u64;
        let file = blocking(move || {
            file.write_all(&chunk).map_err(|e| io_err(&path, e))?;
            Ok(file)
        })
        .await?;
        self.file = Some(file);
        Ok(())
    }

    fn written(&self) -> u64 {
        self.written
    }

    async fn finish(mut self: Box<Self>) -> Result<bool, StorageError> {
        let Some(mut file) = self.file.take() else {
            return Err(StorageError::SnapshotWriterClosed(self.meta.last_index));
        };
        let (dir, tmp, meta, written, crc) = (self.dir.clone(), self.tmp.clone(), self.meta, self.written, !self.crc);
        let (nonce, finishing) = (self.nonce.fetch_add(1, Ordering::Relaxed), self.finishing.clone());
        blocking(move || {
            let _finishing = finishing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let newer = list(&dir)?.into_iter().any(|(m, _)| m.last_index > meta.last_index);
            if newer {
                drop(file);
                fs::remove_file(&tmp).map_err(|e| io_err(&tmp, e))?;
                return Ok(false);
            }
            file.write_all(&written.to_le_bytes()).map_err(|e| io_err(&tmp, e))?;
            file.write_all(&crc.to_le_bytes()).map_err(|e| io_err(&tmp, e))?;
            file.write_all(END).map_err(|e| io_err(&tmp, e))?;
            let file = file.into_inner().map_err(|e| io_err(&tmp, e.into_error()))?;
            file.sync_all().map_err(|e| io_err(&tmp, e))?;
            let final_path = dir.join(file_name(meta));
            fs::rename(&tmp, &final_path).map_err(|e| io_err(&final_path, e))?;
            sync_dir(&dir)?;
            // Older snapshots go only once CURRENT names the new one.
            write_current(&dir, Some(meta), nonce)?;
            for (m, path) in list(&dir)? {
                if m != meta {
                    fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
                }
            }
            Ok(true)
        })
        .await
    }

    async fn abort(mut self: Box<Self>) -> Result<(), StorageError> {
        let file = self.file.take();
        let tmp = self.tmp.clone();
        blocking(move || {
            drop(file);
            match fs::remove_file(&tmp) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_err(&tmp, e)),
            }
        })
        .await
    }
}

impl Drop for FileSnapshotWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

struct FileSnapshotReader {
    path: PathBuf,
    file: Option<File>,
    remaining: u64,
    expected_crc: u32,
    crc: u32,
}

#[async_trait]
impl SnapshotReader for FileSnapshotReader {
    async fn next_chunk(&mut self, max_len: usize) -> Result<Option<Bytes>, StorageError> {
        if self.remaining == 0 {
            let computed = !self.crc;
            if self.file.take().is_some() && computed != self.expected_crc {
                return Err(corrupt(
                    &self.path,
                    format!("checksum mismatch (stored {:#010x}, computed {computed:#010x})", self.expected_crc),
                ));
            }
            return Ok(None);
        }
        let Some(mut file) = self.file.take() else { return Ok(None) };
        let want = usize::try_from(self.remaining).unwrap_or(usize::MAX).min(max_len.max(1));
        let path = self.path.clone();
        let (file, buf) = blocking(move || {
            let mut buf = BytesMut::zeroed(want);
            file.read_exact(&mut buf).map_err(|e| io_err(&path, e))?;
            Ok((file, buf.freeze()))
        })
        .await?;
        self.crc = crc_update(self.crc, &buf);
        self.remaining -= buf.len() as u64;
        self.file = Some(file);
        Ok(Some(buf))
    }
}
