//! Trace-context conformance: every RPC carries the sender's trace context
//! ([`raftkv_core::trace`]) to the server, which handles the request inside a
//! receiving span (`raft_rpc`, `service_rpc`) parented on it; a call made
//! outside any span carries none; and malformed trace context never fails
//! a call.
//!
//! The cases register [`TestPropagator`] (process-wide, so they tolerate it
//! being registered already, and fail if another propagator is) and need a
//! subscriber that gives spans ids and tracks the current span — pass one
//! (`tracing_subscriber::registry()`) to
//! [`trace_conformance_tests!`](crate::trace_conformance_tests).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::join_all;
use tracing::{Instrument, Span};

use super::cases::{append, client_to, every_service_request, heartbeat, pre_vote, start, FROM, GROUP, TO};
use super::TransportFixture;
use super::{any_port, test_config, EchoMember, EchoService, RawOutcome, SnapshotMeter, SyntheticSnapshot};
use crate::net::{RaftRoute, Routes};
use raftkv_core::api::{ServiceHandler, ServiceRequest, ServiceResponse};
use raftkv_core::raft::driver::{RaftRpcHandler, RpcFuture};
use raftkv_core::raft::{InstallSnapshotRequest, RaftRequest, SnapshotMeta, TimeoutNowRequest};
use raftkv_core::trace::Propagator;
use raftkv_core::transport::OutgoingSnapshot;
use raftkv_core::types::{LogIndex, NodeId, Term};

/// Make `subscriber` the process's global default, unless one is already
/// (a subscriber of an earlier case in the same process).
pub fn install_subscriber<S: tracing::Subscriber + Send + Sync + 'static>(subscriber: S) {
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// The `traceparent` [`TestPropagator`] injects for the span with id `id`:
/// `00-<id as 32 hex digits>-<id as 16 hex digits>-01`.
#[must_use]
pub fn traceparent_of(id: &tracing::Id) -> String {
    format!("00-{:032x}-{:016x}-01", id.into_u64(), id.into_u64())
}

/// A well-formed `traceparent` no span of the suite injects.
pub const VALID_TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// Trace context handed to [`TestPropagator::extract`], by the id of the
/// receiving span, until a handler running in that span takes it.
static EXTRACTED: Mutex<BTreeMap<u64, Vec<String>>> = Mutex::new(BTreeMap::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The suite's propagator: injects [`traceparent_of`] the span, and records
/// every `traceparent` it is asked to extract, for the receiving span's
/// handler to find (see [`Observed`]).
#[derive(Debug)]
pub struct TestPropagator;

impl Propagator for TestPropagator {
    fn inject(&self, span: &Span) -> Option<String> {
        span.id().map(|id| traceparent_of(&id))
    }

    fn extract(&self, span: &Span, traceparent: &str) {
        if let Some(id) = span.id() {
            lock(&EXTRACTED).entry(id.into_u64()).or_default().push(traceparent.to_owned());
        }
    }
}

/// Register [`TestPropagator`] for the process (or find it registered
/// already), and check that the installed subscriber gives spans ids.
pub fn register_test_propagator() {
    let _ = raftkv_core::trace::set_propagator(TestPropagator);
    let probe = tracing::info_span!("trace_probe");
    let Some(id) = probe.id() else {
        panic!("the trace cases need a subscriber that gives spans ids (e.g. tracing_subscriber::registry())");
    };
    assert_eq!(
        probe.in_scope(raftkv_core::trace::current),
        Some(traceparent_of(&id)),
        "another propagator than the suite's TestPropagator is registered in this process"
    );
}

/// What a handler saw of tracing when a request reached it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// The name of the span current in the handler (`raft_rpc`, `service_rpc`), if any.
    pub span: Option<&'static str>,
    /// The trace context the propagator extracted for that span (the first
    /// handler to run in a span takes it; later ones see none).
    pub extracted: Vec<String>,
}

impl Observed {
    /// What a handler running now sees.
    #[must_use]
    pub fn now() -> Self {
        let span = Span::current();
        let extracted = span.id().and_then(|id| lock(&EXTRACTED).remove(&id.into_u64())).unwrap_or_default();
        Self { span: span.metadata().map(|m| m.name()), extracted }
    }
}

/// An [`EchoMember`] that records what it saw of tracing for each request.
#[derive(Debug, Default)]
pub struct TracedMember {
    echo: Arc<EchoMember>,
    seen: Mutex<Vec<(RaftRequest, Observed)>>,
}

impl TracedMember {
    /// The requests received since the last call, with what was seen of each.
    pub fn take(&self) -> Vec<(RaftRequest, Observed)> {
        std::mem::take(&mut *lock(&self.seen))
    }
}

impl RaftRpcHandler for TracedMember {
    fn submit(&self, from: NodeId, request: RaftRequest) -> RpcFuture {
        lock(&self.seen).push((request.clone(), Observed::now()));
        self.echo.submit(from, request)
    }
}

/// An [`EchoService`] that records what it saw of tracing for each request.
#[derive(Debug, Default)]
pub struct TracedService {
    seen: Mutex<Vec<(ServiceRequest, Observed)>>,
}

impl TracedService {
    /// The requests answered since the last call, with what was seen of each.
    pub fn take(&self) -> Vec<(ServiceRequest, Observed)> {
        std::mem::take(&mut *lock(&self.seen))
    }
}

#[async_trait]
impl ServiceHandler for TracedService {
    async fn handle(&self, request: ServiceRequest) -> ServiceResponse {
        lock(&self.seen).push((request.clone(), Observed::now()));
        EchoService::answer(&request)
    }
}

/// Routes hosting a [`TracedMember`] as member [`TO`] of [`GROUP`] and a [`TracedService`].
#[must_use]
pub fn traced_routes() -> (Routes, Arc<TracedMember>, Arc<TracedService>) {
    let routes = Routes::new();
    let member = Arc::new(TracedMember::default());
    let service = Arc::new(TracedService::default());
    routes.add_member(GROUP, TO, member.clone());
    routes.set_service(service.clone());
    (routes, member, service)
}

/// One request of every Raft RPC (the snapshot as a lone chunk).
#[must_use]
pub fn one_of_each_raft_request() -> Vec<RaftRequest> {
    vec![
        heartbeat(9),
        append(4, vec![Bytes::from_static(b"entry")]),
        pre_vote(),
        RaftRequest::TimeoutNow(TimeoutNowRequest { term: Term(6), leader: FROM }),
        RaftRequest::InstallSnapshot(InstallSnapshotRequest {
            term: Term(3),
            leader: FROM,
            meta: SnapshotMeta { last_index: LogIndex(50), last_term: Term(2) },
            offset: 0,
            data: Bytes::from(vec![super::snapshot_byte(0), super::snapshot_byte(1), super::snapshot_byte(2)]),
            done: true,
        }),
    ]
}

fn raft_rpc(extracted: Vec<String>) -> Observed {
    Observed { span: Some("raft_rpc"), extracted }
}

fn service_rpc(extracted: Vec<String>) -> Observed {
    Observed { span: Some("service_rpc"), extracted }
}

/// A span of the sending side and the trace context it must arrive with.
fn sending_span(name: &'static str) -> (Span, String) {
    let span = tracing::info_span!("test_send", what = name);
    let id = span.id().expect("spans have ids (register_test_propagator checked)");
    (span, traceparent_of(&id))
}

/// A snapshot of `len` synthetic bytes, in chunks of 1 KiB.
fn small_snapshot(len: u64) -> OutgoingSnapshot {
    let meta = SnapshotMeta { last_index: LogIndex(80), last_term: Term(3) };
    let reader = Box::new(SyntheticSnapshot::new(len, Arc::new(SnapshotMeter::default())));
    OutgoingSnapshot::new(Term(3), FROM, meta, reader, 1024)
}

/// A Raft call, a pipelined burst of appends, a streamed snapshot and a
/// service call, each made inside a span, deliver exactly that span's trace
/// context to the server, and the handler runs inside the receiving span.
pub async fn trace_context_reaches_the_span_every_rpc_is_handled_in<F: TransportFixture>(f: &F) {
    register_test_propagator();
    let (routes, member, service) = traced_routes();
    let server = start(f, any_port(), routes, test_config()).await;
    let t = client_to(f, server.addr(), test_config());

    // As the Raft driver calls: `call` inside the span, the answer awaited outside.
    for request in one_of_each_raft_request() {
        let (span, want) = sending_span(request.name());
        let answer = span.in_scope(|| t.call(FROM, TO, request.clone()));
        answer.await.unwrap_or_else(|e| panic!("{}: {e}", request.name()));
        assert_eq!(member.take(), vec![(request.clone(), raft_rpc(vec![want]))], "{} in a span", request.name());
    }

    // Appends in flight together (on one pipeline, where there is one), each from its own span.
    let burst: Vec<(RaftRequest, Span, String)> = (0..32u64)
        .map(|i| {
            let (span, want) = sending_span("append");
            (append(100 + i, vec![Bytes::from(vec![i as u8; 64])]), span, want)
        })
        .collect();
    let calls: Vec<_> = burst.iter().map(|(r, span, _)| span.in_scope(|| t.call(FROM, TO, r.clone()))).collect();
    for (i, answer) in join_all(calls).await.into_iter().enumerate() {
        answer.unwrap_or_else(|e| panic!("pipelined append {i}: {e}"));
    }
    let mut seen = member.take();
    assert_eq!(seen.len(), burst.len(), "every pipelined append arrived once");
    for (request, _, want) in &burst {
        let at = seen.iter().position(|(r, _)| r == request).expect("each append arrived");
        let (_, observed) = seen.swap_remove(at);
        assert_eq!(observed, raft_rpc(vec![want.clone()]), "a pipelined append carries its own span's context");
    }

    // A streamed snapshot: every chunk is handled in one receiving span, parented once.
    let (span, want) = sending_span("send_snapshot");
    let mut snapshot = small_snapshot(10_000);
    let answer = t.send_snapshot(FROM, TO, &mut snapshot).instrument(span).await.expect("snapshot");
    assert!(answer.accepted && snapshot.is_finished(), "the snapshot went through: {answer:?}");
    let seen = member.take();
    assert!(seen.len() >= 2, "a snapshot of several chunks: {} seen", seen.len());
    assert_eq!(seen[0].1, raft_rpc(vec![want]), "the stream's first chunk carries the sender's context");
    for (i, (_, observed)) in seen.iter().enumerate().skip(1) {
        assert_eq!(*observed, raft_rpc(vec![]), "chunk {i} is handled in the same receiving span");
    }

    // Service calls, awaited inside their spans.
    let c = f.service_client(test_config());
    let addr = server.addr().to_string();
    for request in every_service_request() {
        let (span, want) = sending_span(request.name());
        c.call_service(&addr, request.clone())
            .instrument(span)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", request.name()));
        assert_eq!(service.take(), vec![(request.clone(), service_rpc(vec![want]))], "{} in a span", request.name());
    }
    server.stop().await;
}

/// Calls made outside any span carry no trace context; they are still
/// handled inside receiving spans.
pub async fn calls_outside_any_span_carry_no_trace_context<F: TransportFixture>(f: &F) {
    register_test_propagator();
    assert!(Span::current().is_none(), "the case runs outside any span");
    let (routes, member, service) = traced_routes();
    let server = start(f, any_port(), routes, test_config()).await;
    let t = client_to(f, server.addr(), test_config());
    for request in one_of_each_raft_request() {
        t.call(FROM, TO, request.clone()).await.unwrap_or_else(|e| panic!("{}: {e}", request.name()));
        assert_eq!(member.take(), vec![(request.clone(), raft_rpc(vec![]))], "{} outside a span", request.name());
    }
    let mut snapshot = small_snapshot(5000);
    t.send_snapshot(FROM, TO, &mut snapshot).await.expect("snapshot");
    let seen = member.take();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|(_, o)| *o == raft_rpc(vec![])), "no snapshot chunk carried context: {seen:?}");

    let c = f.service_client(test_config());
    let addr = server.addr().to_string();
    for request in every_service_request() {
        c.call_service(&addr, request.clone()).await.unwrap_or_else(|e| panic!("{}: {e}", request.name()));
        assert_eq!(service.take(), vec![(request.clone(), service_rpc(vec![]))], "{} outside a span", request.name());
    }
    server.stop().await;
}

/// Trace context longer than this never reaches the propagator (the cases
/// send 4,000 bytes; transports cap it far lower).
pub const OVERSIZE_TRACEPARENT: usize = 4000;

/// What the propagator may have been handed for `sent`: a well-formed
/// context exactly; a malformed one as it was, or nothing; an oversize one
/// (or one that is not text) nothing.
fn check_extracted(extracted: &[String], sent: &[u8], what: &str) {
    let text = std::str::from_utf8(sent).ok();
    if sent == VALID_TRACEPARENT.as_bytes() {
        assert_eq!(extracted, [VALID_TRACEPARENT], "{what}: a well-formed context reaches the propagator");
    } else if sent.len() >= OVERSIZE_TRACEPARENT || text.is_none() {
        assert!(extracted.is_empty(), "{what}: an oversize or binary context must not reach the propagator");
    } else {
        assert!(
            extracted.is_empty() || extracted == [text.unwrap_or_default()],
            "{what}: the propagator was handed {extracted:?}"
        );
    }
}

/// Hand-crafted requests with malformed, binary or oversize trace context
/// — in a Raft message's route, in a service call's header or metadata —
/// are answered as if they carried none; the server keeps serving.
pub async fn malformed_trace_context_is_ignored_and_the_call_answered<F: TransportFixture>(f: &F) {
    register_test_propagator();
    let (routes, member, service) = traced_routes();
    let server = start(f, any_port(), routes, test_config()).await;
    let addr = server.addr();
    let route = RaftRoute { group: GROUP, from: FROM, to: TO };
    let oversize = "f".repeat(OVERSIZE_TRACEPARENT);
    let texts =
        ["garbage", "00-not-hex-at-all-xx-01", "ünïcödé ☃", "\0\r\n\t", "-", oversize.as_str(), VALID_TRACEPARENT];
    for request in one_of_each_raft_request() {
        for tp in texts {
            let what = format!("{} with trace context {:.40?}", request.name(), tp);
            let (rpc, body) = f.encode_raft_traced(route, request.clone(), tp);
            match f.send_raw(addr, &rpc, body).await {
                RawOutcome::Answered(_) => {}
                other => panic!("{what}: must be answered, got {other:?}"),
            }
            let seen = member.take();
            assert_eq!(seen.len(), 1, "{what}: delivered once");
            assert_eq!(seen[0].1.span, Some("raft_rpc"), "{what}: handled in its receiving span");
            check_extracted(&seen[0].1.extracted, tp.as_bytes(), &what);
        }
    }
    let headers: [&[u8]; 6] = [
        b"garbage",
        b"00-zz-01",
        b"\xff\xfe\x80 binary",
        b"\"quoted\";q=1,x",
        oversize.as_bytes(),
        VALID_TRACEPARENT.as_bytes(),
    ];
    for tp in headers {
        let what = format!("a status call with trace context {:.40?}", String::from_utf8_lossy(tp));
        // An empty body is a valid `admin/status` request.
        match f.send_raw_traced(addr, "admin/status", Bytes::new(), tp).await {
            RawOutcome::Answered(_) => {}
            other => panic!("{what}: must be answered, got {other:?}"),
        }
        let seen = service.take();
        assert_eq!(seen.len(), 1, "{what}: delivered once");
        assert_eq!(seen[0].1.span, Some("service_rpc"), "{what}: handled in its receiving span");
        check_extracted(&seen[0].1.extracted, tp, &what);
    }
    let t = client_to(f, addr, test_config());
    t.call(FROM, TO, heartbeat(1)).await.expect("the server keeps serving");
    server.stop().await;
}
