//! The client half: [`HttpClient`] posts protobuf bodies through a
//! keep-alive connection pool, backing off (with jitter) from peers whose
//! connections fail; [`HttpRaftTransport`] is one Raft group's view of it.

mod body;
mod connector;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use raftkv_core::api::{ServiceClient, ServiceRequest, ServiceResponse};
use raftkv_core::raft::{InstallSnapshotResponse, RaftRequest};
use raftkv_core::trace::TRACEPARENT;
use raftkv_core::transport::{CallFuture, OutgoingSnapshot, Peer, SnapshotSendError, Transport, TransportError};
use raftkv_core::{GroupId, NodeId};
use raftkv_wire::frame::encode_frame;
use raftkv_wire::net::TOKEN_HEADER;
use raftkv_wire::net::{error_chain, feed_snapshot, jitter_seed, DialService, Dialer};
use raftkv_wire::net::{NetConfig, RaftRoute, Reconnect};
use raftkv_wire::trace::outgoing_traceparent;
use raftkv_wire::{pb, route_pb, snapshot_chunk_to_pb, snapshot_response_from_pb, RaftRequestPb, RaftResponsePb};
use raftkv_wire::{ServiceRequestPb, ServiceResponsePb};
use tokio::sync::{mpsc, Semaphore};

use self::body::RequestBody;
use self::connector::Connector;
use crate::error::HttpError;
use crate::wire::{path, ERROR_HEADER, PROTOBUF, STOPPED};

/// Idle connections kept per peer.
const IDLE_PER_PEER: usize = 64;
/// How long an idle pooled connection is kept (less than the server's 60 s,
/// so the client is the one to close it).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Snapshot frames queued between the store and the connection.
const QUEUED_FRAMES: usize = 2;
/// Most requests in flight to one peer (so most connections open to it);
/// more wait for one to finish. HTTP/1.1 has one request per connection.
const MAX_IN_FLIGHT_PER_PEER: usize = 64;

/// What the client keeps per peer address.
struct PeerState {
    reconnect: Reconnect,
    in_flight: Arc<Semaphore>,
    last_failure: Option<Instant>,
}

impl PeerState {
    /// A request begun at `started` failed on its connection: back off —
    /// once, however many requests in flight fail together.
    fn failed(&mut self, started: Instant) {
        if self.last_failure.is_none_or(|f| f < started) {
            let now = Instant::now();
            self.reconnect.failed(now);
            self.last_failure = Some(now);
        }
    }
}

struct Inner {
    cfg: NetConfig,
    /// The cluster token as a header value, sent with every request.
    token: Option<HeaderValue>,
    pool: Client<Connector, RequestBody>,
    tls: bool,
    peers: Mutex<HashMap<String, PeerState>>,
    seeds: AtomicU64,
}

/// Client half of the HTTP transport. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").field("tls", &self.inner.tls).finish_non_exhaustive()
    }
}

/// A reply: status, whether a RaftKV server made it and of which kind, and the body.
struct Reply {
    status: StatusCode,
    kind: Option<String>,
    body: Bytes,
}

impl HttpClient {
    /// A client with `cfg`'s deadlines, limits, backoff and TLS settings.
    pub fn new(cfg: NetConfig) -> Result<Self, HttpError> {
        let dialer = Dialer::new(&cfg, &[b"http/1.1"])?;
        let tls = dialer.is_tls();
        let pool = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(IDLE_PER_PEER)
            .build(Connector(DialService(dialer)));
        let seeds = AtomicU64::new(jitter_seed());
        // A token is printable ASCII (checked when it is made), so always a valid header value.
        let token = cfg.cluster_token.as_ref().and_then(|t| HeaderValue::from_bytes(t.as_bytes()).ok());
        Ok(Self { inner: Arc::new(Inner { cfg, token, pool, tls, peers: Mutex::new(HashMap::new()), seeds }) })
    }

    /// The Raft transport of `group`, reaching member `n` at `peers[n]` (`host:port`).
    #[must_use]
    pub fn raft(&self, group: GroupId, peers: BTreeMap<NodeId, String>) -> HttpRaftTransport {
        let peers = peers.into_iter().map(|(id, addr)| (id, (Peer::node_at(id, addr.clone()), addr))).collect();
        HttpRaftTransport { client: self.clone(), group, peers }
    }

    fn with_peer<T>(&self, addr: &str, f: impl FnOnce(&mut PeerState) -> T) -> T {
        let mut peers = self.inner.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let state = peers.entry(addr.to_string()).or_insert_with(|| {
            let seed = self.inner.seeds.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
            PeerState {
                reconnect: Reconnect::new(self.inner.cfg.backoff, seed),
                in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT_PER_PEER)),
                last_failure: None,
            }
        });
        f(state)
    }

    /// POST `body` to RPC `rpc` at `addr`, with trace context `traceparent`
    /// in a header if given; the whole exchange (and reading the reply, up to
    /// the size limit) within `deadline`, if one is given.
    async fn post(
        &self,
        peer: &Peer,
        addr: &str,
        rpc: &str,
        body: RequestBody,
        deadline: Option<Duration>,
        traceparent: Option<&str>,
    ) -> Result<Reply, TransportError> {
        let (ready, in_flight) = self.with_peer(addr, |p| (p.reconnect.may_try(Instant::now()), p.in_flight.clone()));
        if let Err(wait) = ready {
            return Err(TransportError::unreachable(peer.clone(), format!("reconnecting in {wait:?}")));
        }
        let uri = format!("http://{addr}{}", path(rpc));
        let mut request =
            Request::builder().method(Method::POST).uri(&uri).body(body).map_err(|e| {
                TransportError::unreachable(peer.clone(), format!("`{addr}` is not a valid address: {e}"))
            })?;
        request.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROTOBUF));
        if let Some(token) = &self.inner.token {
            request.headers_mut().insert(TOKEN_HEADER, token.clone());
        }
        // A trace context that is no valid header value is not sent (the call goes on without it).
        if let Some(value) = traceparent.and_then(|tp| HeaderValue::from_str(tp).ok()) {
            request.headers_mut().insert(TRACEPARENT, value);
        }
        let limit = self.inner.cfg.max_message_bytes;
        let exchange = async {
            let _permit =
                in_flight.acquire().await.map_err(|_| TransportError::unreachable(peer.clone(), "client closed"))?;
            let started = Instant::now();
            let broken = |reason: String| {
                self.with_peer(addr, |p| p.failed(started));
                TransportError::unreachable(peer.clone(), reason)
            };
            let response = self.inner.pool.request(request).await.map_err(|e| broken(error_chain(&e)))?;
            let status = response.status();
            let kind = response.headers().get(ERROR_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
            let body = match Limited::new(response.into_body(), limit).collect().await {
                Ok(body) => body.to_bytes(),
                Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                    return Err(TransportError::malformed(
                        peer.clone(),
                        format!("the reply exceeds the configured limit of {limit} bytes (max_message_bytes)"),
                    ))
                }
                Err(e) => return Err(broken(format!("the connection failed while reading the reply: {e}"))),
            };
            Ok(Reply { status, kind, body })
        };
        let reply = match deadline {
            Some(after) => tokio::time::timeout(after, exchange)
                .await
                .unwrap_or_else(|_| Err(TransportError::Timeout { peer: peer.clone(), after }))?,
            None => exchange.await?,
        };
        if reply.status == StatusCode::OK {
            self.with_peer(addr, |p| p.reconnect.succeeded());
            return Ok(reply);
        }
        let text = String::from_utf8_lossy(&reply.body).into_owned();
        Err(match reply.kind.as_deref() {
            Some(STOPPED) => TransportError::unreachable(peer.clone(), text),
            Some(_) => TransportError::rejected(peer.clone(), text),
            None => TransportError::rejected(peer.clone(), format!("HTTP {}: {text}", reply.status)),
        })
    }
}

#[async_trait]
impl ServiceClient for HttpClient {
    async fn call_service(&self, addr: &str, request: ServiceRequest) -> Result<ServiceResponse, TransportError> {
        let traceparent = outgoing_traceparent();
        let peer = Peer::addr(addr);
        let wire = ServiceRequestPb::from_core(request.clone());
        let (size, limit) = (wire.encoded_len(), self.inner.cfg.max_message_bytes);
        if size > limit {
            return Err(TransportError::TooLarge { what: request.name(), size, limit });
        }
        let rpc = wire.rpc();
        let body = RequestBody::Whole(Some(Bytes::from(wire.encode_to_vec())));
        let deadline = Some(self.inner.cfg.request_timeout);
        let reply = self.post(&peer, addr, rpc, body, deadline, traceparent.as_deref()).await?;
        let response = ServiceResponsePb::decode(rpc, reply.body)
            .and_then(ServiceResponsePb::into_core)
            .map_err(|e| TransportError::malformed(peer.clone(), e.to_string()))?;
        if !request.is_answered_by(&response) {
            return Err(TransportError::malformed(
                peer,
                format!("{} answered with another kind of response", request.name()),
            ));
        }
        Ok(response)
    }
}

/// The [`Transport`] of one Raft group over an [`HttpClient`]: one POST per
/// request, on pooled keep-alive connections; a snapshot is one POST with a
/// chunked body of length-delimited chunks.
pub struct HttpRaftTransport {
    client: HttpClient,
    group: GroupId,
    peers: BTreeMap<NodeId, (Peer, String)>,
}

impl std::fmt::Debug for HttpRaftTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRaftTransport")
            .field("group", &self.group)
            .field("peers", &self.peers.values().map(|(p, _)| p.to_string()).collect::<Vec<_>>())
            .finish()
    }
}

impl HttpRaftTransport {
    fn peer(&self, to: NodeId) -> Result<(Peer, String), TransportError> {
        self.peers
            .get(&to)
            .cloned()
            .ok_or_else(|| TransportError::unreachable(to, "no address is known for this member"))
    }
}

#[async_trait]
impl Transport for HttpRaftTransport {
    fn call(&self, from: NodeId, to: NodeId, request: RaftRequest) -> CallFuture {
        let name = request.name();
        let route = RaftRoute { group: self.group, from, to };
        // The caller's span is current only now, before the future is polled.
        let wire = RaftRequestPb::from_core(route, request).with_traceparent(outgoing_traceparent());
        let client = self.client.clone();
        let peer = self.peer(to);
        Box::pin(async move {
            let (peer, addr) = peer?;
            let limit = client.inner.cfg.max_message_bytes;
            let rpc = wire.rpc();
            let body = match wire {
                // A lone chunk: a snapshot body of one frame.
                RaftRequestPb::InstallSnapshot(chunk) => encode_frame(&chunk),
                other => Bytes::from(other.encode_to_vec()),
            };
            if body.len() > limit {
                return Err(TransportError::TooLarge { what: name, size: body.len(), limit });
            }
            let deadline = client.inner.cfg.request_timeout;
            let reply = client
                .post(&peer, &addr, &format!("raft/{rpc}"), RequestBody::Whole(Some(body)), Some(deadline), None)
                .await?;
            RaftResponsePb::decode(rpc, reply.body)
                .and_then(RaftResponsePb::into_core)
                .map_err(|e| TransportError::malformed(peer, e.to_string()))
        })
    }

    async fn send_snapshot(
        &self,
        from: NodeId,
        to: NodeId,
        snapshot: &mut OutgoingSnapshot,
    ) -> Result<InstallSnapshotResponse, SnapshotSendError> {
        // The first chunk carries the stream's trace context.
        let traceparent = Mutex::new(outgoing_traceparent());
        let (peer, addr) = self.peer(to)?;
        let cfg = &self.client.inner.cfg;
        let (idle, limit) = (cfg.snapshot_idle_timeout, cfg.max_message_bytes);
        let route = route_pb(RaftRoute { group: self.group, from, to });
        let (tx, rx) = mpsc::channel::<Bytes>(QUEUED_FRAMES);
        // The upload as a whole has no deadline (a snapshot takes as long as it
        // takes); `feed_snapshot` catches stalls.
        let upload = self.client.post(&peer, &addr, "raft/install_snapshot", RequestBody::Streamed(rx), None, None);
        let encode = |chunk| {
            let first = traceparent.lock().unwrap_or_else(PoisonError::into_inner).take();
            let frame = encode_frame(&snapshot_chunk_to_pb(Some(route.clone().with_traceparent(first)), chunk));
            let size = frame.len();
            (frame, size)
        };
        let reply = feed_snapshot(snapshot, tx, encode, upload, limit, idle, &peer).await??;
        let answer: pb::InstallSnapshotResponse = prost::Message::decode(reply.body).map_err(|e| {
            TransportError::malformed(peer.clone(), format!("cannot decode InstallSnapshotResponse: {e}"))
        })?;
        snapshot_response_from_pb(&answer).map_err(|e| TransportError::malformed(peer, e.to_string()).into())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use raftkv_wire::net::{Backoff, Reconnect};

    use super::PeerState;

    #[test]
    fn requests_failing_together_back_off_once() {
        let mut p = PeerState {
            reconnect: Reconnect::new(Backoff::default(), 1),
            in_flight: std::sync::Arc::new(tokio::sync::Semaphore::new(1)),
            last_failure: None,
        };
        let started = Instant::now();
        for _ in 0..64 {
            p.failed(started);
        }
        assert_eq!(p.reconnect.failures(), 1, "64 requests in flight on one broken connection are one failure");
        p.failed(Instant::now() + Duration::from_secs(1));
        assert_eq!(p.reconnect.failures(), 2, "a request begun after that failure counts again");
    }
}
