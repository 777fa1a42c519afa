//! One HTTP request: route it by path, decode its protobuf body (or, for a
//! snapshot, its stream of length-delimited chunks), deliver it through
//! [`Routes`], and encode the answer — or reply with an error naming what
//! was wrong.

use std::convert::Infallible;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use raftkv_core::trace::TRACEPARENT;
use raftkv_wire::frame::FrameDecoder;
use raftkv_wire::net::{Budgets, ConnInfo, Pool, RawBody};
use raftkv_wire::net::{Credentials, RouteError, Routes, TOKEN_HEADER};
use raftkv_wire::trace::{
    accept_traceparent, raft_rpc_span, receive_snapshot, service_rpc_span, snapshot_chunk_from_pb_traced, TracedChunk,
};
use raftkv_wire::{
    pb, snapshot_response_to_pb, DecodeError, RaftRequestPb, RaftResponsePb, ServiceRequestPb, ServiceResponsePb,
};
use tracing::Instrument;

use crate::wire::{error, ok, rpc_of, STOPPED};

/// What every request handler needs.
pub(crate) struct Context {
    pub(crate) routes: Routes,
    /// Largest Raft message.
    pub(crate) limit: usize,
    /// Largest client (and migration) request.
    pub(crate) client_limit: usize,
    /// Bytes partial requests may hold, for clients and for peers.
    pub(crate) budgets: Budgets,
    pub(crate) body_timeout: Duration,
    pub(crate) snapshot_idle: Duration,
}

type Reply = Response<Full<Bytes>>;

/// What one request may hold and who sent it.
struct Admitted<'a> {
    creds: &'a Credentials,
    /// The byte pools its body draws on: its connection's, then its kind's.
    pools: Vec<Pool>,
}

pub(crate) async fn handle(
    ctx: &Context,
    conn: &ConnInfo,
    conn_budget: &Pool,
    request: Request<Incoming>,
) -> Result<Reply, Infallible> {
    let token = request.headers().get(TOKEN_HEADER).map(|v| v.as_bytes().to_vec());
    let creds = conn.credentials(token.as_deref());
    let caller = ctx.routes.caller(&creds);
    let peer = caller.is_peer();
    let _in_progress = match conn.conn.request(peer) {
        Ok(guard) => guard,
        Err(e) => return Ok(error(StatusCode::SERVICE_UNAVAILABLE, "too_many_connections", e.to_string())),
    };
    if !peer {
        let path = request.uri().path();
        if path.starts_with("/raft/") || path.starts_with("/migration/") {
            let e = RouteError::Unauthorized {
                what: path.trim_start_matches('/').to_string(),
                needs: "the cluster token or a member's certificate".into(),
                caller: caller.describe(),
            };
            return Ok(route_error(&e));
        }
    }
    let admitted = Admitted { creds: &creds, pools: vec![conn_budget.clone(), ctx.budgets.pool(peer)] };
    Ok(dispatch(ctx, &admitted, request).await.unwrap_or_else(|refusal| refusal))
}

fn route_error(e: &RouteError) -> Reply {
    match e {
        RouteError::Stopped { .. } | RouteError::ShuttingDown => {
            error(StatusCode::SERVICE_UNAVAILABLE, STOPPED, e.to_string())
        }
        RouteError::UnknownMember { .. } | RouteError::NoService => {
            error(StatusCode::NOT_FOUND, "not_found", e.to_string())
        }
        RouteError::Unauthorized { .. } => error(StatusCode::FORBIDDEN, "unauthorized", e.to_string()),
        _ => error(StatusCode::BAD_REQUEST, "bad_stream", e.to_string()),
    }
}

fn decode_error(e: &DecodeError) -> Reply {
    match e {
        DecodeError::UnknownRpc(_) => error(StatusCode::NOT_FOUND, "unknown_rpc", e.to_string()),
        _ => error(StatusCode::BAD_REQUEST, "malformed", e.to_string()),
    }
}

/// The whole body of a request, at most `limit` bytes, drawing on `pools`
/// while it arrives.
async fn read_body(ctx: &Context, body: Incoming, limit: usize, pools: &[Pool]) -> Result<Bytes, Reply> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("request body exceeds the limit of {limit} bytes for this request"),
        )
    };
    // A declared length over the limit is refused before it waits for budget.
    if hyper::body::Body::size_hint(&body).exact().is_some_and(|n| n > limit as u64) {
        tokio::spawn(drain(body, ctx.body_timeout));
        return Err(too_large());
    }
    let mut body = RawBody::new(body, pools.to_vec(), false);
    let mut collected = BytesMut::new();
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("cannot read the request body: {e}"))?;
            if let Ok(data) = frame.into_data() {
                if collected.len() + data.len() > limit {
                    return Ok(false);
                }
                collected.extend_from_slice(&data);
            }
        }
        Ok(true)
    };
    match tokio::time::timeout(ctx.body_timeout, read).await {
        Ok(Ok(true)) => Ok(collected.freeze()),
        Ok(Ok(false)) => {
            drop(collected);
            tokio::spawn(drain(body.into_inner(), ctx.body_timeout));
            Err(too_large())
        }
        Ok(Err(reason)) => Err(error(StatusCode::BAD_REQUEST, "bad_body", reason)),
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!("the request body did not arrive within {:?}", ctx.body_timeout),
        )),
    }
}

async fn dispatch(ctx: &Context, admitted: &Admitted<'_>, request: Request<Incoming>) -> Result<Reply, Reply> {
    let creds = admitted.creds;
    if request.method() != Method::POST {
        return Err(error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method",
            format!("{} is not allowed; RPCs are POST", request.method()),
        ));
    }
    let rpc = rpc_of(request.uri().path()).map_err(|m| error(StatusCode::NOT_FOUND, "unknown_rpc", m))?;
    let (parts, body) = request.into_parts();
    match rpc.split_once('/') {
        Some(("raft", "install_snapshot")) => {
            snapshot(ctx, creds, RawBody::new(body, admitted.pools.clone(), true)).await
        }
        Some(("raft", method)) => {
            let bytes = read_body(ctx, body, ctx.limit, &admitted.pools).await?;
            let mut wire = RaftRequestPb::decode(method, bytes).map_err(|e| decode_error(&e))?;
            let traceparent = wire.take_traceparent();
            let (route, request) = wire.into_core().map_err(|e| decode_error(&e))?;
            let span = raft_rpc_span(route, &request, traceparent.as_deref());
            let answer = span.in_scope(|| ctx.routes.submit(creds, route, request)).map_err(|e| route_error(&e))?;
            let response = answer.instrument(span).await.map_err(|e| route_error(&e))?;
            Ok(ok(RaftResponsePb::from_core(response).encode_to_vec()))
        }
        _ => {
            let bytes = read_body(ctx, body, ctx.client_limit, &admitted.pools).await?;
            let request = ServiceRequestPb::decode(&rpc, bytes)
                .and_then(ServiceRequestPb::into_core)
                .map_err(|e| decode_error(&e))?;
            let span = service_rpc_span(&request, traceparent_in(&parts.headers));
            let response =
                ctx.routes.serve(creds, request.clone()).instrument(span).await.map_err(|e| route_error(&e))?;
            if !request.is_answered_by(&response) {
                return Err(error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "mismatch",
                    format!("the handler answered {rpc} with another kind of response"),
                ));
            }
            Ok(ok(ServiceResponsePb::from_core(response).encode_to_vec()))
        }
    }
}

/// The trace context a request's header carries, if it is text within
/// bounds; anything else is ignored.
fn traceparent_in(headers: &HeaderMap) -> Option<&str> {
    headers.get(TRACEPARENT).and_then(|v| v.to_str().ok()).and_then(accept_traceparent)
}

type Chunk = Result<TracedChunk, String>;

/// A snapshot body being read: the body and the frames buffered from it;
/// `None` once it ended or broke.
type BodyState = Option<(SnapshotBody, FrameDecoder)>;

/// A snapshot body: each frame draws on the budgets until the next is read.
type SnapshotBody = RawBody<Incoming>;

/// The chunks of a snapshot body, one frame each, decoded as they arrive.
/// Borrows the body, so that what is left of it can be drained afterwards.
fn chunks(state: &mut BodyState, idle: Duration) -> impl futures::Stream<Item = Chunk> + Send + '_ {
    futures::stream::unfold(state, move |state| async move {
        let (body, frames) = state.as_mut()?;
        loop {
            match frames.next_frame() {
                Ok(Some(frame)) => {
                    let chunk = prost::Message::decode(frame)
                        .map_err(|e: prost::DecodeError| format!("cannot decode InstallSnapshotChunk: {e}"))
                        .and_then(|c: pb::InstallSnapshotChunk| {
                            snapshot_chunk_from_pb_traced(c).map_err(|e| e.to_string())
                        });
                    if chunk.is_err() {
                        *state = None;
                    }
                    return Some((chunk, state));
                }
                Ok(None) => {}
                Err(e) => {
                    *state = None;
                    return Some((Err(e.to_string()), state));
                }
            }
            let failure = match tokio::time::timeout(idle, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        frames.push(&data);
                    }
                    continue;
                }
                Ok(Some(Err(e))) => format!("cannot read the snapshot body: {e}"),
                Ok(None) => match frames.finish() {
                    Ok(()) => {
                        *state = None;
                        return None;
                    }
                    Err(e) => e.to_string(),
                },
                Err(_) => format!("the snapshot body stalled for {idle:?}"),
            };
            *state = None;
            return Some((Err(failure), state));
        }
    })
}

/// Most of a body read and thrown away after an early answer (a refused
/// oversize request, a snapshot answered before its last chunk), so that
/// the connection closes cleanly: an HTTP/1 connection closed with bytes
/// unread is reset by the kernel, and the reset can destroy the answer in
/// the sender's buffer before it is read.
const DRAIN_LIMIT: usize = 64 << 20;

/// Reads and discards the rest of `body`, within `DRAIN_LIMIT` bytes and
/// `idle` per frame.
async fn drain<B: hyper::body::Body<Data = Bytes> + Unpin>(mut body: B, idle: Duration) {
    let mut drained = 0usize;
    while drained < DRAIN_LIMIT {
        match tokio::time::timeout(idle, body.frame()).await {
            Ok(Some(Ok(frame))) => drained += frame.data_ref().map_or(0, Bytes::len),
            _ => return,
        }
    }
}

async fn snapshot(ctx: &Context, creds: &Credentials, body: SnapshotBody) -> Result<Reply, Reply> {
    let mut state: BodyState = Some((body, FrameDecoder::new(ctx.limit)));
    let answer = receive_snapshot(&ctx.routes, creds, Box::pin(chunks(&mut state, ctx.snapshot_idle))).await;
    if let Some((rest, _)) = state.take() {
        // Answered before the last chunk: let the sender see the answer and stop.
        tokio::spawn(drain(rest, ctx.snapshot_idle));
    }
    let answer = answer.map_err(|e| route_error(&e))?;
    Ok(ok(prost::Message::encode_to_vec(&snapshot_response_to_pb(&answer))))
}
