//! [`SqliteLogStore`]: one member's [`LogStore`] in the shared tables.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use raftkv_core::raft::Entry;
use raftkv_core::storage::{LogState, LogStore, LogWrite, StorageError};
use raftkv_core::MemberId;
use raftkv_core::{GroupId, LogIndex, NodeId};
use sqlx::SqliteConnection;

use crate::batch::Command;
use crate::bounds::{key_columns, LogMeta};
use crate::error::DbFile;
use crate::records;
use crate::storage::Shared;

/// The [`LogStore`] of one (group, node) member of a
/// [`SqliteStorage`](crate::SqliteStorage); made by
/// [`SqliteStorage::member`](crate::SqliteStorage::member).
///
/// Writes and purges are validated against the member's bounds, cached in
/// memory, then committed by the storage's single writer, possibly in one
/// transaction with other members' writes (group commit); each call returns
/// once its own effect is durable. `state` and `size_bytes` answer from the
/// cache; `entries` reads the tables (`log` and the append journal, merged).
/// Clones share the log.
#[derive(Clone)]
pub struct SqliteLogStore {
    shared: Arc<Shared>,
    log: MemberId,
}

/// What a read of `[from, to)` found.
enum Fetched {
    Entries(Vec<Entry>),
    /// The first index that was not stored.
    Missing(u64),
}

impl SqliteLogStore {
    pub(crate) fn new(shared: Arc<Shared>, log: MemberId) -> Self {
        Self { shared, log }
    }

    /// The member's group.
    #[must_use]
    pub fn group(&self) -> GroupId {
        self.log.group
    }

    /// The member's node id.
    #[must_use]
    pub fn node(&self) -> NodeId {
        self.log.node
    }

    fn meta(&self) -> Result<LogMeta, StorageError> {
        self.shared.ensure_open()?;
        self.shared.bounds.get(self.log).ok_or(StorageError::Closed)
    }
}

/// The entries of one log in `[?3, ?4]` from both tables, in index order, with
/// the journal seq of those still in the journal; a journal row replaces a
/// `log` row with the same index. One statement, so one snapshot even if the
/// writer checkpoints meanwhile.
const FETCH_SQL: &str = "SELECT idx, value, NULL FROM log WHERE grp = ?1 AND node = ?2 AND idx BETWEEN ?3 AND ?4 \
       AND idx NOT IN (SELECT idx FROM journal WHERE grp = ?1 AND node = ?2 AND idx BETWEEN ?3 AND ?4) \
     UNION ALL SELECT idx, value, seq FROM journal WHERE grp = ?1 AND node = ?2 AND idx BETWEEN ?3 AND ?4 \
     ORDER BY idx";

/// Reads and decodes the entries `from..=last` of `log` (from `log` and the
/// journal), stopping at the first index that is not stored.
async fn fetch(
    conn: &mut SqliteConnection,
    db: &DbFile,
    log: MemberId,
    from: u64,
    last: u64,
) -> Result<Fetched, StorageError> {
    let (grp, node) = key_columns(log);
    let bound = |i: u64| i64::try_from(i).unwrap_or(i64::MAX);
    let rows: Vec<(i64, Vec<u8>, Option<i64>)> = sqlx::query_as(FETCH_SQL)
        .bind(grp)
        .bind(node)
        .bind(bound(from))
        .bind(bound(last))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| db.sqlx("reading entries", e))?;
    let mut entries = Vec::with_capacity(rows.len());
    for ((idx, value, seq), expected) in rows.into_iter().zip(from..) {
        if u64::try_from(idx).ok() != Some(expected) {
            return Ok(Fetched::Missing(expected));
        }
        let entry = records::decode_entry(log, expected, &value).map_err(|e| match seq {
            Some(seq) => db.corrupt_journal_entry(log, expected, seq, &e),
            None => db.corrupt_entry(log, expected, &e),
        })?;
        entries.push(entry);
    }
    let next = from + entries.len() as u64;
    Ok(if next > last { Fetched::Entries(entries) } else { Fetched::Missing(next) })
}

#[async_trait]
impl LogStore for SqliteLogStore {
    async fn state(&self) -> Result<LogState, StorageError> {
        Ok(self.meta()?.state())
    }

    async fn entries(&self, from: LogIndex, to: LogIndex) -> Result<Vec<Entry>, StorageError> {
        let meta = self.meta()?;
        if from >= to {
            return Ok(Vec::new());
        }
        meta.check_range(from, to)?;
        let (db, log) = (self.shared.db.clone(), self.log);
        let fetched = self
            .shared
            .readers
            .read(move |mut conn| async move {
                let fetched = fetch(&mut conn, &db, log, from.0, to.0 - 1).await;
                (conn, fetched)
            })
            .await?;
        match fetched {
            Fetched::Entries(entries) => Ok(entries),
            Fetched::Missing(index) => {
                // A purge or truncation may have committed since the check.
                self.meta()?.check_range(from, to)?;
                Err(self.shared.db.corrupt_log(self.log, index, "entry is missing from the log table".to_owned()))
            }
        }
    }

    async fn write(&self, write: LogWrite) -> Result<(), StorageError> {
        self.shared.ensure_open()?;
        if write.is_empty() {
            return Ok(());
        }
        self.shared.writer.submit(Command::Write { log: self.log, write }).await
    }

    async fn purge_through(&self, index: LogIndex) -> Result<(), StorageError> {
        self.shared.ensure_open()?;
        self.shared.writer.submit(Command::Purge { log: self.log, through: index }).await
    }

    async fn size_bytes(&self) -> Result<u64, StorageError> {
        Ok(self.meta()?.size_bytes())
    }
}

impl fmt::Debug for SqliteLogStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteLogStore")
            .field("path", &self.shared.db.path())
            .field("group", &self.log.group)
            .field("node", &self.log.node)
            .finish()
    }
}
