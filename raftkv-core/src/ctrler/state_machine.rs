//! [`CtrlStateMachine`]: the controller's replicated state — the
//! configurations and the duplicate table — shared with the service that
//! answers queries from it.

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use bytes::Bytes;

use super::configs::Configs;
use super::encoding::{decode_command, get_config, put_config, DecodedCommand};
use super::error::{CommandError, CtrlApplyError};
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

    /// Whether the replicated history fixes the shard count: a command has
    /// been applied (a configuration added or a request recorded). Until
    /// then configuration 0 holds the count this member was started with,
    /// and the first command applied replaces it with its proposer's.
    #[must_use]
    pub fn shard_count_fixed(&self) -> bool {
        self.configs.list().len() > 1 || !self.dedup.is_empty()
    }

    /// Refuse a state whose fixed shard count is not `configured`, the count
    /// this member was started with.
    pub fn check_shard_count(&self, configured: usize) -> Result<(), CtrlApplyError> {
        let replicated = self.configs.shard_count();
        if self.shard_count_fixed() && replicated != configured {
            return Err(CtrlApplyError::ShardCount { replicated, configured });
        }
        Ok(())
    }

    /// Apply one command: `Ok` holds its reply (a refusal for a malformed
    /// command, an invalid operation or one proposed for another shard
    /// count), `Err` a command this build cannot read.
    fn apply(&mut self, command: Bytes) -> Result<CtrlReply, CommandError> {
        let DecodedCommand { id, op, shards } = match decode_command(command) {
            Ok(c) => c,
            Err(e @ CommandError::Malformed(_)) => return Ok(Err(e.to_string())),
            Err(e) => return Err(e),
        };
        if let Some(seen) = self.dedup.seen(id) {
            // A retry: answer as the first time (an older request: plain success).
            return Ok(seen.cloned().unwrap_or(Ok(())));
        }
        let have = self.configs.shard_count();
        let reply = match shards {
            Some(n) if n != have && self.shard_count_fixed() => {
                Err(format!("proposed for {n} shards, but this cluster has {have} (fixed when it was created)"))
            }
            Some(n) => {
                if n != have {
                    // The first command applied fixes the count for every replica alike.
                    self.configs = Configs::new(n);
                }
                self.configs.apply(&op).map_err(|e| e.to_string())
            }
            // Version 1 carries no count: the history's own.
            None => self.configs.apply(&op).map_err(|e| e.to_string()),
        };
        self.dedup.record(id, reply.clone());
        Ok(reply)
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
        let mut replies = Vec::with_capacity(batch.len());
        for c in batch {
            let reply = state.apply(c.command).map_err(|e| failed(&CtrlApplyError::Command(e)))?;
            state.check_shard_count(self.n_shards).map_err(|e| failed(&e))?;
            replies.push(reply);
        }
        Ok(replies)
    }

    async fn snapshot(&mut self) -> Result<Box<dyn SnapshotImage>, StateMachineError> {
        Ok(Box::new(self.state.read().encode()))
    }

    async fn restore(&mut self, input: &mut dyn SnapshotReader) -> Result<(), StateMachineError> {
        let data = read_snapshot(input).await?;
        let mut restored = if data.is_empty() {
            CtrlState::new(self.n_shards)
        } else {
            CtrlState::decode(data).map_err(|e| StateMachineError::MalformedSnapshot(e.to_string()))?
        };
        if !restored.shard_count_fixed() {
            // Nothing applied yet: as fresh as a new state.
            restored = CtrlState::new(self.n_shards);
        }
        restored.check_shard_count(self.n_shards).map_err(|e| failed(&e))?;
        *self.state.write() = restored;
        Ok(())
    }
}

fn failed(e: &CtrlApplyError) -> StateMachineError {
    StateMachineError::Failed(e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::api::{CtrlOp, RequestId};
    use crate::ctrler::encoding::encode_command;
    use crate::storage::StorageError;
    use crate::types::{GroupId, LogIndex, Term};

    fn cmd(client: u64, seq: u64, op: &CtrlOp) -> Bytes {
        cmd_for(10, client, seq, op)
    }

    fn cmd_for(shards: usize, client: u64, seq: u64, op: &CtrlOp) -> Bytes {
        encode_command(RequestId { client: ClientId(client), seq }, op, shards).unwrap()
    }

    fn join(g: u64) -> CtrlOp {
        CtrlOp::Join { groups: BTreeMap::from([(GroupId(g), vec![format!("g{g}:1")])]) }
    }

    fn hex(s: &str) -> Bytes {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect::<Vec<_>>().into()
    }

    fn committed(commands: Vec<Bytes>) -> Vec<Committed> {
        commands
            .into_iter()
            .enumerate()
            .map(|(i, command)| Committed { index: LogIndex(i as u64 + 1), term: Term(1), command })
            .collect()
    }

    /// One snapshot, read in one piece.
    struct Snapshot(Option<Bytes>);

    #[async_trait]
    impl SnapshotReader for Snapshot {
        async fn next_chunk(&mut self, _max_len: usize) -> Result<Option<Bytes>, StorageError> {
            Ok(self.0.take())
        }
    }

    #[test]
    fn retries_apply_once_and_the_state_survives_a_snapshot() {
        let mut s = CtrlState::new(10);
        let join = CtrlOp::Join { groups: BTreeMap::from([(GroupId(1), vec!["a:1".into()])]) };
        assert_eq!(s.apply(cmd(1, 1, &join)).unwrap(), Ok(()));
        assert_eq!(s.apply(cmd(1, 1, &join)).unwrap(), Ok(()), "a retry is answered, not applied again");
        assert_eq!(s.configs.latest().num.0, 1);
        assert!(s.apply(cmd(2, 1, &join)).unwrap().unwrap_err().contains("already joined"));
        assert!(
            s.apply(cmd(2, 1, &join)).unwrap().unwrap_err().contains("already joined"),
            "a retry gets the same refusal"
        );
        assert!(s.apply(Bytes::from_static(b"\x01")).unwrap().unwrap_err().contains("malformed"));
        let restored = CtrlState::decode(s.encode()).unwrap();
        assert_eq!(restored, s);
        assert!(CtrlState::decode(Bytes::from_static(b"\x05\x01")).is_err());
    }

    #[test]
    fn the_first_command_fixes_the_shard_count_and_a_command_for_another_count_is_refused() {
        // A member started with 20 shards on a cluster whose log says 10.
        let mut s = CtrlState::new(20);
        assert!(!s.shard_count_fixed());
        assert_eq!(s.check_shard_count(20), Ok(()), "nothing replicated yet says otherwise");
        assert_eq!(s.apply(cmd_for(10, 1, 1, &join(1))).unwrap(), Ok(()));
        assert!(s.shard_count_fixed());
        assert!(s.configs.list().iter().all(|c| c.shards.len() == 10), "the log's count, in every configuration");
        assert_eq!(s.check_shard_count(20), Err(CtrlApplyError::ShardCount { replicated: 10, configured: 20 }));
        assert_eq!(
            s.check_shard_count(20).unwrap_err().to_string(),
            "the controller's replicated configurations have 10 shards, but this member was started with 20 \
             (`shards` / --shards): the shard count is fixed when a cluster is created; restart it with shards = 10"
        );
        let before = s.configs.clone();
        assert_eq!(
            s.apply(cmd_for(20, 1, 2, &join(2))).unwrap(),
            Err("proposed for 20 shards, but this cluster has 10 (fixed when it was created)".into())
        );
        assert_eq!(s.configs, before, "past configurations are never rewritten");
        // A refused first command fixes the count as well (it is recorded).
        let mut t = CtrlState::new(20);
        assert!(t.apply(cmd_for(10, 1, 1, &CtrlOp::Leave { groups: vec![GroupId(3)] })).unwrap().is_err());
        assert!(t.shard_count_fixed());
        assert_eq!(t.configs.shard_count(), 10);
        let restored = CtrlState::decode(t.encode()).unwrap();
        assert!(restored.shard_count_fixed(), "and stays fixed through a snapshot");
    }

    #[tokio::test]
    async fn a_controller_started_with_another_shard_count_stops_naming_both() {
        // From the log: the first command applied makes the member stop.
        let (mut sm, state) = CtrlStateMachine::new(20);
        let e = sm.apply(committed(vec![cmd_for(10, 1, 1, &join(1)), cmd_for(10, 1, 2, &join(2))])).await.unwrap_err();
        assert!(e.to_string().contains("have 10 shards, but this member was started with 20"), "{e}");
        assert_eq!(state.read().configs.list().len(), 2, "it stops before the next command");
        // From a snapshot: the member does not start.
        let mut ten = CtrlState::new(10);
        ten.apply(cmd(1, 1, &join(1))).unwrap().unwrap();
        let (mut sm, _) = CtrlStateMachine::new(20);
        let e = sm.restore(&mut Snapshot(Some(ten.encode()))).await.unwrap_err();
        assert!(e.to_string().contains("have 10 shards, but this member was started with 20"), "{e}");
        // With the right count both go on.
        let (mut sm, state) = CtrlStateMachine::new(10);
        sm.restore(&mut Snapshot(Some(ten.encode()))).await.unwrap();
        assert_eq!(sm.apply(committed(vec![cmd(1, 2, &join(2))])).await.unwrap(), vec![Ok(())]);
        assert_eq!(state.read().configs.latest().num.0, 2);
        // A snapshot taken before anything was applied fixes nothing.
        let (mut sm, state) = CtrlStateMachine::new(20);
        sm.restore(&mut Snapshot(Some(CtrlState::new(10).encode()))).await.unwrap();
        assert_eq!(state.read().configs.shard_count(), 20);
    }

    #[tokio::test]
    async fn a_command_of_an_unknown_format_stops_the_member_naming_its_version() {
        let (mut sm, _) = CtrlStateMachine::new(10);
        let mut b = cmd(1, 1, &join(1)).to_vec();
        b[2] = 9;
        let e = sm.apply(committed(vec![b.into()])).await.unwrap_err();
        assert!(e.to_string().contains("controller command format version 9 is not supported"), "{e}");
    }

    /// A log and a snapshot written by version 1 (captured from it: client
    /// 0x1234_5678_9abc, seq 40 to 43, 10 shards) still apply and read.
    #[test]
    fn a_version_1_log_and_snapshot_still_read() {
        let log = [
            "bcb5e2b3c5c60428010201020e3132372e302e302e313a383130300e3132372e302e302e313a38313031020103683a31",
            "bcb5e2b3c5c60429020102",
            "bcb5e2b3c5c6042a030301",
            "bcb5e2b3c5c6042b020107",
        ];
        let snapshot = hex(concat!(
            "04000a0000000000000000000000010a010101010102020202020201020e3132372e302e302e313a383130300e3132372e",
            "302e302e313a38313031020103683a31020a010101010101010101010101020e3132372e302e302e313a383130300e3132",
            "372e302e302e313a38313031030a010101010101010101010101020e3132372e302e302e313a383130300e3132372e302e",
            "302e313a3831303101bcb5e2b3c5c6042b012867726f75702037206973206e6f742070617274206f662074686520636f6e",
            "66696775726174696f6e",
        ));
        let mut s = CtrlState::new(10);
        let replies: Vec<CtrlReply> = log.iter().map(|c| s.apply(hex(c)).unwrap()).collect();
        assert_eq!(
            replies,
            vec![Ok(()), Ok(()), Ok(()), Err("group 7 is not part of the configuration".into())],
            "the replies version 1 gave"
        );
        assert_eq!(s.configs.latest().shards[3], GroupId(1));
        assert_eq!(s.configs.query(None).num.0, 3);
        assert_eq!(s.encode(), snapshot, "the snapshot format is unchanged");
        let restored = CtrlState::decode(snapshot).unwrap();
        assert_eq!(restored, s);
        assert_eq!(restored.check_shard_count(10), Ok(()));
        assert_eq!(restored.check_shard_count(20), Err(CtrlApplyError::ShardCount { replicated: 10, configured: 20 }));
    }
}
