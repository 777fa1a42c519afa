//! Stand-ins a conformance server hosts: [`EchoMember`] answers Raft requests
//! from their content and swallows snapshots, [`EchoService`] answers every
//! service request with a response derived from it, so a test knows exactly
//! what must come back over the wire.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;

use raftkv_core::api::{
    ApiError, CtrlOp, KvOp, NodeStatus, ServiceHandler, ServiceRequest, ServiceResponse, ShardConfig, ShardData,
    ShardState, ShardStatus,
};
use raftkv_core::raft::core::{FollowerStatus, ProgressState, Role, Status};
use raftkv_core::raft::driver::{RaftRpcHandler, RpcFuture};
use raftkv_core::raft::{
    AppendEntriesResponse, HeartbeatResponse, InstallSnapshotRequest, InstallSnapshotResponse, RaftRequest,
    RaftResponse, TimeoutNowResponse, VoteResponse,
};
use raftkv_core::storage::{SnapshotReader, StorageError};
use raftkv_core::types::{ClientId, ConfigNum, GroupId, LogIndex, NodeId, ShardId, Term};

/// Chunks of a snapshot whose `last_index` is this are answered by
/// [`EchoMember`] with a higher term: a member that moved on, which must stop
/// the stream at once.
pub const REFUSED_SNAPSHOT_INDEX: LogIndex = LogIndex(666);

/// Byte `offset` of every synthetic test snapshot.
#[must_use]
pub fn snapshot_byte(offset: u64) -> u8 {
    ((offset.wrapping_mul(31) + 7) % 251) as u8
}

/// Counts a snapshot's bytes as the sender reads them and as the receiver
/// takes them; the difference is what the transport holds in between.
#[derive(Debug, Default)]
pub struct SnapshotMeter {
    produced: AtomicU64,
    consumed: AtomicU64,
    peak_buffered: AtomicU64,
}

impl SnapshotMeter {
    /// Bytes the sender has read from its store.
    #[must_use]
    pub fn produced(&self) -> u64 {
        self.produced.load(Ordering::SeqCst)
    }

    /// Bytes the receiver has taken.
    #[must_use]
    pub fn consumed(&self) -> u64 {
        self.consumed.load(Ordering::SeqCst)
    }

    /// Most bytes read but not yet taken, seen when a chunk arrived.
    #[must_use]
    pub fn peak_buffered(&self) -> u64 {
        self.peak_buffered.load(Ordering::SeqCst)
    }

    fn arrived(&self, len: u64) {
        let buffered = self.produced().saturating_sub(self.consumed());
        self.peak_buffered.fetch_max(buffered, Ordering::SeqCst);
        self.consumed.fetch_add(len, Ordering::SeqCst);
    }
}

/// [`snapshot_byte`] repeats every this many bytes.
const PATTERN_PERIOD: u64 = 251;

/// A snapshot of `total` synthetic bytes ([`snapshot_byte`]) generated as it
/// is read, so that a huge one costs no memory.
#[derive(Debug)]
pub struct SyntheticSnapshot {
    total: u64,
    offset: u64,
    meter: Arc<SnapshotMeter>,
    pattern: Vec<u8>,
}

impl SyntheticSnapshot {
    /// `total` bytes, counted into `meter` as they are read.
    #[must_use]
    pub fn new(total: u64, meter: Arc<SnapshotMeter>) -> Self {
        Self { total, offset: 0, meter, pattern: Vec::new() }
    }
}

#[async_trait]
impl SnapshotReader for SyntheticSnapshot {
    async fn next_chunk(&mut self, max_len: usize) -> Result<Option<Bytes>, StorageError> {
        if self.offset >= self.total {
            return Ok(None);
        }
        let len = (self.total - self.offset).min(max_len as u64);
        let needed = (len + PATTERN_PERIOD) as usize;
        if self.pattern.len() < needed {
            self.pattern = (0..needed as u64).map(snapshot_byte).collect();
        }
        let start = (self.offset % PATTERN_PERIOD) as usize;
        let chunk = Bytes::copy_from_slice(&self.pattern[start..start + len as usize]);
        self.offset += len;
        self.meter.produced.fetch_add(len, Ordering::SeqCst);
        Ok(Some(chunk))
    }
}

/// A snapshot whose reader hands out one chunk of `first` bytes and then
/// never another: a sender that stalls mid-stream.
#[derive(Debug)]
pub struct StallingSnapshot {
    first: Option<usize>,
}

impl StallingSnapshot {
    /// One chunk of `first` bytes, then a stall.
    #[must_use]
    pub fn new(first: usize) -> Self {
        Self { first: Some(first) }
    }
}

#[async_trait]
impl SnapshotReader for StallingSnapshot {
    async fn next_chunk(&mut self, max_len: usize) -> Result<Option<Bytes>, StorageError> {
        match self.first.take() {
            Some(n) => Ok(Some(Bytes::from((0..n.min(max_len) as u64).map(snapshot_byte).collect::<Vec<u8>>()))),
            None => std::future::pending().await,
        }
    }
}

#[derive(Debug, Default)]
struct SinkState {
    next_offset: u64,
    installed: Option<u64>,
    errors: Vec<String>,
}

/// A Raft member stand-in: answers appends, heartbeats, votes and
/// transfers from their content, records the order appends arrive in, and
/// receives snapshots chunk by chunk (checking their bytes) into nothing.
#[derive(Debug, Default)]
pub struct EchoMember {
    appends: Mutex<Vec<(NodeId, LogIndex)>>,
    calls: AtomicU64,
    sink: Mutex<SinkState>,
    meter: Mutex<Option<Arc<SnapshotMeter>>>,
}

impl EchoMember {
    /// A fresh stand-in.
    #[must_use]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The answer [`EchoMember`] gives to `request` (snapshot chunks aside).
    #[must_use]
    pub fn answer(request: &RaftRequest) -> Option<RaftResponse> {
        Some(match request {
            RaftRequest::AppendEntries(r) => RaftResponse::AppendEntries(AppendEntriesResponse {
                term: r.term,
                success: true,
                match_index: LogIndex(r.prev_log_index.0 + r.entries.len() as u64),
                rejected_prev: LogIndex(0),
                conflict_term: (r.entries.is_empty() && r.prev_log_index.0 % 2 == 1).then_some(Term(r.term.0 / 2)),
                conflict_index: LogIndex(r.leader_commit.0 / 2),
                read_seq: r.read_seq,
            }),
            RaftRequest::Heartbeat(r) => {
                RaftResponse::Heartbeat(HeartbeatResponse { term: r.term, read_seq: r.read_seq })
            }
            RaftRequest::Vote(r) => {
                RaftResponse::Vote(VoteResponse { term: r.term, granted: r.candidate.0 % 2 == 1, pre_vote: r.pre_vote })
            }
            RaftRequest::TimeoutNow(r) => RaftResponse::TimeoutNow(TimeoutNowResponse { term: r.term.next() }),
            RaftRequest::InstallSnapshot(_) => return None,
        })
    }

    /// Count the bytes of received snapshot chunks into `meter`.
    pub fn meter_snapshots(&self, meter: Arc<SnapshotMeter>) {
        *self.meter.lock().unwrap_or_else(PoisonError::into_inner) = Some(meter);
    }

    /// Appends received: (sender, `prev_log_index`) in arrival order.
    #[must_use]
    pub fn appends(&self) -> Vec<(NodeId, LogIndex)> {
        self.appends.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Requests received.
    #[must_use]
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Size of the last snapshot received whole, if any.
    #[must_use]
    pub fn installed(&self) -> Option<u64> {
        self.sink.lock().unwrap_or_else(PoisonError::into_inner).installed
    }

    /// Problems seen in received snapshots (wrong bytes, out-of-order chunks).
    #[must_use]
    pub fn snapshot_errors(&self) -> Vec<String> {
        self.sink.lock().unwrap_or_else(PoisonError::into_inner).errors.clone()
    }

    fn receive_chunk(&self, c: &InstallSnapshotRequest) -> InstallSnapshotResponse {
        let meter = self.meter.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(m) = meter {
            m.arrived(c.data.len() as u64);
        }
        if c.meta.last_index == REFUSED_SNAPSHOT_INDEX {
            return InstallSnapshotResponse { term: c.term.next(), accepted: false, next_offset: 0 };
        }
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        if c.offset == 0 {
            sink.next_offset = 0;
        }
        if c.offset != sink.next_offset {
            let next_offset = sink.next_offset;
            return InstallSnapshotResponse { term: c.term, accepted: false, next_offset };
        }
        let len = c.data.len();
        for i in [0, len / 2, len.saturating_sub(1)] {
            if let Some(&b) = c.data.get(i) {
                let want = snapshot_byte(c.offset + i as u64);
                if b != want {
                    sink.errors.push(format!("byte {} is {b}, expected {want}", c.offset + i as u64));
                }
            }
        }
        sink.next_offset += len as u64;
        if c.done {
            sink.installed = Some(sink.next_offset);
        }
        InstallSnapshotResponse { term: c.term, accepted: true, next_offset: sink.next_offset }
    }
}

impl RaftRpcHandler for EchoMember {
    fn submit(&self, from: NodeId, request: RaftRequest) -> RpcFuture {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let RaftRequest::AppendEntries(r) = &request {
            self.appends.lock().unwrap_or_else(PoisonError::into_inner).push((from, r.prev_log_index));
        }
        let answer = match &request {
            RaftRequest::InstallSnapshot(c) => RaftResponse::InstallSnapshot(self.receive_chunk(c)),
            other => match Self::answer(other) {
                Some(a) => a,
                None => return Box::pin(std::future::ready(Err(raftkv_core::raft::driver::RaftError::Stopped))),
            },
        };
        Box::pin(std::future::ready(Ok(answer)))
    }
}

/// A service stand-in: every request gets [`EchoService::answer`].
#[derive(Debug, Default)]
pub struct EchoService {
    calls: AtomicU64,
}

impl EchoService {
    /// A fresh stand-in.
    #[must_use]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Requests answered.
    #[must_use]
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// The response to `request`: a function of it that exercises every
    /// response shape and every [`ApiError`].
    #[must_use]
    pub fn answer(request: &ServiceRequest) -> ServiceResponse {
        match request {
            ServiceRequest::Kv(r) => ServiceResponse::Kv(match &r.op {
                KvOp::Get { key } if key.is_empty() => Ok(None),
                KvOp::Get { key } => Ok(Some(Bytes::from(key.iter().rev().copied().collect::<Vec<u8>>()))),
                KvOp::Put { .. } => Ok(None),
                KvOp::Append { .. } => Err(ApiError::NotLeader { leader_hint: Some(NodeId(r.id.seq % 3 + 1)) }),
                KvOp::Delete { .. } => Err(ApiError::WrongGroup { config: ConfigNum(r.id.seq) }),
            }),
            ServiceRequest::Ctrl(r) => ServiceResponse::Ctrl(match &r.op {
                CtrlOp::Query { num } => Ok(Some(ShardConfig {
                    num: num.unwrap_or(ConfigNum(42)),
                    shards: (0..10).map(|s| GroupId(s % 3)).collect(),
                    groups: BTreeMap::from([
                        (GroupId(1), vec!["a:1".into(), "b:2".into()]),
                        (GroupId(2), vec!["c:3".into()]),
                    ]),
                })),
                CtrlOp::Join { groups } => {
                    if groups.is_empty() {
                        Err(ApiError::NotLeader { leader_hint: None })
                    } else {
                        Ok(None)
                    }
                }
                CtrlOp::Leave { groups } => Err(ApiError::Invalid { reason: format!("cannot remove {groups:?}") }),
                CtrlOp::Move { shard, .. } => Err(ApiError::Unavailable { reason: format!("shard {shard} busy") }),
            }),
            ServiceRequest::PullShards(r) => ServiceResponse::PullShards(Ok(r
                .shards
                .iter()
                .map(|&s| ShardData {
                    shard: s,
                    entries: (0..s.0).map(|i| (Bytes::from(format!("k{i}")), Bytes::from(vec![i as u8; 3]))).collect(),
                    dedup: vec![(ClientId(s.0 + 100), r.config.0)],
                    more: r.after.is_some(),
                })
                .collect())),
            ServiceRequest::DeleteShards(r) => ServiceResponse::DeleteShards(if r.shards.is_empty() {
                Err(ApiError::Unsupported { what: "nothing".into() })
            } else {
                Err(ApiError::NotReady { config: r.config })
            }),
            ServiceRequest::Status => ServiceResponse::Status(Ok(NodeStatus {
                group: GroupId(2),
                raft: Status {
                    id: NodeId(1),
                    role: Role::Leader,
                    term: Term(5),
                    leader: Some(NodeId(1)),
                    commit: LogIndex(90),
                    applied: LogIndex(89),
                    last_index: LogIndex(95),
                    snapshot_index: LogIndex(40),
                    storage_failing: Some("storage I/O error at raftkv.wal: no space left on device".into()),
                    followers: vec![
                        FollowerStatus {
                            id: NodeId(2),
                            match_index: LogIndex(95),
                            next_index: LogIndex(96),
                            lag: 0,
                            state: ProgressState::Replicate,
                        },
                        FollowerStatus {
                            id: NodeId(3),
                            match_index: LogIndex(10),
                            next_index: LogIndex(11),
                            lag: 85,
                            state: ProgressState::Snapshot(LogIndex(40)),
                        },
                    ],
                },
                config: ConfigNum(7),
                shards: vec![
                    ShardStatus { shard: ShardId(0), state: ShardState::Serving, from: None, frozen_at: None },
                    ShardStatus {
                        shard: ShardId(3),
                        state: ShardState::Pulling,
                        from: Some(GroupId(2)),
                        frozen_at: Some(ConfigNum(6)),
                    },
                    ShardStatus {
                        shard: ShardId(4),
                        state: ShardState::Sending,
                        from: None,
                        frozen_at: Some(ConfigNum(7)),
                    },
                    ShardStatus {
                        shard: ShardId(9),
                        state: ShardState::Collecting,
                        from: Some(GroupId(3)),
                        frozen_at: Some(ConfigNum(5)),
                    },
                ],
            })),
        }
    }
}

#[async_trait]
impl ServiceHandler for EchoService {
    async fn handle(&self, request: ServiceRequest) -> ServiceResponse {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Self::answer(&request)
    }
}
