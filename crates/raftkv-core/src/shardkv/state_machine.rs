//! [`ShardKvStateMachine`]: the [`StateMachine`] of a ShardKV group, over a
//! state it shares with the service (which reads it after ReadIndex).

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;

use super::state::{Applied, ShardKvState};
use crate::state_machine::{read_snapshot, Committed, StateMachine, StateMachineError};
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

#[async_trait]
impl StateMachine for ShardKvStateMachine {
    type Response = Applied;

    async fn apply(&mut self, batch: Vec<Committed>) -> Result<Vec<Applied>, StateMachineError> {
        let mut state = self.state.write();
        Ok(batch.into_iter().map(|c| state.apply(c.command)).collect())
    }

    async fn snapshot(&mut self, out: &mut dyn SnapshotWriter) -> Result<(), StateMachineError> {
        // One shard at a time, so that at most one shard's encoding is held
        // beside the state. Only this loop changes the state, and it is here:
        // the pieces form one consistent snapshot.
        let (header, ids) = {
            let state = self.state.read();
            (state.encode_header(), state.shard_ids())
        };
        out.write(header).await?;
        for id in ids {
            let piece = self.state.read().encode_shard(id).ok_or_else(|| {
                StateMachineError::Failed(format!("shard {id} went away while the snapshot was being written"))
            })?;
            out.write(piece).await?;
        }
        Ok(())
    }

    async fn restore(&mut self, input: &mut dyn SnapshotReader) -> Result<(), StateMachineError> {
        let data = read_snapshot(input).await?;
        let restored = if data.is_empty() {
            ShardKvState::new(self.group, self.n_shards)
        } else {
            ShardKvState::decode(data).map_err(|e| StateMachineError::MalformedSnapshot(e.to_string()))?
        };
        *self.state.write() = restored;
        Ok(())
    }
}
