//! The storage conformance suite run against the in-memory disk.

use std::time::Duration;

use raftkv_testkit::{storage_conformance, MemHarness};

#[tokio::test]
async fn mem_disk_passes_storage_conformance() {
    storage_conformance(&mut MemHarness::default()).await;
}

#[tokio::test(start_paused = true)]
async fn mem_disk_with_write_latency_passes_storage_conformance() {
    storage_conformance(&mut MemHarness::with_write_latency(Duration::from_millis(2))).await;
}
