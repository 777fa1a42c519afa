//! [`LocalTransport`]: members of one process calling each other directly.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use super::{CallFuture, Transport, TransportError};
use crate::raft::driver::{RaftError, RaftRpcHandler};
use crate::raft::RaftRequest;
use crate::types::NodeId;

type Registry = BTreeMap<NodeId, Arc<dyn RaftRpcHandler>>;

/// An in-process, fault-free [`Transport`]: a call is a direct, awaited call
/// of the target's [`RaftRpcHandler`], with no serialization, loss, delay or
/// reordering. For benchmarks, examples and tests that run several members in
/// one process.
///
/// Clones share one registry, so every member can be handed a clone of the
/// same transport and the handlers registered once they are started:
///
/// ```no_run
/// # async fn demo(
/// #     cfgs: Vec<raftkv_core::raft::core::RaftConfig>,
/// #     sms: Vec<impl raftkv_core::state_machine::StateMachine>,
/// # ) -> Result<(), raftkv_core::raft::driver::RaftError> {
/// use std::sync::Arc;
/// use raftkv_core::raft::driver::{DriverConfig, Raft};
/// use raftkv_core::storage::MemDisk;
/// use raftkv_core::transport::LocalTransport;
///
/// let transport = LocalTransport::new();
/// for (cfg, sm) in cfgs.into_iter().zip(sms) {
///     let id = cfg.id;
///     let disk = MemDisk::new();
///     let handle = Raft::start(
///         cfg,
///         DriverConfig::default(),
///         Arc::new(disk.log_store()),
///         Arc::new(disk.snapshot_store()),
///         Arc::new(transport.clone()),
///         sm,
///     )
///     .await?;
///     transport.register(id, Arc::new(handle));
/// }
/// # Ok(())
/// # }
/// ```
///
/// # Errors of [`Transport::call`]
/// - [`TransportError::Unreachable`] if the target is not registered, or its
///   member has stopped.
/// - [`TransportError::Rejected`] if its handler fails otherwise.
#[derive(Clone, Default)]
pub struct LocalTransport {
    handlers: Arc<Mutex<Registry>>,
}

impl std::fmt::Debug for LocalTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTransport").field("nodes", &self.nodes()).finish()
    }
}

impl LocalTransport {
    /// A transport with no node registered.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.handlers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Serve calls to `node` with `handler`; returns the handler it replaces, if any.
    pub fn register(&self, node: NodeId, handler: Arc<dyn RaftRpcHandler>) -> Option<Arc<dyn RaftRpcHandler>> {
        self.lock().insert(node, handler)
    }

    /// Stop serving `node`: later calls to it fail with
    /// [`TransportError::Unreachable`]. Returns its handler, if it had one.
    pub fn unregister(&self, node: NodeId) -> Option<Arc<dyn RaftRpcHandler>> {
        self.lock().remove(&node)
    }

    /// Whether calls to `node` are served.
    #[must_use]
    pub fn is_registered(&self, node: NodeId) -> bool {
        self.lock().contains_key(&node)
    }

    /// Registered nodes, in order.
    #[must_use]
    pub fn nodes(&self) -> Vec<NodeId> {
        self.lock().keys().copied().collect()
    }
}

#[async_trait]
impl Transport for LocalTransport {
    fn call(&self, from: NodeId, to: NodeId, request: RaftRequest) -> CallFuture {
        // Clone the handler out so the registry is not locked during the call.
        let Some(handler) = self.lock().get(&to).cloned() else {
            return Box::pin(std::future::ready(Err(TransportError::unreachable(to, "not registered"))));
        };
        let answer = handler.submit(from, request);
        Box::pin(async move {
            answer.await.map_err(|e| match e {
                RaftError::Stopped => TransportError::unreachable(to, "the member has stopped"),
                other => TransportError::rejected(to, other.to_string()),
            })
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use async_trait::async_trait;
    use bytes::Bytes;

    use super::*;
    use crate::raft::core::{RaftConfig, Role};
    use crate::raft::driver::{DriverConfig, Raft};
    use crate::raft::{HeartbeatRequest, HeartbeatResponse, RaftResponse};
    use crate::state_machine::{Committed, SnapshotImage, StateMachine, StateMachineError};
    use crate::storage::{MemDisk, SnapshotReader};
    use crate::transport::Peer;
    use crate::types::{GroupId, LogIndex, Term};

    /// Answers heartbeats with its own term and counts calls.
    struct Echo {
        term: Term,
        calls: AtomicU64,
    }

    impl RaftRpcHandler for Echo {
        fn submit(&self, _from: NodeId, request: RaftRequest) -> crate::raft::driver::RpcFuture {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let answer = match request {
                RaftRequest::Heartbeat(h) => {
                    Ok(RaftResponse::Heartbeat(HeartbeatResponse { term: self.term, read_seq: h.read_seq }))
                }
                _ => Err(RaftError::Stopped),
            };
            Box::pin(std::future::ready(answer))
        }
    }

    fn heartbeat(read_seq: u64) -> RaftRequest {
        RaftRequest::Heartbeat(HeartbeatRequest { term: Term(1), leader: NodeId(1), commit: LogIndex(0), read_seq })
    }

    #[tokio::test]
    async fn routes_to_registered_nodes_only() {
        let t = LocalTransport::new();
        let echo = Arc::new(Echo { term: Term(7), calls: AtomicU64::new(0) });
        assert!(t.register(NodeId(2), echo.clone()).is_none());
        assert!(t.is_registered(NodeId(2)));
        assert_eq!(t.nodes(), vec![NodeId(2)]);

        let resp = t.call(NodeId(1), NodeId(2), heartbeat(42)).await.unwrap();
        assert_eq!(resp, RaftResponse::Heartbeat(HeartbeatResponse { term: Term(7), read_seq: 42 }));
        assert_eq!(echo.calls.load(Ordering::SeqCst), 1);

        let err = t.call(NodeId(1), NodeId(3), heartbeat(1)).await.unwrap_err();
        assert!(matches!(&err, TransportError::Unreachable { peer, .. } if *peer == Peer::node(NodeId(3))), "{err}");

        // A handler that reports a stopped member is unreachable too.
        let timeout_now = RaftRequest::TimeoutNow(crate::raft::TimeoutNowRequest { term: Term(1), leader: NodeId(1) });
        let err = t.call(NodeId(1), NodeId(2), timeout_now).await.unwrap_err();
        assert!(matches!(&err, TransportError::Unreachable { peer, .. } if *peer == Peer::node(NodeId(2))), "{err}");

        assert!(t.clone().unregister(NodeId(2)).is_some());
        assert!(!t.is_registered(NodeId(2)));
        let err = t.call(NodeId(1), NodeId(2), heartbeat(2)).await.unwrap_err();
        assert!(matches!(err, TransportError::Unreachable { .. }), "{err}");
        assert_eq!(echo.calls.load(Ordering::SeqCst), 2);
    }

    /// Sums the first byte of every command.
    struct Counter(u64);

    #[async_trait]
    impl StateMachine for Counter {
        type Response = u64;

        async fn apply(&mut self, batch: Vec<Committed>) -> Result<Vec<u64>, StateMachineError> {
            Ok(batch
                .into_iter()
                .map(|c| {
                    self.0 += u64::from(c.command.first().copied().unwrap_or(0));
                    self.0
                })
                .collect())
        }

        async fn snapshot(&mut self) -> Result<Box<dyn SnapshotImage>, StateMachineError> {
            Ok(Box::new(Bytes::copy_from_slice(&self.0.to_le_bytes())))
        }

        async fn restore(&mut self, input: &mut dyn SnapshotReader) -> Result<(), StateMachineError> {
            let data = input.next_chunk(8).await?.unwrap_or_default();
            let bytes: [u8; 8] =
                data.as_ref().try_into().map_err(|_| StateMachineError::MalformedSnapshot("len".into()))?;
            self.0 = u64::from_le_bytes(bytes);
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn three_members_elect_and_replicate() {
        let t = LocalTransport::new();
        let voters: Vec<NodeId> = (1..=3).map(NodeId).collect();
        let mut handles = Vec::new();
        for &id in &voters {
            let disk = MemDisk::new();
            let cfg = RaftConfig::new(GroupId(1), id, voters.clone());
            let driver = DriverConfig { tick: Duration::from_millis(10), ..DriverConfig::default() };
            let h = Raft::start(
                cfg,
                driver,
                Arc::new(disk.log_store()),
                Arc::new(disk.snapshot_store()),
                Arc::new(t.clone()),
                Counter(0),
            )
            .await
            .unwrap();
            t.register(id, Arc::new(h.clone()));
            handles.push(h);
        }
        let leader = loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut found = None;
            for h in &handles {
                if h.status().await.unwrap().role == Role::Leader {
                    found = Some(h.clone());
                }
            }
            if let Some(l) = found {
                break l;
            }
        };
        assert_eq!(leader.propose(Bytes::from_static(&[2])).await.unwrap(), 2);
        assert_eq!(leader.propose(Bytes::from_static(&[3])).await.unwrap(), 5);
        let commit = leader.status().await.unwrap().commit;
        tokio::time::sleep(Duration::from_millis(500)).await;
        for h in &handles {
            assert!(h.status().await.unwrap().applied >= commit);
        }
        for h in &handles {
            h.shutdown().await;
        }
    }
}
