//! Service calls (KV, controller, migration, admin) to a server address:
//! the small ones multiplexed on the call stream, migration as unary calls.

use super::peer_channel::PeerChannel;
use raftkv_core::api::{ServiceRequest, ServiceResponse};
use raftkv_core::trace::TRACEPARENT;
use raftkv_core::transport::{Peer, TransportError};
use raftkv_wire::pb::{admin_client, ctrler_client, kv_client, migration_client};
use raftkv_wire::{ServiceRequestPb, ServiceResponsePb};
use tokio::sync::oneshot;
use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

use super::connection::Connection;
use super::pipeline::{CallLane, Outgoing};
use super::PeerLink;
use crate::status;

/// How every unary service request goes out: its deadline and trace context.
struct Unary<'a> {
    limit: usize,
    deadline: std::time::Duration,
    traceparent: Option<&'a str>,
}

impl Unary<'_> {
    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.deadline);
        // A trace context that is no valid metadata value is not sent (the call goes on without it).
        if let Some(value) = self.traceparent.and_then(|tp| MetadataValue::try_from(tp).ok()) {
            request.metadata_mut().insert(TRACEPARENT, value);
        }
        request
    }
}

macro_rules! call {
    ($client:path, $method:ident, $channel:expr, $outgoing:expr, $message:expr, $out:ident) => {{
        let limit = $outgoing.limit;
        let mut client = <$client>::new($channel).max_decoding_message_size(limit).max_encoding_message_size(limit);
        client.$method($outgoing.request($message)).await.map(|r| ServiceResponsePb::$out(r.into_inner()))
    }};
}

async fn dispatch(channel: PeerChannel, wire: ServiceRequestPb, out: &Unary<'_>) -> Result<ServiceResponsePb, Status> {
    use ServiceRequestPb as W;
    match wire {
        W::Get(m) => call!(kv_client::KvClient<PeerChannel>, get, channel, out, m, Kv),
        W::Put(m) => call!(kv_client::KvClient<PeerChannel>, put, channel, out, m, Kv),
        W::Append(m) => call!(kv_client::KvClient<PeerChannel>, append, channel, out, m, Kv),
        W::Delete(m) => call!(kv_client::KvClient<PeerChannel>, delete, channel, out, m, Kv),
        W::Join(m) => call!(ctrler_client::CtrlerClient<PeerChannel>, join, channel, out, m, Ctrl),
        W::Leave(m) => call!(ctrler_client::CtrlerClient<PeerChannel>, leave, channel, out, m, Ctrl),
        W::Move(m) => call!(ctrler_client::CtrlerClient<PeerChannel>, r#move, channel, out, m, Ctrl),
        W::Query(m) => call!(ctrler_client::CtrlerClient<PeerChannel>, query, channel, out, m, Ctrl),
        W::PullShards(m) => {
            call!(migration_client::MigrationClient<PeerChannel>, pull_shards, channel, out, m, PullShards)
        }
        W::DeleteShards(m) => {
            call!(migration_client::MigrationClient<PeerChannel>, delete_shards, channel, out, m, DeleteShards)
        }
        W::Status(m) => call!(admin_client::AdminClient<PeerChannel>, status, channel, out, m, Status),
    }
}

/// Bytes a call stream frame adds to its message (number, framing, field tags).
const CALL_FRAME_OVERHEAD: usize = 24;

/// Whether `request` goes on the call stream (the small, frequent calls);
/// migration's bulk transfers go as unary calls of their own.
pub(crate) fn streamed(request: &ServiceRequest) -> bool {
    !matches!(request, ServiceRequest::PullShards(_) | ServiceRequest::DeleteShards(_))
}

/// `request`'s wire form, if within the message limit.
fn outgoing(request: &ServiceRequest, limit: usize) -> Result<ServiceRequestPb, TransportError> {
    let wire = ServiceRequestPb::from_core(request.clone());
    let size = wire.encoded_len();
    if size > limit {
        return Err(TransportError::TooLarge { what: request.name(), size, limit });
    }
    Ok(wire)
}

/// The checked answer to `request` from `peer`.
fn checked(request: &ServiceRequest, peer: Peer, answer: ServiceResponsePb) -> Result<ServiceResponse, TransportError> {
    let response = answer.into_core().map_err(|e| TransportError::malformed(peer.clone(), e.to_string()))?;
    if !request.is_answered_by(&response) {
        return Err(TransportError::malformed(
            peer,
            format!("{} answered with another kind of response", request.name()),
        ));
    }
    Ok(response)
}

/// Send `request` with trace context `traceparent` on the call stream to
/// `link`'s server (shared with every other caller) and wait for its answer.
pub(crate) async fn call_streamed(
    link: &PeerLink,
    request: ServiceRequest,
    traceparent: Option<String>,
) -> Result<ServiceResponse, TransportError> {
    let peer = Peer::addr(link.conn.addr());
    let (deadline, limit) = (link.conn.cfg().request_timeout, link.conn.cfg().max_message_bytes);
    let wire = outgoing(&request, limit)?;
    // The frame adds its number, framing and the trace context.
    let size = wire.encoded_len() + CALL_FRAME_OVERHEAD + traceparent.as_ref().map_or(0, String::len);
    if size > limit {
        return Err(TransportError::TooLarge { what: request.name(), size, limit });
    }
    let (reply, answer) = oneshot::channel();
    let rpc = wire.rpc();
    link.enqueue(
        &link.calls,
        Outgoing::<CallLane> { peer: peer.clone(), rpc, message: (wire, traceparent), size, reply },
    );
    let answer = match tokio::time::timeout(deadline, answer).await {
        Ok(Ok(answer)) => answer?,
        Ok(Err(_)) => return Err(TransportError::unreachable(peer, "the connection task ended")),
        Err(_) => return Err(TransportError::Timeout { peer, after: deadline }),
    };
    checked(&request, peer, answer)
}

/// Send `request` with trace context `traceparent` to the server behind
/// `conn` as a unary call and wait for its response.
pub(crate) async fn call(
    conn: &Connection,
    request: ServiceRequest,
    traceparent: Option<String>,
) -> Result<ServiceResponse, TransportError> {
    let peer = Peer::addr(conn.addr());
    let (deadline, limit) = (conn.cfg().request_timeout, conn.cfg().max_message_bytes);
    let wire = outgoing(&request, limit)?;
    let attempt = async {
        let (channel, generation) = conn.channel(&peer).await?;
        let out = Unary { limit, deadline, traceparent: traceparent.as_deref() };
        match dispatch(channel, wire, &out).await {
            Ok(answer) => Ok(answer),
            Err(s) => {
                if status::connection_failed(&s) {
                    conn.broken(generation);
                }
                Err(status::to_transport_error(peer.clone(), &s, deadline))
            }
        }
    };
    let answer = tokio::time::timeout(deadline, attempt)
        .await
        .unwrap_or_else(|_| Err(TransportError::Timeout { peer: peer.clone(), after: deadline }))?;
    let response = checked(&request, peer, answer)?;
    conn.succeeded();
    Ok(response)
}
