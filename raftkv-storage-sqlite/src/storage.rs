//! [`SqliteStorage`]: one SQLite database holding the logs of many members.

use std::fmt;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use raftkv_core::storage::{FileSnapshotStore, StorageError};
use raftkv_core::MemberId;
use raftkv_core::{GroupId, LogIndex, NodeId};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use crate::blocking::run_db;
use crate::bounds::{self, Bounds};
use crate::db_header;
use crate::error::DbFile;
use crate::journal;
use crate::log_store::SqliteLogStore;
use crate::read_pool::ReadPool;
use crate::records;
use crate::wal_check;
use crate::writer::WriterHandle;
use crate::{schema, SqliteOptions, SyncMode};

/// Name of the database file inside the storage directory.
pub const DB_FILE: &str = "raftkv.sqlite";
/// Name of the directory of snapshot directories inside the storage directory.
pub const SNAPSHOT_DIR: &str = "snapshots";

/// State shared by a storage and every log store opened from it.
pub(crate) struct Shared {
    pub(crate) db: DbFile,
    dir: PathBuf,
    pub(crate) bounds: Arc<Bounds>,
    pub(crate) readers: ReadPool,
    pub(crate) writer: WriterHandle,
    commits: Arc<AtomicU64>,
    closed: AtomicBool,
}

impl Shared {
    pub(crate) fn ensure_open(&self) -> Result<(), StorageError> {
        if self.closed.load(Ordering::Acquire) {
            Err(StorageError::Closed)
        } else {
            Ok(())
        }
    }
}

/// One SQLite database (WAL, `synchronous = FULL`) holding the Raft logs and
/// hard states of many members, each (group, node) its own log, plus one
/// snapshot directory per member.
///
/// Every write of every member goes through one writer that commits
/// whatever is queued in one transaction (group commit). Clones share the
/// database; it closes on [`SqliteStorage::close`] or when the storage and
/// every log store opened from it are dropped.
#[derive(Clone)]
pub struct SqliteStorage {
    shared: Arc<Shared>,
}

impl SqliteStorage {
    /// Opens (creating them if needed) `dir/raftkv.sqlite` and `dir/snapshots/`,
    /// checks the file (see [`SqliteOptions::check_on_open`]) and runs the
    /// schema migrations.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] for a file that is not a RaftKV database or is
    /// damaged, [`StorageError::Io`] when the directory or file cannot be
    /// used; both name the path.
    pub async fn open(dir: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StorageError> {
        let dir = dir.as_ref().to_path_buf();
        let db = DbFile::new(dir.join(DB_FILE));
        if options.sync == SyncMode::Never {
            let path = db.path().display();
            tracing::warn!(%path, "synchronous=OFF: acknowledged writes can be lost on a crash (benchmarks only)");
        }
        let connect = options.connect_options(db.path());
        let conn = {
            let (dir, db, connect, check) = (dir.clone(), db.clone(), connect.clone(), options.check_on_open);
            run_db(move || async move { prepare(&dir, &db, &connect, check).await }).await??
        };
        let bounds = Arc::new(Bounds::default());
        let commits = Arc::new(AtomicU64::new(0));
        let writer = WriterHandle::spawn(conn, connect.clone(), db.clone(), bounds.clone(), commits.clone());
        let readers = ReadPool::new(db.clone(), connect, options.read_connections);
        let shared = Shared { db, dir, bounds, readers, writer, commits, closed: AtomicBool::new(false) };
        Ok(Self { shared: Arc::new(shared) })
    }

    /// The log store and snapshot store of one member: its log in the shared
    /// tables, and a [`FileSnapshotStore`] at `dir/snapshots/g<group>-n<node>`.
    ///
    /// The first call for a member reads its bounds (first and last index,
    /// hard state) and checks that its stored entries are contiguous (every
    /// entry's checksum was verified when the storage opened); later calls
    /// share them. Every call checks that a purged log's snapshot is not
    /// missing. Log stores of different members never see each other's
    /// entries.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] when the member's hard state or an entry
    /// does not decode, its entries have gaps, or the snapshot covering its
    /// purged entries is missing (naming the file, entry or directory);
    /// [`StorageError::Closed`] after [`Self::close`].
    pub async fn member(
        &self,
        group: GroupId,
        node: NodeId,
    ) -> Result<(SqliteLogStore, FileSnapshotStore), StorageError> {
        let shared = &self.shared;
        shared.ensure_open()?;
        let log = MemberId { group, node };
        if shared.bounds.get(log).is_none() {
            let db = shared.db.clone();
            let meta = shared
                .readers
                .read(move |mut conn| async move {
                    let meta = bounds::load(&mut conn, &db, log).await;
                    (conn, meta)
                })
                .await?;
            shared.bounds.insert_if_absent(log, meta);
        }
        let snapshot_dir = self.snapshot_dir(group, node);
        let (created, parent) = (snapshot_dir.clone(), shared.dir.join(SNAPSHOT_DIR));
        // FileSnapshotStore fsyncs its own directory when a snapshot finishes,
        // but not that directory's entry in `snapshots/`: do it here.
        run_db(move || async move {
            fs::create_dir_all(&created).map_err(|e| DbFile::io(&created, e))?;
            sync_dir(&parent)
        })
        .await??;
        let snapshots = FileSnapshotStore::open(snapshot_dir).await?;
        // A log purged past every snapshot lost one: refuse it, naming the directory.
        let purged = shared.bounds.get(log).map_or(0, |meta| meta.purged);
        snapshots.check_covers(LogIndex(purged)).await?;
        Ok((SqliteLogStore::new(self.shared.clone(), log), snapshots))
    }

    /// Durable commits (transactions) so far: with group commit, fewer than
    /// the writes acknowledged when many members write at once.
    #[must_use]
    pub fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.shared.db.path()
    }

    /// The snapshot directory of a member.
    #[must_use]
    pub fn snapshot_dir(&self, group: GroupId, node: NodeId) -> PathBuf {
        self.shared.dir.join(SNAPSHOT_DIR).join(format!("g{}-n{}", group.0, node.0))
    }

    /// Closes the database: writes already queued are committed, then the
    /// connections close. Every later call on this storage, its clones and
    /// its log stores returns [`StorageError::Closed`]. Snapshot stores are
    /// plain directories and keep working.
    pub async fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.writer.close().await;
        self.shared.readers.close().await;
    }
}

impl fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStorage")
            .field("path", &self.path())
            .field("commits", &self.commits())
            .field("closed", &self.shared.closed.load(Ordering::Relaxed))
            .finish()
    }
}

/// Creates the directories, opens the write connection, checks the file,
/// creates or upgrades the tables and checkpoints the journal. Runs on the
/// blocking pool.
async fn prepare(
    dir: &Path,
    db: &DbFile,
    connect: &SqliteConnectOptions,
    check: bool,
) -> Result<SqliteConnection, StorageError> {
    fs::create_dir_all(dir.join(SNAPSHOT_DIR)).map_err(|e| DbFile::io(dir, e))?;
    // SQLite would open a damaged header read-only or misread its pages,
    // and stop reading its log at a damaged frame, without a word.
    db_header::check(db.path())?;
    wal_check::check(&db.wal_path())?;
    let mut conn = connect.connect().await.map_err(|e| db.sqlx_opening("opening", e))?;
    let ready = async {
        if check {
            schema::check(&mut conn, db).await?;
        }
        schema::migrate(&mut conn, db).await?;
        schema::verify(&mut conn, db).await?;
        records::upgrade(&mut conn, db).await?;
        records::verify_all(&mut conn, db).await?;
        // Entries left in the journal by a crash (or a failed close) go to `log`.
        journal::checkpoint_now(&mut conn, db).await
    };
    if let Err(e) = ready.await {
        let _ = conn.close().await;
        return Err(e);
    }
    // The entries of a new database file and of `snapshots/` become durable.
    sync_dir(dir)?;
    Ok(conn)
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| DbFile::io(dir, e))
}
