//! [`SqliteOptions`] and [`SyncMode`]: how the database is opened.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::ConnectOptions;

/// Whether a commit waits for the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncMode {
    /// `PRAGMA synchronous = FULL` (the default): every commit is fsynced
    /// before the call returns, as the [`LogStore`](raftkv_core::storage::LogStore)
    /// contract requires.
    #[default]
    Always,
    /// `PRAGMA synchronous = OFF`: commits are handed to the OS and **not**
    /// fsynced.
    ///
    /// **WARNING — breaks the `LogStore` durability contract.** A power loss or
    /// OS crash can lose acknowledged writes (a vote, appended entries) or
    /// corrupt the database, and a Raft member that forgets a vote or an entry
    /// can break safety for the whole group. Use it only for benchmarks and
    /// tests that never survive a machine crash; never in production.
    Never,
}

/// How [`SqliteStorage::open`](crate::SqliteStorage::open) opens the database.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// Durability of commits; see [`SyncMode`] before changing it.
    pub sync: SyncMode,
    /// How long a connection waits for a lock held by another (default 5 s).
    pub busy_timeout: Duration,
    /// Read connections kept open for reads (default 2; more are opened on
    /// demand and closed after use).
    pub read_connections: usize,
    /// Run `PRAGMA quick_check` when opening (default `true`), so that a
    /// truncated or damaged file fails to open instead of failing later.
    /// It reads the whole file once.
    pub check_on_open: bool,
    /// Pages in SQLite's write-ahead log after which a commit copies them
    /// into the database file (`PRAGMA wal_autocheckpoint`; default 1000,
    /// SQLite's own). Opening after a crash reads and checks at most about
    /// this much log.
    pub wal_autocheckpoint_pages: u32,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            sync: SyncMode::Always,
            busy_timeout: Duration::from_secs(5),
            read_connections: 2,
            check_on_open: true,
            wal_autocheckpoint_pages: 1000,
        }
    }
}

impl SqliteOptions {
    /// sqlx options for a connection to the database at `path`.
    pub(crate) fn connect_options(&self, path: &Path) -> SqliteConnectOptions {
        let synchronous = match self.sync {
            SyncMode::Always => SqliteSynchronous::Full,
            SyncMode::Never => SqliteSynchronous::Off,
        };
        SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .busy_timeout(self.busy_timeout)
            .foreign_keys(false)
            .pragma("wal_autocheckpoint", self.wal_autocheckpoint_pages.to_string())
            .disable_statement_logging()
    }
}
