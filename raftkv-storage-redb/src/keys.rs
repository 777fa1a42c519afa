//! The definitions and keys of the `raft_log` and `raft_meta` tables (see
//! [`crate::tables`] for what they hold), apart from the code that reads
//! and writes them so that the journal can name them too.

use raftkv_core::MemberId;
use redb::TableDefinition;

/// Key of [`LOG`]: `(group, node, index)`.
pub(crate) type LogKey = (u64, u64, u64);
/// Key of [`META`]: `(group, node)`.
pub(crate) type MetaKey = (u64, u64);
/// Value of [`META`]: `(last purged index, stored log bytes, hard state record)`.
pub(crate) type MetaValue = (u64, u64, Option<&'static [u8]>);
/// [`LOG`] opened for writing.
pub(crate) type LogTable<'txn> = redb::Table<'txn, LogKey, &'static [u8]>;
/// [`META`] opened for writing.
pub(crate) type MetaTable<'txn> = redb::Table<'txn, MetaKey, MetaValue>;

/// Log entries of every member.
pub(crate) const LOG: TableDefinition<LogKey, &[u8]> = TableDefinition::new("raft_log");

/// Purge point, log size and hard state of every member.
pub(crate) const META: TableDefinition<MetaKey, MetaValue> = TableDefinition::new("raft_meta");

/// Bytes counted per stored entry besides its record: the `(group, node, index)` key.
pub(crate) const ENTRY_KEY_BYTES: u64 = 24;

/// The key of entry `index` of member `log`'s log.
pub(crate) fn log_key(log: MemberId, index: u64) -> LogKey {
    (log.group.0, log.node.0, index)
}

/// The key of member `log`'s row in [`META`].
pub(crate) fn meta_key(log: MemberId) -> MetaKey {
    (log.group.0, log.node.0)
}
