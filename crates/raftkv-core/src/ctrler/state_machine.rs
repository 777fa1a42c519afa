//! [`CtrlStateMachine`]: the controller's replicated state — the
//! configurations and the duplicate table — shared with the service that
//! answers queries from it.

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use bytes::Bytes;

use super::configs::Configs;
use super::encoding::{decode_command, get_config, put_config};
use crate::binary::{BinaryError, Decoder, Encoder};
use crate::dedup::DedupTable;
use crate::state_machine::{read_snapshot, Committed, SnapshotImage, StateMachine, StateMachineError};
use crate::storage::SnapshotReader;
use crate::types::ClientId;

/// What applying a controller command answered: `Err` holds why it was refused.
pub type CtrlReply = Result<(), String>;

/// The controller's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtrlState {
    /// Every configuration so far.
    pub configs: Configs,
    /// Last request of every client, with its reply.
    pub dedup: DedupTable<CtrlReply>,
}

impl CtrlState {
    /// The state of a new controller with `n_shards` shards.
    #[must_use]
    pub fn new(n_shards: usize) -> Self {
        Self { configs: Configs::new(n_shards), dedup: DedupTable::new() }
    }

    fn apply(&mut self, command: Bytes) -> CtrlReply {
        let (id, op) = decode_command(command).map_err(|e| format!("malformed command: {e}"))?;
        if let Some(seen) = self.dedup.seen(id) {
            // A retry: answer as the first time (an older request: plain success).
            return seen.cloned().unwrap_or(Ok(()));
        }
        let reply = self.configs.apply(&op).map_err(|e| e.to_string());
        self.dedup.record(id, reply.clone());
        reply
    }

    fn encode(&self) -> Bytes {
        let mut e = Encoder::new();
        e.u64(self.configs.list().len() as u64);
        for c in self.configs.list() {
            put_config(&mut e, c);
        }
        e.u64(self.dedup.len() as u64);
        for (client, seq, reply) in self.dedup.entries() {
            e.u64(client.0).u64(seq);
            match reply {
                Ok(()) => e.u8(0),
                Err(why) => e.u8(1).str(why),
            };
        }
        e.finish()
    }

    fn decode(b: Bytes) -> Result<Self, BinaryError> {
        let mut d = Decoder::new(b);
        let n = d.count("configurations")?;
        let list = (0..n).map(|_| get_config(&mut d)).collect::<Result<Vec<_>, _>>()?;
        let configs =
            Configs::from_list(list).map_err(|reason| BinaryError::Invalid { what: "configurations", reason })?;
        let mut dedup = DedupTable::new();
        let m = d.count("clients")?;
        for _ in 0..m {
            let client = ClientId(d.u64("client")?);
            let seq = d.u64("seq")?;
            let reply = match d.u8("reply")? {
                0 => Ok(()),
                _ => Err(d.string("refusal")?),
            };
            dedup.record(crate::api::RequestId { client, seq }, reply);
        }
        d.end("controller snapshot")?;
        Ok(Self { configs, dedup })
    }
}

/// A handle on the controller state, shared by the state machine (which
/// writes it) and the service (which reads it after a ReadIndex barrier).
#[derive(Clone, Debug)]
pub struct SharedCtrlState(Arc<RwLock<CtrlState>>);

impl SharedCtrlState {
    /// Read the state.
    pub fn read(&self) -> RwLockReadGuard<'_, CtrlState> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, CtrlState> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The controller's [`StateMachine`].
#[derive(Debug)]
pub struct CtrlStateMachine {
    state: SharedCtrlState,
    n_shards: usize,
}

impl CtrlStateMachine {
    /// A fresh controller state machine for `n_shards` shards, and the handle
    /// the service reads it through.
    #[must_use]
    pub fn new(n_shards: usize) -> (Self, SharedCtrlState) {
        let state = SharedCtrlState(Arc::new(RwLock::new(CtrlState::new(n_shards))));
        (Self { state: state.clone(), n_shards }, state)
    }
}

#[async_trait]
impl StateMachine for CtrlStateMachine {
    type Response = CtrlReply;

    async fn apply(&mut self, batch: Vec<Committed>) -> Result<Vec<CtrlReply>, StateMachineError> {
        let mut state = self.state.write();
        Ok(batch.into_iter().map(|c| state.apply(c.command)).collect())
    }

    async fn snapshot(&mut self) -> Result<Box<dyn SnapshotImage>, StateMachineError> {
        Ok(Box::new(self.state.read().encode()))
    }

    async fn restore(&mut self, input: &mut dyn SnapshotReader) -> Result<(), StateMachineError> {
        let data = read_snapshot(input).await?;
        let restored = if data.is_empty() {
            CtrlState::new(self.n_shards)
        } else {
            CtrlState::decode(data).map_err(|e| StateMachineError::MalformedSnapshot(e.to_string()))?
        };
        *self.state.write() = restored;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::api::{CtrlOp, RequestId};
    use crate::ctrler::encoding::encode_command;
    use crate::types::GroupId;

    fn cmd(client: u64, seq: u64, op: &CtrlOp) -> Bytes {
        encode_command(RequestId { client: ClientId(client), seq }, op).unwrap()
    }

    #[test]
    fn retries_apply_once_and_the_state_survives_a_snapshot() {
        let mut s = CtrlState::new(10);
        let join = CtrlOp::Join { groups: BTreeMap::from([(GroupId(1), vec!["a:1".into()])]) };
        assert_eq!(s.apply(cmd(1, 1, &join)), Ok(()));
        assert_eq!(s.apply(cmd(1, 1, &join)), Ok(()), "a retry is answered, not applied again");
        assert_eq!(s.configs.latest().num.0, 1);
        assert!(s.apply(cmd(2, 1, &join)).unwrap_err().contains("already joined"));
        assert!(s.apply(cmd(2, 1, &join)).unwrap_err().contains("already joined"), "a retry gets the same refusal");
        assert!(s.apply(Bytes::from_static(b"\x01")).unwrap_err().contains("malformed"));
        let restored = CtrlState::decode(s.encode()).unwrap();
        assert_eq!(restored, s);
        assert!(CtrlState::decode(Bytes::from_static(b"\x05\x01")).is_err());
    }
}
