//! [`ShardKvStateMachine`]: the [`StateMachine`] of a ShardKV group, over a
//! state it shares with the service (which reads it after ReadIndex).

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;

use super::state::{Applied, ShardKvImage, ShardKvState};
use crate::state_machine::{read_snapshot, Committed, SnapshotImage, StateMachine, StateMachineError};
use crate::storage::{SnapshotReader, SnapshotWriter};
use crate::types::GroupId;

/// The group state, shared by the state machine and the service.
#[derive(Clone, Debug)]
pub struct SharedShardKv(Arc<RwLock<ShardKvState>>);

impl SharedShardKv {
    /// Read the state.
    pub fn read(&self) -> RwLockReadGuard<'_, ShardKvState> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, ShardKvState> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The state machine of one ShardKV member.
#[derive(Debug)]
pub struct ShardKvStateMachine {
    state: SharedShardKv,
    group: GroupId,
    n_shards: usize,
}

impl ShardKvStateMachine {
    /// A fresh state machine of group `group` with `n_shards` shards, and
    /// the handle the service reads through.
    #[must_use]
    pub fn new(group: GroupId, n_shards: usize) -> (Self, SharedShardKv) {
        let state = SharedShardKv(Arc::new(RwLock::new(ShardKvState::new(group, n_shards))));
        (Self { state: state.clone(), group, n_shards }, state)
    }
}

/// Why a replica started with another shard count than its group's stops.
fn shard_count_error(replicated: usize, configured: usize) -> StateMachineError {
    StateMachineError::Failed(format!(
        "the group's configurations have {replicated} shards but this replica was started with {configured} \
         (--shards): restart it with --shards {replicated}"
    ))
}

/// Snapshot pieces of about this size: writing one never holds a whole
/// shard's encoding, and buffers this small are reused by the allocator
/// rather than mapped afresh (with their pages zeroed) for every piece.
const SNAPSHOT_PIECE_BYTES: usize = 64 << 10;

#[async_trait]
impl SnapshotImage for ShardKvImage {
    async fn write_to(self: Box<Self>, out: &mut dyn SnapshotWriter) -> Result<(), StateMachineError> {
        for piece in self.pieces(SNAPSHOT_PIECE_BYTES) {
            out.write(piece).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl StateMachine for ShardKvStateMachine {
    type Response = Applied;

    async fn apply(&mut self, batch: Vec<Committed>) -> Result<Vec<Applied>, StateMachineError> {
        let mut state = self.state.write();
        let mut answers = Vec::with_capacity(batch.len());
        for c in batch {
            let applied = state.apply(c.command);
            if let Applied::ShardCountMismatch { replicated, configured } = applied {
                return Err(shard_count_error(replicated, configured));
            }
            answers.push(applied);
        }
        Ok(answers)
    }

    async fn snapshot(&mut self) -> Result<Box<dyn SnapshotImage>, StateMachineError> {
        Ok(Box::new(self.state.read().image()))
    }

    async fn restore(&mut self, input: &mut dyn SnapshotReader) -> Result<(), StateMachineError> {
        let data = read_snapshot(input).await?;
        let restored = if data.is_empty() {
            ShardKvState::new(self.group, self.n_shards)
        } else {
            ShardKvState::decode(data).map_err(|e| StateMachineError::MalformedSnapshot(e.to_string()))?
        };
        let replicated = restored.config().shards.len();
        if replicated != self.n_shards {
            return Err(shard_count_error(replicated, self.n_shards));
        }
        *self.state.write() = restored;
        Ok(())
    }
}
