//! Where the members of a simulated cluster keep their durable state.
//!
//! The simulator crashes a member by aborting its tasks and calling
//! [`MemberStorage::crash`]; a restart opens the stores again with
//! [`MemberStorage::open`], which must see exactly what was durable. The
//! in-memory [`MemStorage`] is the default; durable backends implement this
//! trait to run the same scenarios on real files.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;

use raftkv_core::storage::{LogStore, MemDisk, SnapshotStore, StorageError};

/// Opens, crashes and measures the stores of each member of a simulated group.
#[async_trait]
pub trait MemberStorage: Send + Sync + 'static {
    /// Open member `member`'s stores from its durable state (creating it the first time).
    async fn open(&self, member: usize) -> Result<(Arc<dyn LogStore>, Arc<dyn SnapshotStore>), StorageError>;

    /// Crash member `member`'s storage: handles opened before stop working,
    /// and only what was durable remains for the next [`MemberStorage::open`].
    fn crash(&self, member: usize);

    /// Bytes of durable raft state (log entries plus hard state) of `member`.
    fn log_size(&self, member: usize) -> u64;

    /// Simulate a full disk for `member` (every commit fails and changes
    /// nothing) or free it again. Returns whether this storage can: only the
    /// in-memory disks can (the default says it cannot).
    fn set_full(&self, member: usize, full: bool) -> bool {
        let _ = (member, full);
        false
    }
}

/// [`MemberStorage`] on [`MemDisk`]s.
#[derive(Debug, Default)]
pub struct MemStorage {
    latency: Duration,
    disks: Mutex<BTreeMap<usize, MemDisk>>,
}

impl MemStorage {
    /// Disks whose commits take `latency` of (virtual) time.
    #[must_use]
    pub fn with_write_latency(latency: Duration) -> Self {
        Self { latency, disks: Mutex::default() }
    }

    /// Bytes of `member`'s latest snapshot (0 if none).
    #[must_use]
    pub fn snapshot_size(&self, member: usize) -> u64 {
        self.disk(member).snapshot_size_bytes()
    }

    fn disk(&self, member: usize) -> MemDisk {
        let mut disks = self.disks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        disks.entry(member).or_insert_with(|| MemDisk::with_write_latency(self.latency)).clone()
    }
}

#[async_trait]
impl MemberStorage for MemStorage {
    async fn open(&self, member: usize) -> Result<(Arc<dyn LogStore>, Arc<dyn SnapshotStore>), StorageError> {
        let disk = self.disk(member);
        Ok((Arc::new(disk.log_store()), Arc::new(disk.snapshot_store())))
    }

    fn crash(&self, member: usize) {
        self.disk(member).crash();
    }

    fn log_size(&self, member: usize) -> u64 {
        self.disk(member).log_size_bytes()
    }

    fn set_full(&self, member: usize, full: bool) -> bool {
        self.disk(member).set_full(full);
        true
    }
}

/// Opens one member's stores in a directory.
pub type OpenInDir = Box<
    dyn Fn(PathBuf) -> BoxFuture<'static, Result<(Arc<dyn LogStore>, Arc<dyn SnapshotStore>), StorageError>>
        + Send
        + Sync,
>;

/// [`MemberStorage`] for durable backends: member `i` lives in `root/member-<i>`,
/// a restart reopens that directory, and a crash drops every handle the
/// member held (the simulator aborts its tasks first).
pub struct DirStorage {
    root: PathBuf,
    open: OpenInDir,
    logs: Mutex<BTreeMap<usize, Arc<dyn LogStore>>>,
}

impl std::fmt::Debug for DirStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirStorage").field("root", &self.root).finish_non_exhaustive()
    }
}

impl DirStorage {
    /// Members under `root`, each opened with `open(member_dir)`.
    #[must_use]
    pub fn new(root: impl Into<PathBuf>, open: OpenInDir) -> Self {
        Self { root: root.into(), open, logs: Mutex::default() }
    }

    fn logs(&self) -> std::sync::MutexGuard<'_, BTreeMap<usize, Arc<dyn LogStore>>> {
        self.logs.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl MemberStorage for DirStorage {
    async fn open(&self, member: usize) -> Result<(Arc<dyn LogStore>, Arc<dyn SnapshotStore>), StorageError> {
        let dir = self.root.join(format!("member-{member}"));
        let mut attempt = 0;
        loop {
            // Let the tasks of the crashed incarnation be dropped, so that
            // their handles release the files.
            tokio::task::yield_now().await;
            match (self.open)(dir.clone()).await {
                Ok((log, snapshots)) => {
                    self.logs().insert(member, log.clone());
                    return Ok((log, snapshots));
                }
                Err(e) if attempt >= 20 => return Err(e),
                Err(_) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }

    fn crash(&self, member: usize) {
        self.logs().remove(&member);
    }

    fn log_size(&self, member: usize) -> u64 {
        let log = self.logs().get(&member).cloned();
        log.map_or(0, |log| futures::executor::block_on(log.size_bytes()).unwrap_or(0))
    }
}
