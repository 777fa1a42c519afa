//! The tokio driver: runs a [`RaftCore`] against a
//! [`LogStore`], a [`SnapshotStore`], a [`Transport`] and a [`StateMachine`].
//!
//! [`Raft::start`] spawns three tasks per member: the event loop (owns the
//! core; sends, and hands committed entries on), the log writer (persists
//! what the event loop hands it, in order) and the apply loop (owns the state
//! machine; applies, answers proposers and reads, takes snapshots). A [`RaftHandle`] talks to them through channels.

mod apply;
mod error;
mod event_loop;
mod log_writer;
mod observer;
mod snapshot_transfer;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

pub use error::RaftError;
pub use observer::{RaftObserver, StepReport};

use super::core::{RaftConfig, RaftCore, RecoveredState, Status};
use super::{RaftRequest, RaftResponse};
use crate::metrics::RaftMetrics;
use crate::state_machine::StateMachine;
use crate::storage::{LogStore, SnapshotStore};
use crate::transport::Transport;
use crate::types::{LogIndex, NodeId, Term};

/// Runtime settings of the driver.
#[derive(Clone)]
pub struct DriverConfig {
    /// Length of one core tick.
    pub tick: Duration,
    /// Take a snapshot once this many entries were applied since the last one (0: never).
    pub snapshot_every_entries: u64,
    /// Take a snapshot once the entries applied since the last one add up to
    /// this many bytes (0: never) — a bound on the log's size on disk.
    pub snapshot_log_bytes: u64,
    /// Size of one InstallSnapshot chunk.
    pub snapshot_chunk_bytes: usize,
    /// Most events (proposals, messages) handled before the loop persists and
    /// sends: bounds the size of one batched append.
    pub max_events_per_turn: usize,
    /// Optional hook that sees every step (invariant checking, metrics).
    pub observer: Option<Arc<dyn RaftObserver>>,
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(10),
            snapshot_every_entries: 10_000,
            snapshot_log_bytes: 64 << 20,
            snapshot_chunk_bytes: 1 << 20,
            max_events_per_turn: 8192,
            observer: None,
        }
    }
}

impl std::fmt::Debug for DriverConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverConfig")
            .field("tick", &self.tick)
            .field("snapshot_every_entries", &self.snapshot_every_entries)
            .field("snapshot_log_bytes", &self.snapshot_log_bytes)
            .field("snapshot_chunk_bytes", &self.snapshot_chunk_bytes)
            .field("max_events_per_turn", &self.max_events_per_turn)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

type Reply<T> = oneshot::Sender<Result<T, RaftError>>;

/// Requests from handles (and from the member's own tasks) to the event loop.
pub(crate) enum LoopRequest<R> {
    Propose {
        command: Bytes,
        reply: Reply<R>,
    },
    Start {
        command: Bytes,
        reply: Reply<(LogIndex, Term)>,
    },
    Read {
        reply: Reply<LogIndex>,
    },
    Transfer {
        to: NodeId,
        reply: Reply<()>,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
    /// `span`: the caller's (the transport's receiving span), so the handling is its child.
    Rpc {
        from: NodeId,
        request: RaftRequest,
        reply: oneshot::Sender<RaftResponse>,
        span: tracing::Span,
    },
    Response {
        from: NodeId,
        response: RaftResponse,
    },
    Unreachable {
        peer: NodeId,
    },
    SnapshotSent {
        peer: NodeId,
        outcome: super::core::SnapshotSendOutcome,
    },
    Compacted {
        meta: super::SnapshotMeta,
    },
    Applied {
        index: LogIndex,
    },
    Failed {
        error: RaftError,
    },
    /// A log write failed in a way that may pass (a full disk); the writer
    /// tries it again.
    WriteFailing {
        error: crate::storage::StorageError,
    },
    /// The log writer made every submission through `seq` durable (or failed).
    Persisted {
        seq: u64,
        result: Result<(), crate::storage::StorageError>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// The answer to a request queued with [`RaftRpcHandler::submit`].
pub type RpcFuture = futures::future::BoxFuture<'static, Result<RaftResponse, RaftError>>;

/// Server half of a transport: something that answers Raft requests.
///
/// # Contract
/// - `submit` queues the request at once (it does not wait) and returns the
///   future of its answer. Requests are handled in the order they were
///   submitted, so a transport that submits the messages of one ordered
///   stream in arrival order keeps a pipeline of appends in order, while
///   their answers are awaited concurrently.
/// - The future fails with [`RaftError::Stopped`] if the member stopped.
pub trait RaftRpcHandler: Send + Sync + 'static {
    /// Queue a request from peer `from`; the future resolves to its answer.
    fn submit(&self, from: NodeId, request: RaftRequest) -> RpcFuture;
}

impl<R: Send + 'static> RaftRpcHandler for RaftHandle<R> {
    fn submit(&self, from: NodeId, request: RaftRequest) -> RpcFuture {
        let (reply, rx) = oneshot::channel();
        let sent = self.tx.send(LoopRequest::Rpc { from, request, reply, span: tracing::Span::current() });
        Box::pin(async move {
            sent.map_err(|_| RaftError::Stopped)?;
            rx.await.map_err(|_| RaftError::Stopped)
        })
    }
}

/// A running Raft member.
pub struct Raft;

impl Raft {
    /// Recover a member from its stores, restore its state machine from the
    /// latest snapshot, and start its tasks on the current tokio runtime.
    pub async fn start<SM: StateMachine>(
        cfg: RaftConfig,
        driver: DriverConfig,
        log_store: Arc<dyn LogStore>,
        snapshot_store: Arc<dyn SnapshotStore>,
        transport: Arc<dyn Transport>,
        mut state_machine: SM,
    ) -> Result<RaftHandle<SM::Response>, RaftError> {
        let log_state = log_store.state().await?;
        let mut snapshot = super::SnapshotMeta::default();
        if let Some((meta, mut reader)) = snapshot_store.open_latest().await? {
            state_machine.restore(reader.as_mut()).await?;
            snapshot = meta;
        }
        let entries = recover_log(log_store.as_ref(), log_state, snapshot).await?;
        if let Some(first) = entries.first() {
            if first.index != snapshot.last_index.next() {
                return Err(crate::storage::StorageError::Corrupt {
                    location: "log store".into(),
                    reason: format!(
                        "log starts at index {} but the latest snapshot ends at {}",
                        first.index, snapshot.last_index
                    ),
                }
                .into());
            }
        }
        let who = (cfg.group, cfg.id);
        let recovered = RecoveredState { hard_state: log_state.hard_state, snapshot, entries };
        let core = RaftCore::new(cfg, recovered)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let metrics = Arc::new(RaftMetrics::default());
        let apply = apply::ApplyLoop::new(who, state_machine, snapshot_store.clone(), tx.clone(), &driver, snapshot)
            .with_metrics(metrics.clone());
        let stores = event_loop::Stores { log: log_store, snapshots: snapshot_store };
        let event_loop =
            event_loop::EventLoop::new(core, driver, stores, transport, (tx.clone(), rx), apply, metrics.clone());
        let task = tokio::spawn(event_loop.run());
        Ok(RaftHandle { tx, task: Arc::new(task.abort_handle()), metrics })
    }
}

/// The durable entries after `snapshot`, after repairing what a crash in the
/// middle of installing a received snapshot can leave behind: entries the
/// snapshot covers (or a log that ends before it) are purged, and a suffix
/// older than the snapshot's last term (the unfinished truncation of a
/// conflicting log) is dropped.
async fn recover_log(
    log_store: &dyn LogStore,
    log_state: crate::storage::LogState,
    snapshot: super::SnapshotMeta,
) -> Result<Vec<super::Entry>, RaftError> {
    if snapshot.last_index == LogIndex(0) {
        return Ok(if log_state.last_index >= log_state.first_index {
            log_store.entries(log_state.first_index, log_state.last_index.next()).await?
        } else {
            Vec::new()
        });
    }
    if log_state.first_index <= snapshot.last_index {
        log_store.purge_through(snapshot.last_index).await?;
    }
    let state = log_store.state().await?;
    if state.last_index < state.first_index {
        return Ok(Vec::new());
    }
    let entries = log_store.entries(state.first_index, state.last_index.next()).await?;
    if entries.first().is_some_and(|e| e.term < snapshot.last_term) {
        log_store.truncate_after(snapshot.last_index).await?;
        return Ok(Vec::new());
    }
    Ok(entries)
}

/// Talks to a running member. Cheap to clone.
pub struct RaftHandle<R> {
    tx: mpsc::UnboundedSender<LoopRequest<R>>,
    task: Arc<tokio::task::AbortHandle>,
    metrics: Arc<RaftMetrics>,
}

impl<R> Clone for RaftHandle<R> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone(), task: self.task.clone(), metrics: self.metrics.clone() }
    }
}

impl<R: Send + 'static> RaftHandle<R> {
    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> LoopRequest<R>) -> Result<T, RaftError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).map_err(|_| RaftError::Stopped)?;
        rx.await.map_err(|_| RaftError::Stopped)?
    }

    /// Replicate `command` and wait for the state machine's response to it.
    pub async fn propose(&self, command: Bytes) -> Result<R, RaftError> {
        let started = tokio::time::Instant::now();
        self.metrics.proposals.inc();
        let answer = self.ask(|reply| LoopRequest::Propose { command, reply }).await;
        match &answer {
            Ok(_) => self.metrics.proposal_latency.observe(started.elapsed()),
            Err(_) => self.metrics.proposal_failures.inc(),
        }
        answer
    }

    /// Append `command` to the leader's log and return its index and term at
    /// once, without waiting for it to commit.
    pub async fn start(&self, command: Bytes) -> Result<(LogIndex, Term), RaftError> {
        self.ask(|reply| LoopRequest::Start { command, reply }).await
    }

    /// Linearizable read barrier (ReadIndex, no log write): resolves once this
    /// member has confirmed it is leader and applied everything committed
    /// before the call. Returns the read index.
    pub async fn read_index(&self) -> Result<LogIndex, RaftError> {
        self.metrics.reads.inc();
        self.ask(|reply| LoopRequest::Read { reply }).await
    }

    /// Ask the leader to hand leadership to `to`.
    pub async fn transfer_leader(&self, to: NodeId) -> Result<(), RaftError> {
        self.ask(|reply| LoopRequest::Transfer { to, reply }).await
    }

    /// Current role, term, leader, indices and followers.
    pub async fn status(&self) -> Result<Status, RaftError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(LoopRequest::Status { reply }).map_err(|_| RaftError::Stopped)?;
        rx.await.map_err(|_| RaftError::Stopped)
    }

    /// Server half of a transport: deliver a request from peer `from` and
    /// wait for the answer (see [`RaftRpcHandler::submit`]).
    pub async fn handle_rpc(&self, from: NodeId, request: RaftRequest) -> Result<RaftResponse, RaftError> {
        RaftRpcHandler::submit(self, from, request).await
    }

    /// The member's counters and latency histograms.
    #[must_use]
    pub fn metrics(&self) -> &RaftMetrics {
        &self.metrics
    }

    /// Stop the member: pending calls fail with [`RaftError::Stopped`].
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(LoopRequest::Shutdown { reply }).is_ok() {
            let _ = rx.await;
        }
    }

    /// Crash-stop: end every task of the member at once, without flushing or
    /// answering anyone (used to simulate a crash).
    pub fn abort(&self) {
        self.task.abort();
    }

    /// Whether the member's event loop is still running.
    #[must_use]
    pub fn is_running(&self) -> bool {
        !self.tx.is_closed() && !self.task.is_finished()
    }
}
