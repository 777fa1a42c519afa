//! The group-commit writer: one task applies every log write of a database.
//!
//! It takes the first queued request, drains the others (up to
//! [`MAX_BATCH`]), applies them all in one redb write transaction on the
//! blocking pool, commits once (one fsync), and only then answers each
//! request. Each request is validated against its log's bounds as left by the
//! requests before it; an invalid one gets its error and changes nothing,
//! without failing the others.
//!
//! Durability comes from the write-ahead log ([`crate::wal`]): the batch's
//! mutations are appended there as one record and synced, and the redb
//! transaction is committed without a sync; every
//! [`WAL_CHECKPOINT_BYTES`](crate::wal::WAL_CHECKPOINT_BYTES) of log, a
//! durable redb commit persists it all and the log starts over.
//!
//! Appended entries go only to the shared journal (`raft_journal`, see
//! [`crate::journal`]) under a sequence number the writer owns, so that one
//! commit of appends to many logs dirties a few pages. Once the journal holds
//! [`JOURNAL_CHECKPOINT`] rows, the next batch first moves them into
//! `raft_log` in the same transaction. Truncations and purges remove entries
//! from both tables.
//!
//! # A failed batch changed nothing
//!
//! If a batch fails (a full disk, an I/O error), every request in it gets
//! the error and nothing of it stays: a record that did not reach the log
//! whole is zeroed before the next one, a record whose redb commit failed is
//! taken back ([`Wal::discard_from`]), and since redb refuses every
//! operation after an I/O failure, the writer then reopens the database
//! ([`DbSlot::reopen`]: redb recovers its last durable commit and the log
//! replays the acknowledged batches after it). Until a reopen succeeds,
//! each new batch tries it first and fails with its error. So once the
//! cause is gone, the same write submitted again succeeds, and nothing
//! acknowledged is lost or applied twice. A failed checkpoint does not fail
//! its batch, which is durable in the log; it reopens the database too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use raftkv_core::storage::{codec, LogBounds, LogPlan, StorageError};
use raftkv_core::MemberId;
use redb::{Database, Durability};
use tokio::sync::{mpsc, oneshot};

use crate::database::DbSlot;
use crate::error::{blocking, duplicate, ResultExt};
use crate::journal::{self, JournalTable, JOURNAL, JOURNAL_CHECKPOINT};
use crate::keys::{log_key, LogTable, MetaTable, ENTRY_KEY_BYTES, LOG, META};
use crate::op::WriteOp;
use crate::options::RedbOptions;
use crate::tables::{read_meta, write_meta};
use crate::wal::{self, stored, Stored, Wal, WalState};

/// Most requests applied in one transaction.
const MAX_BATCH: usize = 1024;
/// Yields spent gathering more requests into one commit while they keep arriving.
const GATHER_ROUNDS: usize = 4;

/// Bounds of every log opened through `RedbStorage::member`, as committed.
pub(crate) type BoundsMap = Arc<Mutex<HashMap<MemberId, LogBounds>>>;

/// A queued mutation and where to send its outcome.
#[derive(Debug)]
pub(crate) struct WriteRequest {
    pub log: MemberId,
    pub op: WriteOp,
    pub reply: oneshot::Sender<Result<(), StorageError>>,
}

/// What the writer needs to reopen the database.
struct Location {
    dir: PathBuf,
    file: Arc<PathBuf>,
    options: RedbOptions,
}

/// The writer task's state.
pub(crate) struct Writer {
    requests: mpsc::UnboundedReceiver<WriteRequest>,
    /// Weak, so that dropping the last store handle closes the database at once.
    db: Weak<DbSlot>,
    at: Arc<Location>,
    bounds: BoundsMap,
    commits: Arc<AtomicU64>,
    /// Sequence number of the next journal row; read from the journal's last
    /// key by the first batch (and after a reopen).
    next_seq: Option<u64>,
    /// The write-ahead log (used by one batch at a time, on the blocking pool).
    wal: Arc<Mutex<Wal>>,
    /// Set while the database must be reopened before the next batch.
    broken: bool,
}

/// What a successful batch did.
struct Applied {
    results: Vec<Result<(), StorageError>>,
    bounds: HashMap<MemberId, LogBounds>,
    committed: bool,
    /// The next journal sequence number once this batch is committed.
    next_seq: u64,
    /// The checkpoint after the batch failed: the database must be reopened.
    failed_checkpoint: Option<StorageError>,
}

/// Why a whole batch failed.
struct BatchFailure {
    error: StorageError,
    /// The database must be reopened (redb failed, or may have).
    reopen: bool,
}

impl From<StorageError> for BatchFailure {
    fn from(error: StorageError) -> Self {
        Self { error, reopen: true }
    }
}

/// The outcome of one batch, with the reopen that followed a failure.
struct Outcome {
    result: Result<Applied, BatchFailure>,
    /// Whether the database is open and healthy afterwards.
    healthy: bool,
}

impl Writer {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        requests: mpsc::UnboundedReceiver<WriteRequest>,
        db: Weak<DbSlot>,
        dir: PathBuf,
        file: Arc<PathBuf>,
        options: RedbOptions,
        bounds: BoundsMap,
        commits: Arc<AtomicU64>,
        wal: Wal,
    ) -> Self {
        let wal = Arc::new(Mutex::new(wal));
        let at = Arc::new(Location { dir, file, options });
        Self { requests, db, at, bounds, commits, next_seq: None, wal, broken: false }
    }

    /// Serves requests until every sender is gone.
    pub(crate) async fn run(mut self) {
        while let Some(first) = self.requests.recv().await {
            let mut batch = vec![first];
            // Gather: give writers woken by the previous commit a chance to
            // queue their next request, as long as new ones keep arriving.
            for _ in 0..GATHER_ROUNDS {
                tokio::task::yield_now().await;
                let before = batch.len();
                while batch.len() < MAX_BATCH {
                    match self.requests.try_recv() {
                        Ok(request) => batch.push(request),
                        Err(_) => break,
                    }
                }
                if batch.len() == before || batch.len() >= MAX_BATCH {
                    break;
                }
            }
            self.process(batch).await;
        }
    }

    async fn process(&mut self, batch: Vec<WriteRequest>) {
        // A caller that gave up on its request no longer expects it to apply.
        let batch: Vec<WriteRequest> = batch.into_iter().filter(|r| !r.reply.is_closed()).collect();
        if batch.is_empty() {
            return;
        }
        let Some(slot) = self.db.upgrade() else {
            for request in batch {
                let _ = request.reply.send(Err(StorageError::Closed));
            }
            return;
        };

        let mut ops = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for request in batch {
            ops.push((request.log, request.op));
            replies.push(request.reply);
        }
        let (at, bounds_map, broken) = (self.at.clone(), self.bounds.clone(), self.broken);
        let (next_seq, wal) = (if broken { None } else { self.next_seq }, self.wal.clone());
        let count = ops.len();
        let outcome = blocking(&self.at.file, "group commit", move || {
            let mut wal = wal.lock().unwrap_or_else(PoisonError::into_inner);
            if broken {
                // A failed write left the database closed: reopen it first.
                if let Err(error) = reopen(&slot, &at, &bounds_map, &mut wal) {
                    return Ok(Outcome { result: Err(BatchFailure { error, reopen: false }), healthy: false });
                }
            }
            let bounds: HashMap<MemberId, LogBounds> = {
                let all = bounds_map.lock().unwrap_or_else(PoisonError::into_inner);
                ops.iter().filter_map(|(log, _)| all.get(log).map(|b| (*log, *b))).collect()
            };
            let result = slot.get(&at.file).map_err(BatchFailure::from).and_then(|db| {
                // `db` is dropped when this returns, before any caller is answered.
                apply_batch(&db, &at.file, ops, bounds, next_seq, &mut wal)
            });
            let must_reopen = match &result {
                Ok(applied) => applied.failed_checkpoint.is_some(),
                Err(failure) => failure.reopen,
            };
            let healthy = !must_reopen || reopen(&slot, &at, &bounds_map, &mut wal).is_ok();
            Ok(Outcome { result, healthy })
        })
        .await
        .unwrap_or_else(|error| Outcome { result: Err(BatchFailure { error, reopen: true }), healthy: false });

        if !outcome.healthy || broken {
            self.next_seq = None;
        }
        self.broken = !outcome.healthy;
        match outcome.result {
            Ok(applied) => {
                if let Some(error) = &applied.failed_checkpoint {
                    tracing::error!(error = %error, reopened = outcome.healthy, "redb checkpoint failed");
                }
                if applied.committed {
                    if outcome.healthy && applied.failed_checkpoint.is_none() {
                        self.next_seq = Some(applied.next_seq);
                    }
                    self.commits.fetch_add(1, Ordering::Relaxed);
                    let mut all = self.bounds.lock().unwrap_or_else(PoisonError::into_inner);
                    all.extend(applied.bounds);
                }
                tracing::debug!(requests = count, committed = applied.committed, "redb group commit");
                for (reply, result) in replies.into_iter().zip(applied.results) {
                    let _ = reply.send(result);
                }
            }
            Err(failure) => {
                tracing::error!(
                    requests = count,
                    error = %failure.error,
                    reopened = outcome.healthy,
                    "redb group commit failed; the writes changed nothing and may be retried"
                );
                for reply in replies {
                    let _ = reply.send(Err(duplicate(&failure.error)));
                }
            }
        }
    }
}

/// Takes back what a failed batch may have left in the log and reopens the database.
fn reopen(slot: &DbSlot, at: &Location, bounds: &BoundsMap, wal: &mut Wal) -> Result<(), StorageError> {
    wal.clean(0)?;
    *wal = slot.reopen(&at.dir, &at.file, at.options, bounds)?;
    Ok(())
}

/// Applies `ops` in one write transaction, logs them in `wal` and commits
/// the transaction without a sync — unless no request changed anything.
/// Checkpoints once the log is large enough.
fn apply_batch(
    db: &Database,
    file: &Path,
    ops: Vec<(MemberId, WriteOp)>,
    mut bounds: HashMap<MemberId, LogBounds>,
    next_seq: Option<u64>,
    wal: &mut Wal,
) -> Result<Applied, BatchFailure> {
    let mut txn = db.begin_write().at(file, "begin write transaction")?;
    // The write-ahead log makes the batch durable.
    txn.set_durability(Durability::None).at(file, "set durability")?;
    // Discarded with the transaction if the batch turns out to change nothing.
    journal::checkpoint(&txn, file, JOURNAL_CHECKPOINT)?;
    let mut body = Vec::new();
    let (results, dirty, seq) = {
        let mut log_table = txn.open_table(LOG).at(file, "open log table")?;
        let mut meta_table = txn.open_table(META).at(file, "open meta table")?;
        let mut journal_table = txn.open_table(JOURNAL).at(file, "open journal table")?;
        let mut seq = match next_seq {
            Some(seq) => seq,
            None => journal::next_seq(&journal_table, file)?,
        };
        let mut tables = Tables { log: &mut log_table, meta: &mut meta_table, journal: &mut journal_table };
        let (results, dirty) = apply_ops(&mut tables, file, &mut bounds, ops, &mut seq, Some(&mut body))?;
        (results, dirty, seq)
    };
    if !dirty {
        txn.abort().at(file, "abort write transaction")?;
        return Ok(Applied { results, bounds, committed: false, next_seq: seq, failed_checkpoint: None });
    }
    let (wal_seq, before) = (wal.next_seq, wal.len());
    stored::set_applied(&txn, file, wal_seq)?;
    // A failed append leaves the log as it was; the transaction is dropped
    // (rolled back) and redb did no I/O for it: nothing to reopen.
    wal.append(wal_seq, &body).map_err(|error| BatchFailure { error, reopen: false })?;
    wal.next_seq += 1;
    if let Err(e) = txn.commit().at(file, "commit") {
        // Not applied: take the record back before the database is reopened.
        wal.discard_from(before, wal_seq);
        return Err(BatchFailure { error: e, reopen: true });
    }
    // The batch is durable in the log whatever happens now: a failed
    // checkpoint reopens the database, which replays it.
    let failed_checkpoint = if wal.wants_checkpoint() { checkpoint(db, file, wal).err() } else { None };
    Ok(Applied { results, bounds, committed: true, next_seq: seq, failed_checkpoint })
}

/// Persist everything committed so far (a durable redb commit, which also
/// stores the next generation's epoch), then start the log over.
pub(crate) fn checkpoint(db: &Database, file: &Path, wal: &mut Wal) -> Result<(), StorageError> {
    let txn = db.begin_write().at(file, "begin checkpoint")?;
    let Stored::Current(state) = stored::read(&txn, file)? else {
        return Err(StorageError::Backend(format!("{}: the write-ahead log was not upgraded", file.display())));
    };
    let epoch = wal::new_epoch();
    let start = wal.next_seq;
    stored::write(&txn, file, WalState { applied: start - 1, epoch, prev_epoch: state.epoch })?;
    txn.commit().at(file, "checkpoint commit")?;
    wal.reset(epoch, state.epoch, start)
}

/// Validates and applies each of `ops` in turn against `bounds` (updated as
/// they apply), appending each one that changes something to `body` if
/// given. Returns each op's outcome and whether any changed something.
pub(crate) fn apply_ops(
    tables: &mut Tables<'_, '_>,
    file: &Path,
    bounds: &mut HashMap<MemberId, LogBounds>,
    ops: Vec<(MemberId, WriteOp)>,
    seq: &mut u64,
    mut body: Option<&mut Vec<u8>>,
) -> Result<(Vec<Result<(), StorageError>>, bool), StorageError> {
    let mut results = Vec::with_capacity(ops.len());
    let mut dirty = false;
    for (log, op) in ops {
        let Some(current) = bounds.get_mut(&log) else {
            results.push(Err(StorageError::Backend(format!(
                "{}: log of group {} node {} was not opened with RedbStorage::member",
                file.display(),
                log.group,
                log.node
            ))));
            continue;
        };
        let planned = match &op {
            // A write that changes nothing (say, a truncation past the end) needs no commit.
            WriteOp::Write(write) => current.plan_write(write).map(|plan| {
                (plan.remove.is_some() || !write.entries.is_empty() || write.hard_state.is_some()).then_some(plan)
            }),
            WriteOp::Purge(index) => Ok(current.plan_purge(*index)),
        };
        match planned {
            Err(invalid) => results.push(Err(invalid)),
            Ok(None) => results.push(Ok(())),
            Ok(Some(plan)) => {
                if let Some(body) = body.as_deref_mut() {
                    wal::encode_op(body, log, &op);
                }
                apply(tables, file, log, plan, op, seq)?;
                *current = plan.bounds;
                dirty = true;
                results.push(Ok(()));
            }
        }
    }
    Ok((results, dirty))
}

/// The tables a batch writes, open in its transaction.
pub(crate) struct Tables<'a, 'txn> {
    pub(crate) log: &'a mut LogTable<'txn>,
    pub(crate) meta: &'a mut MetaTable<'txn>,
    pub(crate) journal: &'a mut JournalTable<'txn>,
}

/// Applies one validated request to the open tables; appended entries take
/// journal sequence numbers from `seq` on.
fn apply(
    tables: &mut Tables<'_, '_>,
    file: &Path,
    log: MemberId,
    plan: LogPlan,
    op: WriteOp,
    seq: &mut u64,
) -> Result<(), StorageError> {
    let mut meta = read_meta(tables.meta, file, log)?;
    if let Some((from, to)) = plan.remove {
        let mut removed = 0u64;
        tables
            .log
            .retain_in(log_key(log, from)..=log_key(log, to), |_, value| {
                removed += ENTRY_KEY_BYTES + value.len() as u64;
                false
            })
            .at(file, "remove log entries")?;
        removed += journal::remove(tables.journal, file, log, from, to)?;
        meta.log_bytes = meta.log_bytes.saturating_sub(removed);
    }
    match op {
        WriteOp::Write(write) => {
            // The appended indices were removed above or never stored: no row to replace.
            for entry in &write.entries {
                let row = journal::encode_row(log, entry.index.0, &codec::encode_entry(entry));
                meta.log_bytes += row.len() as u64;
                tables.journal.insert(*seq, row.as_slice()).at(file, "append log entry")?;
                *seq = seq.saturating_add(1);
            }
            if let Some(hard_state) = &write.hard_state {
                meta.hard_state = Some(codec::encode_hard_state(hard_state));
            }
        }
        WriteOp::Purge(_) => meta.purged = plan.bounds.purged,
    }
    write_meta(tables.meta, file, log, &meta)
}
