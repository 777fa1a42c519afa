//! The group-commit writer: one task applies every log write of a database.
//!
//! It takes the first queued request, drains the others (up to
//! [`MAX_BATCH`]), applies them all in one redb write transaction on the
//! blocking pool, commits once (one fsync), and only then answers each
//! request. Each request is validated against its log's bounds as left by the
//! requests before it; an invalid one gets its error and changes nothing,
//! without failing the others. A failed commit fails the whole batch and
//! poisons the writer: every later write fails until the database is reopened.
//!
//! Durability comes from the write-ahead log ([`crate::wal`]): the batch's
//! mutations are appended there as one record and synced, and the redb
//! transaction is committed without a sync; every
//! [`WAL_CHECKPOINT_BYTES`](crate::wal::WAL_CHECKPOINT_BYTES) of log, a durable redb commit persists it all and the log starts over.
//!
//! Appended entries go only to the shared journal (`raft_journal`, see
//! [`crate::journal`]) under a sequence number the writer owns, so that one
//! commit of appends to many logs dirties a few pages. Once the journal holds
//! [`JOURNAL_CHECKPOINT`] rows, the next batch first moves them into
//! `raft_log` in the same transaction. Truncations and purges remove entries
//! from both tables.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use raftkv_core::storage::codec;
use raftkv_core::storage::{LogWrite, StorageError};
use raftkv_core::LogIndex;
use redb::{Database, Durability};
use tokio::sync::{mpsc, oneshot};

use crate::bounds::{LogBounds, Plan};
use crate::error::{blocking, duplicate, ResultExt};
use crate::journal::{self, JournalTable, JOURNAL, JOURNAL_CHECKPOINT};
use crate::options::SyncMode;
use crate::tables::{read_meta, write_meta, LogId, LogTable, MetaTable, ENTRY_KEY_BYTES, LOG, META};
use crate::wal::{self, Wal};

/// Most requests applied in one transaction.
const MAX_BATCH: usize = 1024;
/// Yields spent gathering more requests into one commit while they keep arriving.
const GATHER_ROUNDS: usize = 4;

/// Bounds of every log opened through `RedbStorage::member`, as committed.
pub(crate) type BoundsMap = Arc<Mutex<HashMap<LogId, LogBounds>>>;

/// A mutation of one log.
#[derive(Debug)]
pub(crate) enum WriteOp {
    /// [`LogStore::write`](raftkv_core::storage::LogStore::write).
    Write(LogWrite),
    /// [`LogStore::purge_through`](raftkv_core::storage::LogStore::purge_through).
    Purge(LogIndex),
}

/// A queued mutation and where to send its outcome.
#[derive(Debug)]
pub(crate) struct WriteRequest {
    pub log: LogId,
    pub op: WriteOp,
    pub reply: oneshot::Sender<Result<(), StorageError>>,
}

/// The writer task's state.
pub(crate) struct Writer {
    requests: mpsc::UnboundedReceiver<WriteRequest>,
    /// Weak, so that dropping the last store handle closes the database at once.
    db: Weak<Database>,
    file: Arc<PathBuf>,
    sync: SyncMode,
    bounds: BoundsMap,
    commits: Arc<AtomicU64>,
    /// Why writes are refused, after a commit failed.
    poisoned: Option<String>,
    /// Sequence number of the next journal row; read from the journal's last
    /// key by the first batch.
    next_seq: Option<u64>,
    /// The write-ahead log (used by one batch at a time, on the blocking pool).
    wal: Arc<Mutex<Wal>>,
}

/// What a successful batch did.
struct Applied {
    results: Vec<Result<(), StorageError>>,
    bounds: HashMap<LogId, LogBounds>,
    committed: bool,
    /// The next journal sequence number once this batch is committed.
    next_seq: u64,
    /// The checkpoint after the batch failed: later writes are refused.
    failed_checkpoint: Option<StorageError>,
}

/// Why a whole batch failed.
struct BatchFailure {
    error: StorageError,
    /// The failure leaves the database in an unknown state (a failed commit).
    poison: bool,
}

impl From<StorageError> for BatchFailure {
    fn from(error: StorageError) -> Self {
        Self { error, poison: false }
    }
}

impl Writer {
    pub(crate) fn new(
        requests: mpsc::UnboundedReceiver<WriteRequest>,
        db: Weak<Database>,
        file: Arc<PathBuf>,
        sync: SyncMode,
        bounds: BoundsMap,
        commits: Arc<AtomicU64>,
        wal: Wal,
    ) -> Self {
        let wal = Arc::new(Mutex::new(wal));
        Self { requests, db, file, sync, bounds, commits, poisoned: None, next_seq: None, wal }
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
        if let Some(reason) = &self.poisoned {
            let message = format!("{}: writes refused: {reason}; reopen the database", self.file.display());
            for request in batch {
                let _ = request.reply.send(Err(StorageError::Backend(message.clone())));
            }
            return;
        }
        let Some(db) = self.db.upgrade() else {
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
        let bounds: HashMap<LogId, LogBounds> = {
            let all = self.bounds.lock().unwrap_or_else(PoisonError::into_inner);
            ops.iter().filter_map(|(log, _)| all.get(log).map(|b| (*log, *b))).collect()
        };
        let (file, sync, count, next_seq) = (self.file.clone(), self.sync, ops.len(), self.next_seq);
        let wal = self.wal.clone();
        let outcome = blocking(&self.file, "group commit", move || {
            // `db` is dropped when this returns, before any caller is answered.
            let mut wal = wal.lock().unwrap_or_else(PoisonError::into_inner);
            Ok(apply_batch(&db, &file, sync, ops, bounds, next_seq, &mut wal))
        })
        .await
        .unwrap_or_else(|error| Err(BatchFailure { error, poison: true }));

        match outcome {
            Ok(applied) => {
                if let Some(error) = &applied.failed_checkpoint {
                    tracing::error!(error = %error, "redb checkpoint failed; later writes are refused");
                    self.poisoned = Some(error.to_string());
                }
                if applied.committed {
                    self.next_seq = Some(applied.next_seq);
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
                tracing::error!(requests = count, error = %failure.error, poison = failure.poison, "redb group commit failed");
                if failure.poison {
                    self.poisoned = Some(failure.error.to_string());
                }
                for reply in replies {
                    let _ = reply.send(Err(duplicate(&failure.error)));
                }
            }
        }
    }
}

/// Applies `ops` in one write transaction, logs them in `wal` (synced
/// unless `sync` is [`SyncMode::Never`]) and commits the transaction without
/// a sync — unless no request changed anything. Checkpoints once the log is
/// large enough.
fn apply_batch(
    db: &Database,
    file: &Path,
    sync: SyncMode,
    ops: Vec<(LogId, WriteOp)>,
    mut bounds: HashMap<LogId, LogBounds>,
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
    let poison = |error| BatchFailure { error, poison: true };
    let wal_seq = wal.next_seq;
    wal::set_applied_seq(&txn, file, wal_seq)?;
    wal.append(wal_seq, &body, sync == SyncMode::Always).map_err(poison)?;
    wal.next_seq += 1;
    txn.commit().at(file, "commit").map_err(poison)?;
    // The batch is durable in the log whatever happens now: a failed
    // checkpoint refuses the writes after it, not this batch.
    let failed_checkpoint = if wal.wants_checkpoint() { checkpoint(db, file, wal).err() } else { None };
    Ok(Applied { results, bounds, committed: true, next_seq: seq, failed_checkpoint })
}

/// Persist everything committed so far (a durable redb commit, which also
/// stores the next generation's epoch), then start the log over.
pub(crate) fn checkpoint(db: &Database, file: &Path, wal: &mut Wal) -> Result<(), StorageError> {
    let txn = db.begin_write().at(file, "begin checkpoint")?;
    let epoch = wal::new_epoch();
    wal::set_epoch(&txn, file, epoch)?;
    txn.commit().at(file, "checkpoint commit")?;
    wal.reset(epoch)
}

/// Validates and applies each of `ops` in turn against `bounds` (updated as
/// they apply), appending each one that changes something to `body` if
/// given. Returns each op's outcome and whether any changed something.
pub(crate) fn apply_ops(
    tables: &mut Tables<'_, '_>,
    file: &Path,
    bounds: &mut HashMap<LogId, LogBounds>,
    ops: Vec<(LogId, WriteOp)>,
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
    log: LogId,
    plan: Plan,
    op: WriteOp,
    seq: &mut u64,
) -> Result<(), StorageError> {
    let mut meta = read_meta(tables.meta, file, log)?;
    if let Some((from, to)) = plan.remove {
        let mut removed = 0u64;
        tables
            .log
            .retain_in(log.key(from)..=log.key(to), |_, value| {
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
