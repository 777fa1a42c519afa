//! Where the members of a simulated cluster keep their durable state.
//!
//! The simulator crashes a member by aborting its tasks and calling
//! [`MemberStorage::crash`]; a restart opens the stores again with
//! [`MemberStorage::open`], which must see exactly what was durable. The
//! in-memory [`MemStorage`] is the default; durable backends implement this
//! trait to run the same scenarios on real files.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::storage::{LogStore, MemDisk, SnapshotStore, StorageError};

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
}
