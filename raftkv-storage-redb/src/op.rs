//! [`WriteOp`]: one mutation of one log, as the writer queues it and the
//! write-ahead log records it.

use raftkv_core::storage::LogWrite;
use raftkv_core::LogIndex;

/// A mutation of one log.
#[derive(Debug)]
pub(crate) enum WriteOp {
    /// [`LogStore::write`](raftkv_core::storage::LogStore::write).
    Write(LogWrite),
    /// [`LogStore::purge_through`](raftkv_core::storage::LogStore::purge_through).
    Purge(LogIndex),
}
