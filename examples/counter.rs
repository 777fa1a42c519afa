//! A replicated counter: three Raft members in one process, in-memory stores,
//! an in-process transport. Run with `cargo run -p raftkv-examples --example counter`.

use std::sync::Arc;
use std::time::Duration;

use raftkv_core::bytes::BytesMut;
use raftkv_core::{
    async_trait, Bytes, Committed, DriverConfig, GroupId, LocalTransport, MemDisk, NodeId, Raft, RaftConfig,
    RaftHandle, Role, SnapshotImage, SnapshotReader, StateMachine, StateMachineError,
};

/// Adds each command's value (a little-endian i64) to a running total.
#[derive(Default)]
struct Counter {
    total: i64,
}

#[async_trait]
impl StateMachine for Counter {
    type Response = i64;

    async fn apply(&mut self, batch: Vec<Committed>) -> Result<Vec<i64>, StateMachineError> {
        let mut out = Vec::with_capacity(batch.len());
        for c in batch {
            let delta: [u8; 8] =
                c.command.as_ref().try_into().map_err(|_| StateMachineError::Failed("command is not an i64".into()))?;
            self.total += i64::from_le_bytes(delta);
            out.push(self.total);
        }
        Ok(out)
    }

    async fn snapshot(&mut self) -> Result<Box<dyn SnapshotImage>, StateMachineError> {
        Ok(Box::new(Bytes::copy_from_slice(&self.total.to_le_bytes())))
    }

    async fn restore(&mut self, input: &mut dyn SnapshotReader) -> Result<(), StateMachineError> {
        let mut data = BytesMut::new();
        while let Some(chunk) = input.next_chunk(64).await? {
            data.extend_from_slice(&chunk);
        }
        let total: [u8; 8] =
            data.as_ref().try_into().map_err(|_| StateMachineError::MalformedSnapshot("expected 8 bytes".into()))?;
        self.total = i64::from_le_bytes(total);
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let voters: Vec<NodeId> = (1..=3).map(NodeId).collect();
    let transport = Arc::new(LocalTransport::new());
    let mut members: Vec<RaftHandle<i64>> = Vec::new();
    for &id in &voters {
        let disk = MemDisk::new();
        let handle = Raft::start(
            RaftConfig::new(GroupId(1), id, voters.clone()),
            DriverConfig::default(),
            Arc::new(disk.log_store()),
            Arc::new(disk.snapshot_store()),
            transport.clone(),
            Counter::default(),
        )
        .await?;
        transport.register(id, Arc::new(handle.clone()));
        members.push(handle);
    }

    // Wait for an election, then add 1..=10 through the leader.
    let leader = loop {
        let mut found = None;
        for m in &members {
            if m.status().await?.role == Role::Leader {
                found = Some(m.clone());
            }
        }
        if let Some(l) = found {
            break l;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut total = 0;
    for v in 1..=10i64 {
        total = leader.propose(Bytes::copy_from_slice(&v.to_le_bytes())).await?;
    }
    let read = leader.read_index().await?;
    println!("total = {total} (linearizable read barrier at index {read})");
    assert_eq!(total, 55);
    for m in &members {
        m.shutdown().await;
    }
    Ok(())
}
