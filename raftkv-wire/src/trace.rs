//! Trace context on the wire: what a transport sends so that the receiver's
//! spans join the sender's trace, and the receiving side's spans.
//!
//! A Raft message carries the sender's W3C `traceparent` in its route
//! ([`pb::Route::traceparent`]; on a snapshot stream, in the first chunk's);
//! a service call carries it in the `traceparent` gRPC metadata or HTTP
//! header ([`raftkv_core::trace::TRACEPARENT`]). Turning spans into
//! `traceparent`s and back is the registered
//! [`Propagator`](raftkv_core::trace::Propagator)'s business; this module
//! only bounds what is carried: an empty trace context is none, and one
//! longer than [`MAX_TRACEPARENT_BYTES`] is dropped, so hostile input cannot
//! bloat spans. Neither ever fails a call.
//!
//! ```
//! use raftkv_core::raft::{HeartbeatRequest, RaftRequest};
//! use raftkv_wire::net::RaftRoute;
//! use raftkv_core::{GroupId, LogIndex, NodeId, Term};
//! use raftkv_wire::RaftRequestPb;
//!
//! let route = RaftRoute { group: GroupId(1), from: NodeId(1), to: NodeId(2) };
//! let beat = RaftRequest::Heartbeat(HeartbeatRequest { term: Term(1), leader: NodeId(1), commit: LogIndex(0), read_seq: 0 });
//! let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
//! let mut wire = RaftRequestPb::from_core(route, beat.clone()).with_traceparent(Some(tp.to_string()));
//! assert_eq!(wire.take_traceparent().as_deref(), Some(tp));
//! assert_eq!(wire.into_core()?, (route, beat.clone()), "the core message is unchanged");
//!
//! // Oversize trace context is dropped, never an error.
//! let mut wire = RaftRequestPb::from_core(route, beat).with_traceparent(Some("x".repeat(1000)));
//! assert_eq!(wire.take_traceparent(), None);
//! # Ok::<(), raftkv_wire::DecodeError>(())
//! ```

use crate::net::{Credentials, RaftRoute, RouteError, Routes};
use futures::{Stream, StreamExt};
use raftkv_core::api::ServiceRequest;
use raftkv_core::raft::{InstallSnapshotRequest, InstallSnapshotResponse, RaftRequest};
use tracing::{Instrument, Span};

use crate::convert::{snapshot_chunk_from_pb, RaftRequestPb};
use crate::error::DecodeError;
use crate::pb;

/// Longest trace context a transport sends or accepts, in bytes; a longer
/// one is ignored. (A W3C `traceparent` is 55 bytes.)
pub const MAX_TRACEPARENT_BYTES: usize = 256;

/// `traceparent` if it is worth handing to the propagator: not empty and at
/// most [`MAX_TRACEPARENT_BYTES`]. Its syntax is the propagator's to judge.
#[must_use]
pub fn accept_traceparent(traceparent: &str) -> Option<&str> {
    (!traceparent.is_empty() && traceparent.len() <= MAX_TRACEPARENT_BYTES).then_some(traceparent)
}

/// The trace context to send with an outgoing RPC: the `traceparent` of the
/// current span ([`raftkv_core::trace::current`]), if within bounds. Call it
/// where the caller's span is current: synchronously in
/// `Transport::call`, at the start of an async call.
#[must_use]
pub fn outgoing_traceparent() -> Option<String> {
    raftkv_core::trace::current().filter(|tp| accept_traceparent(tp).is_some())
}

/// The kind of Raft RPC `request` is, as its receiving span names it:
/// `append`, `heartbeat`, `vote`, `install_snapshot` or `timeout_now`.
#[must_use]
pub fn raft_rpc_kind(request: &RaftRequest) -> &'static str {
    match request {
        RaftRequest::AppendEntries(_) => "append",
        RaftRequest::Heartbeat(_) => "heartbeat",
        RaftRequest::Vote(_) => "vote",
        RaftRequest::InstallSnapshot(_) => "install_snapshot",
        RaftRequest::TimeoutNow(_) => "timeout_now",
    }
}

/// The receiving side's span of Raft request `request` on `route`, a child
/// of the remote span `traceparent` names (if it is acceptable). Submit the
/// request inside it (`span.in_scope(|| routes.submit(..))`) so that the
/// member's handling of it becomes its child.
#[must_use]
pub fn raft_rpc_span(route: RaftRoute, request: &RaftRequest, traceparent: Option<&str>) -> Span {
    span_of(raft_rpc_kind(request), route, traceparent)
}

fn span_of(kind: &'static str, route: RaftRoute, traceparent: Option<&str>) -> Span {
    let traceparent = traceparent.and_then(accept_traceparent);
    raftkv_core::trace::raft_rpc_span(kind, route.group, route.from, route.to, traceparent)
}

/// The receiving side's span of service request `request` (named by
/// [`ServiceRequest::name`]: `kv.get`, `migration.pull_shards`, …), a child
/// of the remote span `traceparent` names (if it is acceptable).
#[must_use]
pub fn service_rpc_span(request: &ServiceRequest, traceparent: Option<&str>) -> Span {
    raftkv_core::trace::service_span(request.name(), traceparent.and_then(accept_traceparent))
}

impl pb::Route {
    /// This route, carrying trace context `traceparent` (none if it is
    /// absent, empty or longer than [`MAX_TRACEPARENT_BYTES`]).
    #[must_use]
    pub fn with_traceparent(mut self, traceparent: Option<String>) -> Self {
        self.traceparent = traceparent.filter(|tp| accept_traceparent(tp).is_some()).unwrap_or_default();
        self
    }

    /// Take the trace context this route carries, if it is acceptable
    /// ([`accept_traceparent`]); the route carries none afterwards.
    pub fn take_traceparent(&mut self) -> Option<String> {
        let tp = std::mem::take(&mut self.traceparent);
        accept_traceparent(&tp).is_some().then_some(tp)
    }
}

impl RaftRequestPb {
    /// The request's route (absent only in a malformed message).
    pub fn route_mut(&mut self) -> Option<&mut pb::Route> {
        match self {
            Self::AppendEntries(m) => m.route.as_mut(),
            Self::Heartbeat(m) => m.route.as_mut(),
            Self::Vote(m) => m.route.as_mut(),
            Self::InstallSnapshot(m) => m.route.as_mut(),
            Self::TimeoutNow(m) => m.route.as_mut(),
        }
    }

    /// This request, carrying trace context `traceparent` in its route (see
    /// [`pb::Route::with_traceparent`]).
    #[must_use]
    pub fn with_traceparent(mut self, traceparent: Option<String>) -> Self {
        if let Some(route) = self.route_mut() {
            *route = std::mem::take(route).with_traceparent(traceparent);
        }
        self
    }

    /// Take the trace context the request's route carries, if it is
    /// acceptable (see [`pb::Route::take_traceparent`]). Call it before
    /// [`RaftRequestPb::into_core`], which ignores it.
    pub fn take_traceparent(&mut self) -> Option<String> {
        self.route_mut().and_then(pb::Route::take_traceparent)
    }
}

/// A received snapshot chunk: its route, the chunk, and the trace context it
/// carried (see [`snapshot_chunk_from_pb_traced`]).
pub type TracedChunk = (RaftRoute, InstallSnapshotRequest, Option<String>);

/// One snapshot chunk, its route and its trace context, checked (as
/// [`snapshot_chunk_from_pb`]; the trace context never makes it fail).
pub fn snapshot_chunk_from_pb_traced(mut chunk: pb::InstallSnapshotChunk) -> Result<TracedChunk, DecodeError> {
    let traceparent = chunk.route.as_mut().and_then(pb::Route::take_traceparent);
    let (route, chunk) = snapshot_chunk_from_pb(chunk)?;
    Ok((route, chunk, traceparent))
}

/// [`Routes::receive_snapshot`] inside the receiving span of the stream:
/// that of its first chunk's route and trace context ([`raft_rpc_span`]),
/// so the member's handling of every chunk becomes its child. The trace
/// context of later chunks is ignored.
pub async fn receive_snapshot<S, E>(
    routes: &Routes,
    creds: &Credentials,
    chunks: S,
) -> Result<InstallSnapshotResponse, RouteError>
where
    S: Stream<Item = Result<TracedChunk, E>> + Unpin + Send,
    E: std::fmt::Display + Send,
{
    // Fused: an empty stream is polled again below, which not every stream allows.
    let mut chunks = chunks.fuse();
    let first = chunks.next().await;
    let span = match &first {
        Some(Ok((route, _, traceparent))) => span_of("install_snapshot", *route, traceparent.as_deref()),
        _ => Span::none(),
    };
    let chunks = futures::stream::iter(first).chain(chunks).map(|c| c.map(|(route, chunk, _)| (route, chunk)));
    routes.receive_snapshot(creds, chunks).instrument(span).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::net::RaftRoute;
    use bytes::Bytes;
    use raftkv_core::raft::{HeartbeatRequest, InstallSnapshotRequest, RaftRequest, SnapshotMeta};
    use raftkv_core::{GroupId, LogIndex, NodeId, Term};

    use super::{accept_traceparent, snapshot_chunk_from_pb_traced, MAX_TRACEPARENT_BYTES};
    use crate::{route_pb, snapshot_chunk_to_pb, RaftRequestPb};

    const ROUTE: RaftRoute = RaftRoute { group: GroupId(3), from: NodeId(1), to: NodeId(2) };

    fn chunk() -> InstallSnapshotRequest {
        InstallSnapshotRequest {
            term: Term(2),
            leader: NodeId(1),
            meta: SnapshotMeta { last_index: LogIndex(9), last_term: Term(2) },
            offset: 0,
            data: Bytes::from_static(b"snap"),
            done: true,
        }
    }

    #[test]
    fn trace_context_is_bounded_and_empty_is_none() {
        assert_eq!(accept_traceparent(""), None);
        let longest = "a".repeat(MAX_TRACEPARENT_BYTES);
        assert_eq!(accept_traceparent(&longest), Some(longest.as_str()));
        assert_eq!(accept_traceparent(&"a".repeat(MAX_TRACEPARENT_BYTES + 1)), None);
    }

    #[test]
    fn trace_context_survives_encoding_and_leaves_the_core_message_alone() {
        let beat = RaftRequest::Heartbeat(HeartbeatRequest {
            term: Term(1),
            leader: NodeId(1),
            commit: LogIndex(0),
            read_seq: 7,
        });
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        for request in [beat, RaftRequest::InstallSnapshot(chunk())] {
            let wire = RaftRequestPb::from_core(ROUTE, request.clone()).with_traceparent(Some(tp.into()));
            let bytes = Bytes::from(wire.encode_to_vec());
            let mut decoded = RaftRequestPb::decode(wire.rpc(), bytes).unwrap();
            assert_eq!(decoded.take_traceparent().as_deref(), Some(tp), "{}", request.name());
            assert_eq!(decoded.take_traceparent(), None, "taken once");
            assert_eq!(decoded.into_core().unwrap(), (ROUTE, request));
        }
    }

    #[test]
    fn oversize_trace_context_is_neither_sent_nor_taken_nor_an_error() {
        let huge = "x".repeat(10_000);
        let wire = RaftRequestPb::from_core(ROUTE, RaftRequest::InstallSnapshot(chunk()));
        assert_eq!(wire.clone().with_traceparent(Some(huge.clone())), wire, "not sent");
        let mut route = route_pb(ROUTE);
        route.traceparent = huge;
        let (got_route, got_chunk, tp) =
            snapshot_chunk_from_pb_traced(snapshot_chunk_to_pb(Some(route), chunk())).unwrap();
        assert_eq!((got_route, got_chunk, tp), (ROUTE, chunk(), None));
    }

    /// An empty snapshot stream that may not be polled after its end (as
    /// `futures::stream::unfold`) is refused, not a panic.
    #[cfg(feature = "net")]
    #[tokio::test]
    async fn an_empty_snapshot_stream_is_refused_without_polling_it_twice() {
        let routes = crate::net::Routes::new();
        let empty =
            Box::pin(futures::stream::unfold((), |()| async { None::<(Result<super::TracedChunk, String>, ())> }));
        assert!(super::receive_snapshot(&routes, &crate::net::Credentials::none(), empty).await.is_err());
    }
}
