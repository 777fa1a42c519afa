//! The client half: [`GrpcClient`] holds one connection per peer address,
//! shared by every Raft group's traffic ([`GrpcRaftTransport`]) and by
//! service calls.

mod connection;
mod peer_channel;
mod pipeline;
mod service;
mod snapshot;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use raftkv_core::api::{ServiceClient, ServiceRequest, ServiceResponse};
use raftkv_core::raft::{InstallSnapshotResponse, RaftRequest, RaftResponse};
use raftkv_core::transport::{CallFuture, OutgoingSnapshot, Peer, SnapshotSendError, Transport, TransportError};
use raftkv_core::{GroupId, NodeId};
use raftkv_wire::net::{jitter_seed, Dialer};
use raftkv_wire::net::{NetConfig, RaftRoute};
use raftkv_wire::trace::outgoing_traceparent;
use raftkv_wire::RaftRequestPb;
use tokio::sync::{mpsc, oneshot};

use self::connection::Connection;
use self::pipeline::{CallLane, Lane, Outgoing, RaftLane};
use crate::error::GrpcError;

/// Bytes a pipelined message adds to its request (sequence number, framing).
const PIPELINE_OVERHEAD: usize = 16;

/// A lane's pipeline task to one peer, started on first use.
type Slot<L> = Mutex<Option<mpsc::UnboundedSender<Outgoing<L>>>>;

/// One peer address: its connection and its two pipelines.
struct PeerLink {
    conn: Arc<Connection>,
    raft: Slot<RaftLane>,
    calls: Slot<CallLane>,
}

impl PeerLink {
    fn new(conn: Connection) -> Self {
        Self { conn: Arc::new(conn), raft: Mutex::new(None), calls: Mutex::new(None) }
    }

    /// Queue `outgoing` on the pipeline in `slot` (starting it, or restarting
    /// it if its task ended).
    fn enqueue<L: Lane>(&self, slot: &Slot<L>, outgoing: Outgoing<L>) {
        let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = slot.get_or_insert_with(|| pipeline::spawn::<L>(self.conn.clone()));
        if let Err(mpsc::error::SendError(outgoing)) = tx.send(outgoing) {
            let tx = slot.insert(pipeline::spawn::<L>(self.conn.clone()));
            let _ = tx.send(outgoing);
        }
    }
}

struct Inner {
    cfg: NetConfig,
    dialer: Dialer,
    links: Mutex<HashMap<String, Arc<PeerLink>>>,
    seeds: AtomicU64,
}

/// Client half of the gRPC transport: one HTTP/2 connection per peer
/// address, opened on first use and reused by every call; reconnects after
/// failures with exponential backoff and jitter. Cheap to clone.
#[derive(Clone)]
pub struct GrpcClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GrpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcClient").field("tls", &self.inner.dialer.is_tls()).finish_non_exhaustive()
    }
}

impl GrpcClient {
    /// A client with `cfg`'s deadlines, limits, backoff and TLS settings.
    pub fn new(cfg: NetConfig) -> Result<Self, GrpcError> {
        let dialer = Dialer::new(&cfg, &[b"h2"])?;
        let seeds = AtomicU64::new(jitter_seed());
        Ok(Self { inner: Arc::new(Inner { cfg, dialer, links: Mutex::new(HashMap::new()), seeds }) })
    }

    fn link(&self, addr: &str) -> Arc<PeerLink> {
        let mut links = self.inner.links.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(link) = links.get(addr) {
            return link.clone();
        }
        let seed = self.inner.seeds.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        let conn = Connection::new(addr, self.inner.dialer.clone(), self.inner.cfg.clone(), seed);
        links.entry(addr.to_string()).or_insert_with(|| Arc::new(PeerLink::new(conn))).clone()
    }

    /// The Raft transport of `group`, reaching member `n` at `peers[n]` (`host:port`).
    #[must_use]
    pub fn raft(&self, group: GroupId, peers: BTreeMap<NodeId, String>) -> GrpcRaftTransport {
        let links =
            peers.into_iter().map(|(id, addr)| (id, (Peer::node_at(id, addr.clone()), self.link(&addr)))).collect();
        GrpcRaftTransport { group, links, cfg: self.inner.cfg.clone() }
    }
}

#[async_trait]
impl ServiceClient for GrpcClient {
    async fn call_service(&self, addr: &str, request: ServiceRequest) -> Result<ServiceResponse, TransportError> {
        let traceparent = outgoing_traceparent();
        let link = self.link(addr);
        if service::streamed(&request) {
            service::call_streamed(&link, request, traceparent).await
        } else {
            service::call(&link.conn, request, traceparent).await
        }
    }
}

/// The [`Transport`] of one Raft group over a [`GrpcClient`]: appends,
/// heartbeats, votes and transfers go on the peer's ordered pipeline,
/// snapshots as a client stream.
pub struct GrpcRaftTransport {
    group: GroupId,
    links: BTreeMap<NodeId, (Peer, Arc<PeerLink>)>,
    cfg: NetConfig,
}

impl std::fmt::Debug for GrpcRaftTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcRaftTransport")
            .field("group", &self.group)
            .field("peers", &self.links.values().map(|(p, _)| p.to_string()).collect::<Vec<_>>())
            .finish()
    }
}

impl GrpcRaftTransport {
    fn link(&self, to: NodeId) -> Result<&(Peer, Arc<PeerLink>), TransportError> {
        self.links.get(&to).ok_or_else(|| TransportError::unreachable(to, "no address is known for this member"))
    }
}

fn ready(result: Result<RaftResponse, TransportError>) -> CallFuture {
    Box::pin(std::future::ready(result))
}

#[async_trait]
impl Transport for GrpcRaftTransport {
    fn call(&self, from: NodeId, to: NodeId, request: RaftRequest) -> CallFuture {
        let (peer, link) = match self.link(to) {
            Ok(l) => l.clone(),
            Err(e) => return ready(Err(e)),
        };
        let route = RaftRoute { group: self.group, from, to };
        // The caller's span is current only now, before the future is polled.
        let traceparent = outgoing_traceparent();
        if let RaftRequest::InstallSnapshot(chunk) = request {
            return Box::pin(async move {
                snapshot::send_one(&link.conn, peer, route, chunk, traceparent).await.map(RaftResponse::InstallSnapshot)
            });
        }
        let name = request.name();
        let message = RaftRequestPb::from_core(route, request).with_traceparent(traceparent);
        let size = message.encoded_len() + PIPELINE_OVERHEAD;
        let limit = self.cfg.max_message_bytes;
        if size > limit {
            return ready(Err(TransportError::TooLarge { what: name, size, limit }));
        }
        let rpc = message.rpc();
        let (reply, answer) = oneshot::channel();
        link.enqueue(&link.raft, Outgoing::<RaftLane> { peer: peer.clone(), rpc, message, size, reply });
        let deadline = self.cfg.request_timeout;
        Box::pin(async move {
            match tokio::time::timeout(deadline, answer).await {
                Ok(Ok(Ok(response))) => {
                    response.into_core().map_err(|e| TransportError::malformed(peer, e.to_string()))
                }
                Ok(Ok(Err(e))) => Err(e),
                Ok(Err(_)) => Err(TransportError::unreachable(peer, "the connection task ended")),
                Err(_) => Err(TransportError::Timeout { peer, after: deadline }),
            }
        })
    }

    async fn send_snapshot(
        &self,
        from: NodeId,
        to: NodeId,
        snapshot: &mut OutgoingSnapshot,
    ) -> Result<InstallSnapshotResponse, SnapshotSendError> {
        let traceparent = outgoing_traceparent();
        let (peer, link) = self.link(to)?.clone();
        snapshot::send(&link.conn, peer, RaftRoute { group: self.group, from, to }, snapshot, traceparent).await
    }
}
