//! The transport conformance suite: what every network transport must do,
//! as async test cases run against a [`TransportFixture`] (which starts the
//! transport's servers and clients on loopback).
//!
//! A transport crate runs the whole suite with
//! [`transport_conformance_tests!`](crate::transport_conformance_tests),
//! the TLS cases with
//! [`tls_conformance_tests!`](crate::tls_conformance_tests), the
//! trace-context cases with
//! [`trace_conformance_tests!`](crate::trace_conformance_tests), and a real
//! 3-member Raft group over its sockets with
//! [`transport_cluster_tests!`](crate::transport_cluster_tests). Each case is
//! bounded in real time and panics with a description on failure.

pub mod access;
pub mod cases;
pub mod cluster;
pub mod fuzz;
mod handlers;
pub mod limits;
pub mod tls;
pub mod trace;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

pub use handlers::{
    snapshot_byte, EchoMember, EchoService, SnapshotMeter, StallingSnapshot, SyntheticSnapshot, REFUSED_SNAPSHOT_INDEX,
};

use crate::net::{Identity, NetConfig, RaftRoute, Routes};
use raftkv_core::api::ServiceClient;
use raftkv_core::raft::RaftRequest;
use raftkv_core::transport::Transport;
use raftkv_core::types::{GroupId, NodeId};

/// How a server answered a raw request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawOutcome {
    /// A success status, with the reply body.
    Answered(Bytes),
    /// An error status, with the server's message.
    Refused(String),
    /// No answer: the connection failed.
    Failed(String),
}

/// A server started by a fixture.
#[async_trait]
pub trait RunningServer: Send + Sync {
    /// The address it listens on.
    fn addr(&self) -> SocketAddr;
    /// Stop it: stop accepting, close connections, free the port.
    async fn stop(self: Box<Self>);
}

/// What the suite needs of a network transport.
#[async_trait]
pub trait TransportFixture: Send + Sync + 'static {
    /// Start a server for `routes` on `addr` (port 0: any free port) with `cfg`.
    async fn serve(&self, addr: SocketAddr, routes: Routes, cfg: NetConfig) -> Result<Box<dyn RunningServer>, String>;
    /// A Raft transport of `group` that reaches member `n` at `peers[n]`.
    fn raft_client(&self, group: GroupId, peers: BTreeMap<NodeId, String>, cfg: NetConfig) -> Arc<dyn Transport>;
    /// A service-RPC client.
    fn service_client(&self, cfg: NetConfig) -> Arc<dyn ServiceClient>;
    /// `request` as the transport encodes it: the RPC's name (as in
    /// [`TransportFixture::rpcs`]) and the request body.
    fn encode_raft(&self, route: RaftRoute, request: RaftRequest) -> (String, Bytes);
    /// Send `body` as the request of `rpc` to the plaintext server at `addr`,
    /// bypassing every client-side check.
    async fn send_raw(&self, addr: SocketAddr, rpc: &str, body: Bytes) -> RawOutcome;
    /// As [`TransportFixture::encode_raft`], with `traceparent` as the
    /// request's trace context, exactly as given (no client-side check).
    fn encode_raft_traced(&self, route: RaftRoute, request: RaftRequest, traceparent: &str) -> (String, Bytes);
    /// As [`TransportFixture::send_raw`], with the bytes `traceparent`,
    /// exactly as given, as the trace context the transport carries beside
    /// the body (a service call's `traceparent` gRPC metadata or HTTP header).
    async fn send_raw_traced(&self, addr: SocketAddr, rpc: &str, body: Bytes, traceparent: &[u8]) -> RawOutcome;
    /// Every RPC the server routes, as `service/method` (`raft/append_entries`, `kv/get`, …).
    fn rpcs(&self) -> Vec<String>;
    /// Whether requests to one peer arrive in the order `call` was invoked.
    fn ordered(&self) -> bool;
}

/// Certificates for the TLS cases: a cluster CA and the certificates it
/// signed — a node's, naming members 1 to 3 of groups 0, 1 and 7
/// ([`member_uri`](crate::net::member_uri)); a client's, naming no
/// member; and one naming only member 3 of group 1 — and a rogue
/// certificate signed by an unrelated CA; each valid for `localhost` and
/// `127.0.0.1`, for serving and for client authentication.
#[derive(Clone, Debug)]
pub struct TestPki {
    /// The cluster CA.
    pub ca_pem: Vec<u8>,
    /// A node certificate signed by the cluster CA, naming members 1–3 of groups 0, 1 and 7.
    pub node: Identity,
    /// A client certificate signed by the cluster CA: it names no member.
    pub client: Identity,
    /// A certificate signed by the cluster CA naming only member 3 of group 1.
    pub member_3: Identity,
    /// The unrelated CA.
    pub rogue_ca_pem: Vec<u8>,
    /// A certificate signed by the unrelated CA.
    pub rogue: Identity,
}

/// Settings for tests: short deadlines and backoff so that every case is
/// quick, and kernel socket buffers of 256 KiB, so that what a snapshot case
/// measures is the transport's own buffering, not the kernel's (loopback
/// autotuning grows a receive buffer to 32 MiB).
#[must_use]
pub fn test_config() -> NetConfig {
    NetConfig {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(2),
        snapshot_idle_timeout: Duration::from_secs(10),
        backoff: crate::net::Backoff { initial: Duration::from_millis(20), max: Duration::from_millis(200) },
        socket_buffer_bytes: Some(256 << 10),
        ..NetConfig::default()
    }
}

/// Loopback, any free port.
#[must_use]
pub fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A loopback address nothing listens on (a port bound, then released).
#[must_use]
pub fn dead_addr() -> SocketAddr {
    std::net::TcpListener::bind(any_port()).and_then(|l| l.local_addr()).unwrap_or_else(|_| any_port())
}

/// Run every conformance case as its own `#[tokio::test]` against the
/// fixture `$fixture` (an expression, evaluated per test).
#[macro_export]
macro_rules! transport_conformance_tests {
    ($fixture:expr) => {
        $crate::__transport_cases!(
            $fixture;
            every_raft_rpc_round_trips,
            every_service_rpc_round_trips,
            unknown_members_and_missing_services_are_refused,
            thousand_concurrent_calls,
            appends_to_one_peer_keep_their_order,
            snapshot_of_256_mib_streams_with_bounded_memory,
            snapshot_stream_stops_at_the_first_refusal,
            stalled_snapshot_stream_is_abandoned_by_the_server,
            peer_down_fails_within_the_deadline,
            bad_and_unresolvable_addresses_fail_cleanly,
            peer_restart_calls_succeed_again,
            hostile_bodies_get_error_replies_and_the_server_keeps_serving,
            oversize_messages_are_refused_naming_the_limit,
            random_bytes_to_every_route_never_break_the_server,
            peer_rpcs_need_the_cluster_token,
            silent_connections_are_closed_at_the_first_request_deadline,
            a_flood_of_silent_connections_does_not_keep_callers_out,
            clients_cannot_take_the_connections_kept_for_peers,
        );
    };
}

/// Run the TLS and mTLS cases against `$fixture` with certificates `$pki`
/// (a [`TestPki`](crate::testkit::transport::TestPki) expression).
#[macro_export]
macro_rules! tls_conformance_tests {
    ($fixture:expr, $pki:expr) => {
        $crate::__transport_cases!(
            $fixture, $pki;
            tls_calls_succeed_with_the_cluster_ca,
            tls_peer_rpcs_need_a_certificate_naming_the_sender,
            tls_client_refuses_a_server_from_another_ca,
            tls_server_refuses_a_plaintext_client,
            mtls_accepts_a_client_with_a_cluster_certificate,
            mtls_refuses_a_client_without_a_certificate,
            mtls_refuses_a_client_certificate_from_another_ca,
        );
    };
}

/// Run a 3-member Raft group over `$fixture`'s sockets: agreement, leader
/// failure, snapshot install.
#[macro_export]
macro_rules! transport_cluster_tests {
    ($fixture:expr) => {
        $crate::__transport_cases!(
            $fixture;
            cluster_basic_agreement,
            cluster_leader_failure,
            cluster_snapshot_install,
        );
    };
}

/// Run the trace-context cases against `$fixture`, with `$subscriber` (a
/// `tracing::Subscriber` that gives spans ids and tracks the current span,
/// such as `tracing_subscriber::registry()`) as the global default.
#[macro_export]
macro_rules! trace_conformance_tests {
    ($fixture:expr, $subscriber:expr) => {
        $crate::trace_conformance_tests!(
            @cases $fixture, $subscriber;
            trace_context_reaches_the_span_every_rpc_is_handled_in,
            calls_outside_any_span_carry_no_trace_context,
            malformed_trace_context_is_ignored_and_the_call_answered,
        );
    };
    (@cases $fixture:expr, $subscriber:expr; $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::testkit::transport::trace::install_subscriber($subscriber);
                let fixture = $fixture;
                $crate::testkit::transport::run_case(stringify!($case), $crate::testkit::transport::cases_for::$case(&fixture)).await;
            }
        )+
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __transport_cases {
    ($fixture:expr; $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture = $fixture;
                $crate::testkit::transport::run_case(stringify!($case), $crate::testkit::transport::cases_for::$case(&fixture)).await;
            }
        )+
    };
    ($fixture:expr, $pki:expr; $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture = $fixture;
                let pki = $pki;
                $crate::testkit::transport::run_case(stringify!($case), $crate::testkit::transport::cases_for::$case(&fixture, &pki)).await;
            }
        )+
    };
}

/// Every case, under one path for the macros.
#[doc(hidden)]
pub mod cases_for {
    pub use super::access::*;
    pub use super::cases::*;
    pub use super::cluster::*;
    pub use super::fuzz::*;
    pub use super::limits::*;
    pub use super::tls::*;
    pub use super::trace::*;
}

/// Longest any one case may take in real time.
pub const CASE_LIMIT: Duration = Duration::from_secs(120);

/// Run `case`, failing it if it takes longer than [`CASE_LIMIT`].
///
/// # Panics
/// If the case panics or runs out of time.
pub async fn run_case(name: &str, case: impl std::future::Future<Output = ()>) {
    if tokio::time::timeout(CASE_LIMIT, case).await.is_err() {
        panic!("{name} did not finish within {CASE_LIMIT:?}");
    }
}
