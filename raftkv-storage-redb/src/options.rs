//! How a [`RedbStorage`](crate::RedbStorage) is opened: durability and checks.

/// Whether a commit waits for the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncMode {
    /// Every batch is fsynced (in the write-ahead log) before any call in it
    /// returns. This is what the [`LogStore`] contract needs.
    ///
    /// [`LogStore`]: raftkv_core::storage::LogStore
    #[default]
    Always,
    /// **No durability.** Nothing is fsynced until a checkpoint or until the
    /// database is closed cleanly: a crash or power loss loses any
    /// number of acknowledged writes, so a Raft member may forget votes and
    /// entries it promised to keep and break safety. Only for benchmarks and
    /// tests.
    Never,
}

/// Options of [`RedbStorage::open`](crate::RedbStorage::open).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedbOptions {
    /// Whether commits are fsynced (default [`SyncMode::Always`]).
    pub sync: SyncMode,
    /// Verify the checksum of every page when the file is opened (default
    /// `true`). This reads the whole file once, and turns a file damaged
    /// outside redb into an error instead of a possible panic later.
    pub check_integrity_on_open: bool,
    /// Memory redb may use to cache pages of the file (default 32 MiB; redb's
    /// own default is 1 GiB). The Raft core keeps the entries after its last
    /// snapshot in memory, so the log is read back only to catch up a
    /// lagging follower or on restart.
    pub cache_bytes: usize,
    /// Size of the write-ahead log past which the next batch checkpoints:
    /// a durable redb commit of everything applied since the last one, after
    /// which the log starts over (default 4 MiB). A checkpoint stalls the
    /// writer while redb writes those pages; smaller ones are shorter and
    /// more frequent. Opening replays at most this much log.
    pub wal_checkpoint_bytes: u64,
}

impl Default for RedbOptions {
    fn default() -> Self {
        Self {
            sync: SyncMode::Always,
            check_integrity_on_open: true,
            cache_bytes: 32 << 20,
            wal_checkpoint_bytes: crate::wal::WAL_CHECKPOINT_BYTES,
        }
    }
}
