//! [`RedbLogStore`]: the [`LogStore`] of one member in a shared redb database.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use raftkv_core::raft::{Entry, HardState};
use raftkv_core::storage::codec;
use raftkv_core::storage::{LogBounds, LogState, LogStore, LogWrite, StorageError};
use raftkv_core::LogIndex;
use raftkv_core::MemberId;
use redb::{ReadTransaction, ReadableDatabase};
use tokio::sync::oneshot;

use crate::error::{blocking, corrupt_entry, corrupt_hard_state, corrupt_journal_entry, ResultExt};
use crate::journal::{self, JOURNAL};
use crate::keys::{log_key, LOG, META};
use crate::op::WriteOp;
use crate::storage::Shared;
use crate::tables::{read_meta, stored_range, MetaRow};
use crate::writer::WriteRequest;

/// The Raft log and hard state of one member (a `(group, node)` pair) in a
/// [`RedbStorage`](crate::RedbStorage) database.
///
/// Implements [`LogStore`] per its contract. Writes and purges go through the
/// database's group-commit writer and return once their commit is durable
/// (with [`SyncMode::Always`](crate::SyncMode::Always)); reads run in their
/// own read transaction, so they see a consistent state. Clones share the log.
#[derive(Clone)]
pub struct RedbLogStore {
    shared: Arc<Shared>,
    log: MemberId,
}

impl fmt::Debug for RedbLogStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbLogStore")
            .field("file", &self.shared.file)
            .field("group", &self.log.group)
            .field("node", &self.log.node)
            .finish()
    }
}

impl RedbLogStore {
    pub(crate) fn new(shared: Arc<Shared>, log: MemberId) -> Self {
        Self { shared, log }
    }

    /// Sends one mutation to the writer and waits for its commit.
    async fn submit(&self, op: WriteOp) -> Result<(), StorageError> {
        let (reply, outcome) = oneshot::channel();
        self.shared.writes.send(WriteRequest { log: self.log, op, reply }).map_err(|_| StorageError::Closed)?;
        outcome.await.map_err(|_| StorageError::Closed)?
    }

    /// Runs `read` in a read transaction on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        op: &'static str,
        read: impl FnOnce(&ReadTransaction, &Path, MemberId) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let (db, file, log) = (self.shared.db.clone(), self.shared.file.clone(), self.log);
        blocking(&self.shared.file, op, move || {
            let db = db.get(&file)?;
            let txn = db.begin_read().at(&file, "begin read transaction")?;
            read(&txn, &file, log)
        })
        .await
    }
}

/// The meta row and the last index of `log`, read in `txn`.
fn read_bounds(txn: &ReadTransaction, file: &Path, log: MemberId) -> Result<(MetaRow, u64), StorageError> {
    let meta = read_meta(&txn.open_table(META).at(file, "open meta table")?, file, log)?;
    let log_table = txn.open_table(LOG).at(file, "open log table")?;
    let journal_table = txn.open_table(JOURNAL).at(file, "open journal table")?;
    let stored = stored_range(&log_table, &journal_table, file, log)?;
    let last = stored.map_or(meta.purged, |(_, last)| last.max(meta.purged));
    Ok((meta, last))
}

#[async_trait]
impl LogStore for RedbLogStore {
    async fn state(&self) -> Result<LogState, StorageError> {
        self.read("read log state", |txn, file, log| {
            let (meta, last) = read_bounds(txn, file, log)?;
            let hard_state = match &meta.hard_state {
                Some(record) => codec::decode_hard_state(record).map_err(|e| corrupt_hard_state(file, log, &e))?,
                None => HardState::default(),
            };
            Ok(LogBounds { purged: meta.purged, last }.state(hard_state))
        })
        .await
    }

    async fn entries(&self, from: LogIndex, to: LogIndex) -> Result<Vec<Entry>, StorageError> {
        if from >= to {
            return Ok(Vec::new());
        }
        self.read("read log entries", move |txn, file, log| {
            let (meta, last) = read_bounds(txn, file, log)?;
            LogBounds { purged: meta.purged, last }.check_range(from, to)?;
            // Entries of the journal, then of `raft_log` where the journal has none.
            let journal_table = txn.open_table(JOURNAL).at(file, "open journal table")?;
            let mut stored: BTreeMap<u64, (Option<u64>, Vec<u8>)> =
                journal::log_entries(&journal_table, file, log, from.0, to.0 - 1)?
                    .into_iter()
                    .map(|(index, row)| (index, (Some(row.seq), row.record)))
                    .collect();
            let table = txn.open_table(LOG).at(file, "open log table")?;
            for item in table.range(log_key(log, from.0)..log_key(log, to.0)).at(file, "read log entries")? {
                let (key, value) = item.at(file, "read log entries")?;
                stored.entry(key.value().2).or_insert_with(|| (None, value.value().to_vec()));
            }
            let mut out = Vec::with_capacity(usize::try_from(to.0 - from.0).unwrap_or(0));
            for (index, (seq, record)) in stored {
                let expected = from.0 + out.len() as u64;
                if index != expected {
                    return Err(corrupt_entry(file, log, expected, "entry is missing"));
                }
                out.push(codec::decode_entry(LogIndex(index), &record).map_err(|e| match seq {
                    Some(seq) => corrupt_journal_entry(file, log, index, seq, e),
                    None => corrupt_entry(file, log, index, e),
                })?);
            }
            if out.len() as u64 != to.0 - from.0 {
                return Err(corrupt_entry(file, log, from.0 + out.len() as u64, "entry is missing"));
            }
            Ok(out)
        })
        .await
    }

    async fn write(&self, write: LogWrite) -> Result<(), StorageError> {
        if write.is_empty() {
            return Ok(());
        }
        self.submit(WriteOp::Write(write)).await
    }

    async fn purge_through(&self, index: LogIndex) -> Result<(), StorageError> {
        self.submit(WriteOp::Purge(index)).await
    }

    async fn size_bytes(&self) -> Result<u64, StorageError> {
        self.read("read log size", |txn, file, log| {
            let meta = read_meta(&txn.open_table(META).at(file, "open meta table")?, file, log)?;
            Ok(meta.size_bytes())
        })
        .await
    }
}
