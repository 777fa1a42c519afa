//! The conformance cases every network transport must pass (see the module
//! above for how a transport runs them).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::join_all;

use super::{
    any_port, dead_addr, test_config, EchoMember, EchoService, RawOutcome, RunningServer, SnapshotMeter,
    SyntheticSnapshot, TransportFixture, REFUSED_SNAPSHOT_INDEX,
};
use crate::net::{NetConfig, RaftRoute, Routes};
use raftkv_core::api::{
    CtrlOp, CtrlRequest, DeleteShardsRequest, KvOp, KvRequest, PullShardsRequest, RequestId, ServiceRequest,
};
use raftkv_core::raft::{
    AppendEntriesRequest, Entry, EntryPayload, HeartbeatRequest, InstallSnapshotRequest, InstallSnapshotResponse,
    RaftRequest, RaftResponse, SnapshotMeta, TimeoutNowRequest, VoteRequest,
};
use raftkv_core::transport::{OutgoingSnapshot, Transport, TransportError};
use raftkv_core::types::{ClientId, ConfigNum, GroupId, LogIndex, NodeId, ShardId, Term};

/// The group of every case.
pub const GROUP: GroupId = GroupId(1);
/// The calling member.
pub const FROM: NodeId = NodeId(1);
/// The member the server hosts.
pub const TO: NodeId = NodeId(2);

/// Routes hosting an [`EchoMember`] as member [`TO`] of [`GROUP`] and an [`EchoService`].
pub fn echo_routes() -> (Routes, Arc<EchoMember>, Arc<EchoService>) {
    let routes = Routes::new();
    let member = EchoMember::new();
    let service = EchoService::new();
    routes.add_member(GROUP, TO, member.clone());
    routes.set_service(service.clone());
    (routes, member, service)
}

/// Start a server or fail the case.
pub async fn start<F: TransportFixture>(
    f: &F,
    addr: SocketAddr,
    routes: Routes,
    cfg: NetConfig,
) -> Box<dyn RunningServer> {
    f.serve(addr, routes, cfg).await.unwrap_or_else(|e| panic!("cannot start a server on {addr}: {e}"))
}

/// A Raft client of [`GROUP`] that reaches [`TO`] at `addr`.
pub fn client_to<F: TransportFixture>(f: &F, addr: SocketAddr, cfg: NetConfig) -> Arc<dyn Transport> {
    f.raft_client(GROUP, BTreeMap::from([(TO, addr.to_string())]), cfg)
}

/// A heartbeat whose answer echoes `read_seq`.
#[must_use]
pub fn heartbeat(read_seq: u64) -> RaftRequest {
    RaftRequest::Heartbeat(HeartbeatRequest { term: Term(3), leader: FROM, commit: LogIndex(7), read_seq })
}

/// A pre-vote request of candidate 3 at term 4.
#[must_use]
pub fn pre_vote() -> RaftRequest {
    RaftRequest::Vote(VoteRequest {
        term: Term(4),
        candidate: NodeId(3),
        last_log_index: LogIndex(12),
        last_log_term: Term(3),
        pre_vote: true,
        transfer: false,
    })
}

/// An append of `commands` (each as a command entry) after `prev`.
#[must_use]
pub fn append(prev: u64, commands: Vec<Bytes>) -> RaftRequest {
    let entries = commands
        .into_iter()
        .enumerate()
        .map(|(i, c)| Entry { term: Term(3), index: LogIndex(prev + 1 + i as u64), payload: EntryPayload::Command(c) })
        .collect();
    RaftRequest::AppendEntries(AppendEntriesRequest {
        term: Term(3),
        leader: FROM,
        prev_log_index: LogIndex(prev),
        prev_log_term: Term(2),
        entries,
        leader_commit: LogIndex(prev),
        read_seq: prev,
    })
}

fn kv(seq: u64, op: KvOp) -> ServiceRequest {
    ServiceRequest::Kv(KvRequest { id: RequestId { client: ClientId(7), seq }, op })
}

fn ctrl(seq: u64, op: CtrlOp) -> ServiceRequest {
    ServiceRequest::Ctrl(CtrlRequest { id: RequestId { client: ClientId(8), seq }, op })
}

/// One request of every service RPC, several with both outcomes.
#[must_use]
pub fn every_service_request() -> Vec<ServiceRequest> {
    let key = |s: &'static str| Bytes::from_static(s.as_bytes());
    vec![
        kv(1, KvOp::Get { key: key("abc") }),
        kv(2, KvOp::Get { key: Bytes::new() }),
        kv(3, KvOp::Put { key: key("k"), value: Bytes::from(vec![0u8; 1000]) }),
        kv(4, KvOp::Append { key: key("k"), value: key("tail") }),
        kv(5, KvOp::Delete { key: key("k") }),
        ctrl(1, CtrlOp::Join { groups: BTreeMap::from([(GroupId(1), vec!["h:1".into(), "h:2".into()])]) }),
        ctrl(2, CtrlOp::Join { groups: BTreeMap::new() }),
        ctrl(3, CtrlOp::Leave { groups: vec![GroupId(1), GroupId(4)] }),
        ctrl(4, CtrlOp::Move { shard: ShardId(3), group: GroupId(2) }),
        ctrl(5, CtrlOp::Query { num: None }),
        ctrl(6, CtrlOp::Query { num: Some(ConfigNum(3)) }),
        ServiceRequest::PullShards(PullShardsRequest {
            config: ConfigNum(4),
            shards: vec![ShardId(0), ShardId(2), ShardId(5)],
            after: None,
            max_bytes: 0,
        }),
        ServiceRequest::PullShards(PullShardsRequest {
            config: ConfigNum(4),
            shards: vec![ShardId(2)],
            after: Some(key("k7")),
            max_bytes: 4 << 20,
        }),
        ServiceRequest::DeleteShards(DeleteShardsRequest {
            config: ConfigNum(4),
            shards: vec![ShardId(1)],
            group: GroupId(2),
        }),
        ServiceRequest::DeleteShards(DeleteShardsRequest { config: ConfigNum(4), shards: vec![], group: GroupId(1) }),
        ServiceRequest::Status,
    ]
}

/// Every Raft RPC comes back as the member answered it.
pub async fn every_raft_rpc_round_trips<F: TransportFixture>(f: &F) {
    let (routes, member, _) = echo_routes();
    let server = start(f, any_port(), routes, test_config()).await;
    let t = client_to(f, server.addr(), test_config());
    let mut requests = vec![
        append(10, vec![Bytes::from_static(b"x"), Bytes::from(vec![7u8; 1024])]),
        append(7, vec![]),
        heartbeat(99),
        pre_vote(),
        RaftRequest::Vote(VoteRequest {
            term: Term(5),
            candidate: NodeId(4),
            last_log_index: LogIndex(0),
            last_log_term: Term(0),
            pre_vote: false,
            transfer: true,
        }),
        RaftRequest::TimeoutNow(TimeoutNowRequest { term: Term(6), leader: FROM }),
    ];
    if let RaftRequest::AppendEntries(a) = &mut requests[0] {
        a.entries.insert(0, Entry { term: Term(2), index: LogIndex(11), payload: EntryPayload::Blank });
        for (i, e) in a.entries.iter_mut().enumerate() {
            e.index = LogIndex(11 + i as u64);
        }
    }
    for request in requests {
        let want = EchoMember::answer(&request).unwrap();
        let got = t.call(FROM, TO, request.clone()).await.unwrap_or_else(|e| panic!("{}: {e}", request.name()));
        assert_eq!(got, want, "{} must come back as answered", request.name());
    }
    let chunk = InstallSnapshotRequest {
        term: Term(3),
        leader: FROM,
        meta: SnapshotMeta { last_index: LogIndex(50), last_term: Term(2) },
        offset: 0,
        data: Bytes::from_static(b"abc"),
        done: true,
    };
    let got = t.call(FROM, TO, RaftRequest::InstallSnapshot(chunk)).await.unwrap();
    let want = InstallSnapshotResponse { term: Term(3), accepted: true, next_offset: 3 };
    assert_eq!(got, RaftResponse::InstallSnapshot(want));
    assert_eq!(member.installed(), Some(3));
    assert_eq!(member.appends(), vec![(FROM, LogIndex(10)), (FROM, LogIndex(7))], "the member saw the sender");
    server.stop().await;
}

/// Every service RPC, with every response shape and refusal, comes back as answered.
pub async fn every_service_rpc_round_trips<F: TransportFixture>(f: &F) {
    let (routes, _, service) = echo_routes();
    let server = start(f, any_port(), routes, test_config()).await;
    let c = f.service_client(test_config());
    let addr = server.addr().to_string();
    let requests = every_service_request();
    for request in &requests {
        let got = c.call_service(&addr, request.clone()).await.unwrap_or_else(|e| panic!("{}: {e}", request.name()));
        assert_eq!(got, EchoService::answer(request), "{} must come back as answered", request.name());
    }
    assert_eq!(service.calls(), requests.len() as u64);
    server.stop().await;
}

fn assert_rejected(result: Result<impl std::fmt::Debug, TransportError>, needle: &str, what: &str) {
    match result {
        Err(e @ TransportError::Rejected { .. }) => {
            assert!(e.to_string().contains(needle), "{what}: the error `{e}` should mention `{needle}`");
        }
        other => panic!("{what}: expected a rejection mentioning `{needle}`, got {other:?}"),
    }
}

/// A call to a member the server does not host, or a service call to a
/// server without services, is rejected with a reason naming it.
pub async fn unknown_members_and_missing_services_are_refused<F: TransportFixture>(f: &F) {
    let (routes, member, _) = echo_routes();
    let server = start(f, any_port(), routes, test_config()).await;
    let addr = server.addr().to_string();
    let t = f.raft_client(GROUP, BTreeMap::from([(TO, addr.clone()), (NodeId(5), addr.clone())]), test_config());
    assert_rejected(t.call(FROM, NodeId(5), heartbeat(1)).await, "no member 5", "unknown member");
    let other_group = f.raft_client(GroupId(9), BTreeMap::from([(TO, addr.clone())]), test_config());
    assert_rejected(other_group.call(FROM, TO, heartbeat(1)).await, "group 9", "unknown group");
    assert!(t.call(FROM, TO, heartbeat(2)).await.is_ok(), "the hosted member still answers");
    assert_eq!(member.calls(), 1);

    let bare = Routes::new();
    bare.add_member(GROUP, TO, member.clone());
    let server2 = start(f, any_port(), bare, test_config()).await;
    let c = f.service_client(test_config());
    assert_rejected(c.call_service(&server2.addr().to_string(), ServiceRequest::Status).await, "service", "no service");
    server.stop().await;
    server2.stop().await;
}

/// 1,000 concurrent Raft calls and 1,000 concurrent service calls through one
/// client each all get their own answers.
pub async fn thousand_concurrent_calls<F: TransportFixture>(f: &F) {
    let (routes, member, service) = echo_routes();
    let server = start(f, any_port(), routes, test_config()).await;
    let t = client_to(f, server.addr(), test_config());
    let calls: Vec<_> = (0..1000u64).map(|i| t.call(FROM, TO, heartbeat(i))).collect();
    for (i, r) in join_all(calls).await.into_iter().enumerate() {
        assert_eq!(r.unwrap(), EchoMember::answer(&heartbeat(i as u64)).unwrap(), "call {i}");
    }
    let c = f.service_client(test_config());
    let addr = server.addr().to_string();
    let requests: Vec<ServiceRequest> =
        (0..1000u64).map(|i| kv(i, KvOp::Get { key: Bytes::from(format!("key-{i}")) })).collect();
    let answers = join_all(requests.iter().map(|r| c.call_service(&addr, r.clone()))).await;
    for (r, a) in requests.iter().zip(answers) {
        assert_eq!(a.unwrap(), EchoService::answer(r));
    }
    assert_eq!(member.calls(), 1000);
    assert_eq!(service.calls(), 1000);
    server.stop().await;
}

/// Appends handed to `call` in order are all answered; a transport that
/// claims ordering delivers them in exactly that order.
pub async fn appends_to_one_peer_keep_their_order<F: TransportFixture>(f: &F) {
    let (routes, member, _) = echo_routes();
    let server = start(f, any_port(), routes, test_config()).await;
    let t = client_to(f, server.addr(), test_config());
    let n = 500u64;
    let calls: Vec<_> = (0..n).map(|i| t.call(FROM, TO, append(i, vec![Bytes::from(vec![1u8; 100])]))).collect();
    for (i, r) in join_all(calls).await.into_iter().enumerate() {
        match r.unwrap() {
            RaftResponse::AppendEntries(a) => assert_eq!(a.match_index, LogIndex(i as u64 + 1), "append {i}"),
            other => panic!("append {i} answered with {other:?}"),
        }
    }
    let seen: Vec<u64> = member.appends().into_iter().map(|(_, prev)| prev.0).collect();
    if f.ordered() {
        assert_eq!(seen, (0..n).collect::<Vec<_>>(), "an ordered transport keeps appends in call order");
    } else {
        let mut sorted = seen.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "every append arrives exactly once");
    }
    server.stop().await;
}

/// Size of the big snapshot.
pub const BIG_SNAPSHOT: u64 = 256 << 20;
/// Most bytes a transport may hold between the sender's store and the receiver while streaming it.
pub const SNAPSHOT_BUFFER_LIMIT: u64 = 16 << 20;

/// A 256 MiB snapshot streams through whole and intact, while the transport
/// holds no more than 16 MiB of it at any moment.
pub async fn snapshot_of_256_mib_streams_with_bounded_memory<F: TransportFixture>(f: &F) {
    let (routes, member, _) = echo_routes();
    let server = start(f, any_port(), routes, test_config()).await;
    let t = client_to(f, server.addr(), test_config());
    let meter = Arc::new(SnapshotMeter::default());
    member.meter_snapshots(meter.clone());
    let meta = SnapshotMeta { last_index: LogIndex(1000), last_term: Term(3) };
    let reader = Box::new(SyntheticSnapshot::new(BIG_SNAPSHOT, meter.clone()));
    let mut snapshot = OutgoingSnapshot::new(Term(3), FROM, meta, reader, 1 << 20);
    let started = Instant::now();
    let resp = t.send_snapshot(FROM, TO, &mut snapshot).await.unwrap();
    let elapsed = started.elapsed();
    assert!(resp.accepted && resp.next_offset == BIG_SNAPSHOT, "the last chunk was taken: {resp:?}");
    assert!(snapshot.is_finished());
    assert_eq!(member.installed(), Some(BIG_SNAPSHOT), "the member received every byte");
    assert!(member.snapshot_errors().is_empty(), "bytes arrived intact: {:?}", member.snapshot_errors());
    let peak = meter.peak_buffered();
    eprintln!(
        "256 MiB snapshot: peak {:.1} MiB buffered between store and receiver, {:.0} MB/s",
        peak as f64 / f64::from(1 << 20),
        BIG_SNAPSHOT as f64 / 1e6 / elapsed.as_secs_f64()
    );
    assert!(peak <= SNAPSHOT_BUFFER_LIMIT, "peak buffered {peak} bytes exceeds {SNAPSHOT_BUFFER_LIMIT}");
    server.stop().await;
}

/// A receiver that answers a chunk with a higher term ends the stream: the
/// sender gets that answer and stops reading its snapshot.
pub async fn snapshot_stream_stops_at_the_first_refusal<F: TransportFixture>(f: &F) {
    let (routes, member, _) = echo_routes();
    let server = start(f, any_port(), routes, test_config()).await;
    let t = client_to(f, server.addr(), test_config());
    let meter = Arc::new(SnapshotMeter::default());
    let total = 64u64 << 20;
    let meta = SnapshotMeta { last_index: REFUSED_SNAPSHOT_INDEX, last_term: Term(3) };
    let reader = Box::new(SyntheticSnapshot::new(total, meter.clone()));
    let mut snapshot = OutgoingSnapshot::new(Term(3), FROM, meta, reader, 1 << 20);
    let resp = t.send_snapshot(FROM, TO, &mut snapshot).await.unwrap();
    assert_eq!(resp.term, Term(4), "the refusal comes back");
    assert!(!snapshot.is_finished());
    assert!(meter.produced() <= SNAPSHOT_BUFFER_LIMIT, "the sender stopped reading ({} bytes read)", meter.produced());
    assert!(member.installed().is_none());
    server.stop().await;
}

/// A sender that stops sending in the middle of a snapshot is cut off by
/// the server after `snapshot_idle_timeout`: its call ends with an error,
/// nothing is installed, and the next snapshot goes through.
pub async fn stalled_snapshot_stream_is_abandoned_by_the_server<F: TransportFixture>(f: &F) {
    let idle = Duration::from_millis(500);
    let cfg = NetConfig { snapshot_idle_timeout: idle, ..test_config() };
    let (routes, member, _) = echo_routes();
    let server = start(f, any_port(), routes, cfg.clone()).await;
    let t = client_to(f, server.addr(), test_config());
    let meta = SnapshotMeta { last_index: LogIndex(77), last_term: Term(3) };
    let mut stalled = OutgoingSnapshot::new(Term(3), FROM, meta, Box::new(super::StallingSnapshot::new(4096)), 1024);
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(5), t.send_snapshot(FROM, TO, &mut stalled)).await;
    within(started, idle + Duration::from_secs(2), "abandoning a stalled snapshot stream");
    match result {
        Ok(Err(_)) => {}
        other => panic!("a stalled snapshot stream must end in an error from the server, got {other:?}"),
    }
    assert!(member.installed().is_none(), "nothing was installed");

    let whole = Box::new(SyntheticSnapshot::new(100_000, Arc::new(SnapshotMeter::default())));
    let mut next = OutgoingSnapshot::new(Term(3), FROM, meta, whole, 4096);
    let resp = t.send_snapshot(FROM, TO, &mut next).await.unwrap();
    assert!(resp.accepted && resp.next_offset == 100_000, "{resp:?}");
    assert_eq!(member.installed(), Some(100_000));
    server.stop().await;
}

fn within(started: Instant, limit: Duration, what: &str) {
    let took = started.elapsed();
    assert!(took <= limit, "{what} took {took:?}, more than {limit:?}");
}

/// Calls to a port nobody listens on, or to a server that accepts
/// connections and never answers, fail within the deadline.
pub async fn peer_down_fails_within_the_deadline<F: TransportFixture>(f: &F) {
    let cfg = NetConfig {
        connect_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_millis(500),
        ..test_config()
    };
    let limit = cfg.connect_timeout + cfg.request_timeout + Duration::from_secs(1);
    let dead = dead_addr();
    let t = client_to(f, dead, cfg.clone());
    let c = f.service_client(cfg.clone());
    for attempt in 0..3 {
        let started = Instant::now();
        let err = t.call(FROM, TO, heartbeat(attempt)).await.unwrap_err();
        within(started, limit, "a call to a closed port");
        assert!(matches!(err, TransportError::Unreachable { .. } | TransportError::Timeout { .. }), "{err}");
        let started = Instant::now();
        assert!(c.call_service(&dead.to_string(), ServiceRequest::Status).await.is_err());
        within(started, limit, "a service call to a closed port");
    }

    // A black hole: accepts connections, reads nothing, answers nothing.
    let hole = tokio::net::TcpListener::bind(any_port()).await.unwrap();
    let hole_addr = hole.local_addr().unwrap();
    let keeper = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = hole.accept().await {
            held.push(sock);
        }
    });
    let t = client_to(f, hole_addr, cfg.clone());
    for attempt in 0..2 {
        let started = Instant::now();
        let err = t.call(FROM, TO, heartbeat(attempt)).await.unwrap_err();
        within(started, limit, "a call to a server that never answers");
        assert!(matches!(err, TransportError::Unreachable { .. } | TransportError::Timeout { .. }), "{err}");
    }
    let started = Instant::now();
    assert!(c.call_service(&hole_addr.to_string(), ServiceRequest::Status).await.is_err());
    within(started, limit, "a service call to a server that never answers");
    keeper.abort();
}

async fn until_ok<T, Fut: std::future::Future<Output = Result<T, TransportError>>>(
    what: &str,
    mut attempt: impl FnMut() -> Fut,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match attempt().await {
            Ok(v) => return v,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "{what}: not yet");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{what}: still failing after 10 s: {e}"),
        }
    }
}

/// Addresses that are not `host:port`, or whose host does not resolve, fail
/// each call at once with an error naming the address.
pub async fn bad_and_unresolvable_addresses_fail_cleanly<F: TransportFixture>(f: &F) {
    for (addr, needle) in
        [("no-such-host.invalid:7000", "resolve"), ("not an address", "address"), ("host:99999", "address")]
    {
        let t = f.raft_client(GROUP, BTreeMap::from([(TO, addr.to_string())]), test_config());
        let err = t.call(FROM, TO, heartbeat(1)).await.unwrap_err();
        assert!(matches!(err, TransportError::Unreachable { .. }), "{addr}: {err}");
        assert!(err.to_string().contains(needle), "{addr}: `{err}` should mention `{needle}`");
        let c = f.service_client(test_config());
        let err = c.call_service(addr, ServiceRequest::Status).await.unwrap_err();
        assert!(err.to_string().contains(needle), "{addr}: `{err}` should mention `{needle}`");
    }
    let t = f.raft_client(GROUP, BTreeMap::new(), test_config());
    let err = t.call(FROM, TO, heartbeat(1)).await.unwrap_err();
    assert!(err.to_string().contains("no address"), "a member without an address: {err}");
}

/// After a server goes down and comes back on the same address, the same
/// client's calls succeed again (it reconnects, after backing off).
pub async fn peer_restart_calls_succeed_again<F: TransportFixture>(f: &F) {
    let (routes, member, service) = echo_routes();
    let server = start(f, any_port(), routes.clone(), test_config()).await;
    let addr = server.addr();
    let t = client_to(f, addr, test_config());
    let c = f.service_client(test_config());
    t.call(FROM, TO, heartbeat(1)).await.unwrap();
    c.call_service(&addr.to_string(), ServiceRequest::Status).await.unwrap();
    server.stop().await;

    assert!(t.call(FROM, TO, heartbeat(2)).await.is_err(), "a call to a stopped server fails");
    assert!(c.call_service(&addr.to_string(), ServiceRequest::Status).await.is_err());

    let server = until_ok("restarting the server on the same port", || async {
        f.serve(addr, routes.clone(), test_config()).await.map_err(|e| TransportError::unreachable(TO, e))
    })
    .await;
    until_ok("a raft call after the restart", || t.call(FROM, TO, heartbeat(3))).await;
    let addr_text = addr.to_string();
    until_ok("a service call after the restart", || c.call_service(&addr_text, ServiceRequest::Status)).await;
    for i in 0..20 {
        t.call(FROM, TO, heartbeat(10 + i)).await.unwrap();
    }
    assert!(member.calls() >= 22);
    assert!(service.calls() >= 2);
    server.stop().await;
}

fn assert_refused(outcome: RawOutcome, what: &str) -> String {
    match outcome {
        RawOutcome::Refused(msg) => msg,
        other => panic!("{what}: expected an error reply, got {other:?}"),
    }
}

/// Garbage, unknown RPCs, truncated and semantically invalid bodies each get
/// an error reply; none reaches the member, and the server keeps serving.
pub async fn hostile_bodies_get_error_replies_and_the_server_keeps_serving<F: TransportFixture>(f: &F) {
    let (routes, member, service) = echo_routes();
    let server = start(f, any_port(), routes, test_config()).await;
    let addr = server.addr();
    let garbage = Bytes::from(vec![0xffu8; 64]);
    for rpc in f.rpcs() {
        assert_refused(f.send_raw(addr, &rpc, garbage.clone()).await, &format!("garbage to {rpc}"));
    }
    for rpc in ["raft/bogus", "kv/bogus", "nothing/at_all"] {
        assert_refused(f.send_raw(addr, rpc, garbage.clone()).await, &format!("unknown rpc {rpc}"));
    }
    let route = RaftRoute { group: GROUP, from: FROM, to: TO };
    let (rpc, body) = f.encode_raft(route, append(3, vec![Bytes::from(vec![5u8; 4096])]));
    assert_refused(f.send_raw(addr, &rpc, body.slice(..body.len() / 2)).await, "a truncated append");
    let mut gap = append(3, vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
    if let RaftRequest::AppendEntries(a) = &mut gap {
        a.entries[1].index = LogIndex(9);
    }
    let (rpc, body) = f.encode_raft(route, gap);
    let msg = assert_refused(f.send_raw(addr, &rpc, body).await, "an append with a gap in its entries");
    assert!(msg.contains("entries"), "the reply names the bad field: {msg}");
    let (rpc, body) = f.encode_raft(RaftRoute { group: GROUP, from: NodeId(0), to: TO }, heartbeat(1));
    assert_refused(f.send_raw(addr, &rpc, body).await, "a heartbeat from node 0");
    assert_eq!(member.calls(), 0, "no hostile request reached the member");
    assert_eq!(service.calls(), 0, "no hostile request reached the service");

    let t = client_to(f, addr, test_config());
    assert_eq!(t.call(FROM, TO, heartbeat(5)).await.unwrap(), EchoMember::answer(&heartbeat(5)).unwrap());
    let (rpc, body) = f.encode_raft(route, heartbeat(6));
    assert!(matches!(f.send_raw(addr, &rpc, body).await, RawOutcome::Answered(_)), "a valid raw request is answered");
    assert_eq!(member.calls(), 2);
    server.stop().await;
}

/// Messages over the limit are refused with an error naming it: before
/// sending when the sender's limit is exceeded, by the server otherwise; the
/// server keeps serving.
pub async fn oversize_messages_are_refused_naming_the_limit<F: TransportFixture>(f: &F) {
    let limit = 64 << 10;
    let small = NetConfig { max_message_bytes: limit, ..test_config() };
    let (routes, member, service) = echo_routes();
    let server = start(f, any_port(), routes, small.clone()).await;
    let addr = server.addr();
    let big = append(1, vec![Bytes::from(vec![1u8; 100 << 10])]);
    let needle = limit.to_string();

    let t = client_to(f, addr, small.clone());
    match t.call(FROM, TO, big.clone()).await {
        Err(e @ TransportError::TooLarge { .. }) => assert!(e.to_string().contains(&needle), "{e}"),
        other => panic!("a client over its own limit must refuse to send: {other:?}"),
    }
    let c = f.service_client(small.clone());
    let put = kv(1, KvOp::Put { key: Bytes::from_static(b"k"), value: Bytes::from(vec![0u8; 100 << 10]) });
    match c.call_service(&addr.to_string(), put.clone()).await {
        Err(e @ TransportError::TooLarge { .. }) => assert!(e.to_string().contains(&needle), "{e}"),
        other => panic!("a service client over its own limit must refuse to send: {other:?}"),
    }
    assert_eq!((member.calls(), service.calls()), (0, 0), "nothing was sent");

    let t = client_to(f, addr, test_config());
    assert_rejected(t.call(FROM, TO, big.clone()).await, &needle, "an append over the server's limit");
    let c = f.service_client(test_config());
    assert_rejected(c.call_service(&addr.to_string(), put).await, &needle, "a put over the server's limit");
    let (rpc, body) = f.encode_raft(RaftRoute { group: GROUP, from: FROM, to: TO }, big);
    let msg = assert_refused(f.send_raw(addr, &rpc, body).await, "a raw body over the limit");
    assert!(msg.contains(&needle), "the reply names the limit: {msg}");
    assert_eq!((member.calls(), service.calls()), (0, 0), "nothing over the limit was delivered");

    t.call(FROM, TO, heartbeat(1)).await.unwrap();
    c.call_service(&addr.to_string(), ServiceRequest::Status).await.unwrap();
    server.stop().await;
}
