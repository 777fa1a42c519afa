//! The ordered pipeline to one peer: a long-lived bidirectional stream that
//! carries appends, heartbeats, votes and transfers in the order `call` was
//! invoked, many in flight (up to a cap in messages and bytes), and matches
//! each answer to its caller by sequence number.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raftkv_core::transport::{Peer, TransportError};
use raftkv_wire::pb::{self, pipeline_error, raft_client::RaftClient};
use raftkv_wire::{RaftRequestPb, RaftResponsePb};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Streaming;

use super::connection::Connection;
use crate::status;

/// The answer to one pipelined message.
pub(crate) type Answer = Result<RaftResponsePb, TransportError>;

/// Most messages of one stream awaiting their answers; more fail at once.
const MAX_IN_FLIGHT: usize = 4096;
/// Most bytes of messages awaiting their answers (or the message limit, if
/// larger); more fail at once.
const MAX_IN_FLIGHT_BYTES: usize = 64 << 20;

/// A message waiting to go out.
pub(crate) struct Outgoing {
    pub(crate) peer: Peer,
    pub(crate) rpc: &'static str,
    pub(crate) message: RaftRequestPb,
    /// Encoded size.
    pub(crate) size: usize,
    pub(crate) reply: oneshot::Sender<Answer>,
}

/// A message sent and not yet answered (its caller may have given up: it
/// still counts, until its answer comes or the stream is reset).
struct Pending {
    peer: Peer,
    rpc: &'static str,
    size: usize,
    sent: Instant,
    reply: oneshot::Sender<Answer>,
}

/// What one stream has in flight.
#[derive(Default)]
struct InFlight {
    pending: HashMap<u64, Pending>,
    bytes: usize,
}

impl InFlight {
    fn insert(&mut self, seq: u64, p: Pending) {
        self.bytes += p.size;
        self.pending.insert(seq, p);
    }

    fn remove(&mut self, seq: u64) -> Option<Pending> {
        let p = self.pending.remove(&seq)?;
        self.bytes -= p.size;
        Some(p)
    }

    fn oldest(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.sent).min()
    }
}

/// Start the pipeline task of `conn`; it ends when the returned sender is dropped.
pub(crate) fn spawn(conn: Arc<Connection>) -> mpsc::UnboundedSender<Outgoing> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(conn, rx));
    tx
}

fn fail_queued(rx: &mut mpsc::UnboundedReceiver<Outgoing>, error: &TransportError) {
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

async fn next_reply(
    inbound: &mut Option<Streaming<pb::PipelineReply>>,
) -> Result<Option<pb::PipelineReply>, tonic::Status> {
    match inbound {
        Some(s) => s.message().await,
        None => std::future::pending().await,
    }
}

fn answer(p: &Pending, body: Option<pb::pipeline_reply::Body>) -> Answer {
    match RaftResponsePb::from_pipeline(body) {
        Ok(Ok(response)) if response.rpc() == p.rpc => Ok(response),
        Ok(Ok(response)) => Err(TransportError::malformed(
            p.peer.clone(),
            format!("{} answered with a {} response", p.rpc, response.rpc()),
        )),
        Ok(Err(e)) => Err(match pipeline_error::Code::try_from(e.code) {
            Ok(pipeline_error::Code::Stopped) => TransportError::unreachable(p.peer.clone(), e.message),
            _ => TransportError::rejected(p.peer.clone(), e.message),
        }),
        Err(e) => Err(TransportError::malformed(p.peer.clone(), e.to_string())),
    }
}

async fn run(conn: Arc<Connection>, mut rx: mpsc::UnboundedReceiver<Outgoing>) {
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
        let mut client = RaftClient::new(channel).max_decoding_message_size(limit).max_encoding_message_size(limit);
        let (out, out_rx) = mpsc::unbounded_channel::<pb::PipelineRequest>();
        let mut in_flight = InFlight::default();
        let mut seq = 0u64;
        let mut last_reply = Instant::now();
        let mut forward = |m: Outgoing, in_flight: &mut InFlight| {
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
            match m.message.into_pipeline(seq) {
                Ok(request) => {
                    let p = Pending { peer: m.peer, rpc: m.rpc, size: m.size, sent: Instant::now(), reply: m.reply };
                    in_flight.insert(seq, p);
                    // The stream is polled by the connection; a send fails only once it is gone,
                    // and then the pending answer fails below.
                    let _ = out.send(request);
                }
                Err(_) => {
                    let _ =
                        m.reply.send(Err(TransportError::malformed(m.peer, "a snapshot chunk cannot be pipelined")));
                }
            }
        };
        forward(first, &mut in_flight);
        let mut open = Box::pin(client.pipeline(UnboundedReceiverStream::new(out_rx)));
        let mut inbound: Option<Streaming<pb::PipelineReply>> = None;
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
                        if let Some(p) = in_flight.remove(r.seq) {
                            let a = answer(&p, r.body);
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
