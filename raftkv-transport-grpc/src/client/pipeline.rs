//! The pipelines to one peer: long-lived bidirectional streams that carry
//! many calls in flight (up to a cap in messages and bytes), each numbered
//! and matched to its caller by sequence number. Two lanes use it: Raft
//! messages (`Raft.Pipeline`, in the order `call` was invoked) and client
//! service calls (`Calls.Stream`, answered as each is ready).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::peer_channel::PeerChannel;
use futures::future::BoxFuture;
use raftkv_core::transport::{Peer, TransportError};
use raftkv_wire::pb::{self, calls_client::CallsClient, pipeline_error, raft_client::RaftClient};
use raftkv_wire::{RaftRequestPb, RaftResponsePb, ServiceRequestPb, ServiceResponsePb};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Status, Streaming};

use super::connection::Connection;
use crate::status;

/// What travels on one kind of pipeline.
pub(crate) trait Lane: Send + 'static {
    /// What a caller hands in; framed once numbered.
    type Message: Send + 'static;
    /// A numbered frame sent.
    type Request: Send + 'static;
    /// A numbered frame received.
    type Reply: Send + 'static;
    /// What the caller gets back.
    type Answer: Send + 'static;
    /// `message` as frame `seq` (an error: it cannot travel on this lane).
    fn frame(message: Self::Message, seq: u64) -> Result<Self::Request, String>;
    /// The number of the call `reply` answers.
    fn seq(reply: &Self::Reply) -> u64;
    /// The caller's answer in `reply` to the `rpc` sent to `peer`.
    fn answer(rpc: &'static str, peer: &Peer, reply: Self::Reply) -> Result<Self::Answer, TransportError>;
    /// Open the stream on `channel`.
    fn open(
        channel: PeerChannel,
        limit: usize,
        out: UnboundedReceiverStream<Self::Request>,
    ) -> BoxFuture<'static, Result<tonic::Response<Streaming<Self::Reply>>, Status>>;
}

/// A pipeline failure reported in a reply, as the caller's error.
fn reported(peer: &Peer, e: pb::PipelineError) -> TransportError {
    match pipeline_error::Code::try_from(e.code) {
        Ok(pipeline_error::Code::Stopped) => TransportError::unreachable(peer.clone(), e.message),
        _ => TransportError::rejected(peer.clone(), e.message),
    }
}

/// Raft messages (appends, heartbeats, votes, transfers) on `Raft.Pipeline`.
pub(crate) struct RaftLane;

impl Lane for RaftLane {
    type Message = RaftRequestPb;
    type Request = pb::PipelineRequest;
    type Reply = pb::PipelineReply;
    type Answer = RaftResponsePb;

    fn frame(message: RaftRequestPb, seq: u64) -> Result<pb::PipelineRequest, String> {
        message.into_pipeline(seq).map_err(|_| "a snapshot chunk cannot be pipelined".to_string())
    }

    fn seq(reply: &pb::PipelineReply) -> u64 {
        reply.seq
    }

    fn answer(rpc: &'static str, peer: &Peer, reply: pb::PipelineReply) -> Result<RaftResponsePb, TransportError> {
        match RaftResponsePb::from_pipeline(reply.body) {
            Ok(Ok(response)) if response.rpc() == rpc => Ok(response),
            Ok(Ok(response)) => Err(TransportError::malformed(
                peer.clone(),
                format!("{rpc} answered with a {} response", response.rpc()),
            )),
            Ok(Err(e)) => Err(reported(peer, e)),
            Err(e) => Err(TransportError::malformed(peer.clone(), e.to_string())),
        }
    }

    fn open(
        channel: PeerChannel,
        limit: usize,
        out: UnboundedReceiverStream<pb::PipelineRequest>,
    ) -> BoxFuture<'static, Result<tonic::Response<Streaming<pb::PipelineReply>>, Status>> {
        let mut client = RaftClient::new(channel).max_decoding_message_size(limit).max_encoding_message_size(limit);
        Box::pin(async move { client.pipeline(out).await })
    }
}

/// Client service calls (KV, controller, status) on `Calls.Stream`.
pub(crate) struct CallLane;

impl Lane for CallLane {
    type Message = (ServiceRequestPb, Option<String>);
    type Request = pb::CallRequest;
    type Reply = pb::CallReply;
    type Answer = ServiceResponsePb;

    fn frame((message, traceparent): Self::Message, seq: u64) -> Result<pb::CallRequest, String> {
        message.into_call(seq, traceparent).map_err(|m| format!("{} cannot travel on the call stream", m.rpc()))
    }

    fn seq(reply: &pb::CallReply) -> u64 {
        reply.seq
    }

    fn answer(_: &'static str, peer: &Peer, reply: pb::CallReply) -> Result<ServiceResponsePb, TransportError> {
        match ServiceResponsePb::from_call(reply.body) {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(reported(peer, e)),
            Err(e) => Err(TransportError::malformed(peer.clone(), e.to_string())),
        }
    }

    fn open(
        channel: PeerChannel,
        limit: usize,
        out: UnboundedReceiverStream<pb::CallRequest>,
    ) -> BoxFuture<'static, Result<tonic::Response<Streaming<pb::CallReply>>, Status>> {
        let mut client = CallsClient::new(channel).max_decoding_message_size(limit).max_encoding_message_size(limit);
        Box::pin(async move { client.stream(out).await })
    }
}

/// Most messages of one stream awaiting their answers; more fail at once.
const MAX_IN_FLIGHT: usize = 4096;
/// Most bytes of messages awaiting their answers (or the message limit, if
/// larger); more fail at once.
const MAX_IN_FLIGHT_BYTES: usize = 64 << 20;

/// The answer to one pipelined message.
pub(crate) type Answer<L> = Result<<L as Lane>::Answer, TransportError>;

/// A message waiting to go out.
pub(crate) struct Outgoing<L: Lane> {
    pub(crate) peer: Peer,
    pub(crate) rpc: &'static str,
    pub(crate) message: L::Message,
    /// Encoded size.
    pub(crate) size: usize,
    pub(crate) reply: oneshot::Sender<Answer<L>>,
}

/// A message sent and not yet answered (its caller may have given up: it
/// still counts, until its answer comes or the stream is reset).
struct Pending<L: Lane> {
    peer: Peer,
    rpc: &'static str,
    size: usize,
    sent: Instant,
    reply: oneshot::Sender<Answer<L>>,
}

/// What one stream has in flight.
struct InFlight<L: Lane> {
    pending: HashMap<u64, Pending<L>>,
    bytes: usize,
}

impl<L: Lane> Default for InFlight<L> {
    fn default() -> Self {
        Self { pending: HashMap::new(), bytes: 0 }
    }
}

impl<L: Lane> InFlight<L> {
    fn insert(&mut self, seq: u64, p: Pending<L>) {
        self.bytes += p.size;
        self.pending.insert(seq, p);
    }

    fn remove(&mut self, seq: u64) -> Option<Pending<L>> {
        let p = self.pending.remove(&seq)?;
        self.bytes -= p.size;
        Some(p)
    }

    fn oldest(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.sent).min()
    }
}

/// Start the pipeline task of `conn`; it ends when the returned sender is dropped.
pub(crate) fn spawn<L: Lane>(conn: Arc<Connection>) -> mpsc::UnboundedSender<Outgoing<L>> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run::<L>(conn, rx));
    tx
}

fn fail_queued<L: Lane>(rx: &mut mpsc::UnboundedReceiver<Outgoing<L>>, error: &TransportError) {
    while let Ok(m) = rx.try_recv() {
        let _ = m.reply.send(Err(retarget(error, m.peer)));
    }
}

/// `error`, naming `peer` instead of the peer it was made for.
fn retarget(error: &TransportError, peer: Peer) -> TransportError {
    match error {
        TransportError::Unreachable { reason, .. } => TransportError::unreachable(peer, reason.clone()),
        TransportError::Timeout { after, .. } => TransportError::Timeout { peer, after: *after },
        TransportError::Rejected { reason, .. } => TransportError::rejected(peer, reason.clone()),
        TransportError::Malformed { reason, .. } => TransportError::malformed(peer, reason.clone()),
        other => other.clone(),
    }
}

async fn next_reply<R>(inbound: &mut Option<Streaming<R>>) -> Result<Option<R>, tonic::Status> {
    match inbound {
        Some(s) => s.message().await,
        None => std::future::pending().await,
    }
}

async fn run<L: Lane>(conn: Arc<Connection>, mut rx: mpsc::UnboundedReceiver<Outgoing<L>>) {
    let deadline = conn.cfg().request_timeout;
    let limit = conn.cfg().max_message_bytes;
    let stuck_after = deadline * 2;
    let max_bytes = MAX_IN_FLIGHT_BYTES.max(limit);
    let addr_peer = Peer::addr(conn.addr());
    'streams: loop {
        let Some(first) = rx.recv().await else { return };
        let (channel, generation) = match conn.channel(&first.peer).await {
            Ok(open) => open,
            Err(e) => {
                let _ = first.reply.send(Err(e.clone()));
                fail_queued(&mut rx, &e);
                continue;
            }
        };
        let (out, out_rx) = mpsc::unbounded_channel::<L::Request>();
        let mut in_flight = InFlight::<L>::default();
        let mut seq = 0u64;
        let mut last_reply = Instant::now();
        let mut forward = |m: Outgoing<L>, in_flight: &mut InFlight<L>| {
            if m.reply.is_closed() {
                return;
            }
            if in_flight.pending.len() >= MAX_IN_FLIGHT || in_flight.bytes + m.size > max_bytes {
                let full = format!(
                    "the pipeline is full ({} messages, {} bytes awaiting answers)",
                    in_flight.pending.len(),
                    in_flight.bytes
                );
                let _ = m.reply.send(Err(TransportError::unreachable(m.peer, full)));
                return;
            }
            seq += 1;
            match L::frame(m.message, seq) {
                Ok(request) => {
                    let p = Pending { peer: m.peer, rpc: m.rpc, size: m.size, sent: Instant::now(), reply: m.reply };
                    in_flight.insert(seq, p);
                    // The stream is polled by the connection; a send fails only once it is gone,
                    // and then the pending answer fails below.
                    let _ = out.send(request);
                }
                Err(why) => {
                    let _ = m.reply.send(Err(TransportError::malformed(m.peer, why)));
                }
            }
        };
        forward(first, &mut in_flight);
        let mut open = L::open(channel, limit, UnboundedReceiverStream::new(out_rx));
        let mut inbound: Option<Streaming<L::Reply>> = None;
        let mut sweep = tokio::time::interval(Duration::from_millis(100).min(deadline));
        let failure: TransportError = loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => forward(m, &mut in_flight),
                    None => return,
                },
                opened = &mut open, if inbound.is_none() => match opened {
                    Ok(response) => {
                        inbound = Some(response.into_inner());
                        last_reply = Instant::now();
                    }
                    Err(s) => {
                        if status::connection_failed(&s) {
                            conn.broken(generation);
                        }
                        break status::to_transport_error(addr_peer.clone(), &s, deadline);
                    }
                },
                reply = next_reply(&mut inbound) => match reply {
                    Ok(Some(r)) => {
                        last_reply = Instant::now();
                        if let Some(p) = in_flight.remove(L::seq(&r)) {
                            let a = L::answer(p.rpc, &p.peer, r);
                            if a.is_ok() {
                                conn.succeeded();
                            }
                            let _ = p.reply.send(a);
                        }
                    }
                    Ok(None) => {
                        conn.broken(generation);
                        break TransportError::unreachable(addr_peer.clone(), "the peer closed the pipeline");
                    }
                    Err(s) => {
                        if status::connection_failed(&s) {
                            conn.broken(generation);
                        }
                        break status::to_transport_error(addr_peer.clone(), &s, deadline);
                    }
                },
                _ = sweep.tick() => {
                    // Stalled: nothing answered for a while although something waits
                    // (a slow member alone does not stall the others' answers).
                    let waiting = in_flight.oldest().is_some_and(|t| t.elapsed() > stuck_after);
                    if waiting && last_reply.elapsed() > stuck_after {
                        conn.broken(generation);
                        break TransportError::Timeout { peer: addr_peer.clone(), after: deadline };
                    }
                }
            }
        };
        tracing::debug!(addr = %conn.addr(), error = %failure, in_flight = in_flight.pending.len(), "pipeline stream ended");
        for (_, p) in in_flight.pending.drain() {
            let _ = p.reply.send(Err(retarget(&failure, p.peer)));
        }
        continue 'streams;
    }
}
