//! Cases of the bounds a server keeps on what callers make it hold:
//! connections that never speak, a flood of them, and clients that would
//! take the connections kept for peers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::cases::{client_to, echo_routes, heartbeat, start, FROM, TO};
use super::{any_port, test_config, EchoMember, TransportFixture};
use crate::net::{ClusterToken, NetConfig, ServerLimits};
use raftkv_core::api::ServiceRequest;
use raftkv_core::transport::TransportError;

/// Whether the server closed `sock` (reading ends or fails) within `limit`.
async fn closed_within(sock: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(limit, sock.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

fn limits(cfg: NetConfig, server: ServerLimits) -> NetConfig {
    NetConfig { server, ..cfg }
}

/// A connection that sends nothing is closed once the first-request
/// deadline passes, and the server goes on serving.
pub async fn silent_connections_are_closed_at_the_first_request_deadline<F: TransportFixture>(f: &F) {
    let deadline = Duration::from_millis(400);
    let server_limits = ServerLimits { first_request_timeout: deadline, ..ServerLimits::default() };
    let (routes, _, _) = echo_routes();
    let server = start(f, any_port(), routes, limits(test_config(), server_limits)).await;
    let started = Instant::now();
    let mut silent = TcpStream::connect(server.addr()).await.unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await, "a silent connection was kept");
    let waited = started.elapsed();
    assert!(waited >= deadline, "closed after {waited:?}, before the {deadline:?} deadline");
    let t = client_to(f, server.addr(), test_config());
    assert_eq!(t.call(FROM, TO, heartbeat(1)).await.unwrap(), EchoMember::answer(&heartbeat(1)).unwrap());
    server.stop().await;
}

/// Far more connections that never speak than the server keeps: the
/// oldest make room for newer ones, so a caller that speaks at once still
/// gets through, and the server never holds more than its limit.
pub async fn a_flood_of_silent_connections_does_not_keep_callers_out<F: TransportFixture>(f: &F) {
    let server_limits = ServerLimits { max_connections: 64, max_silent_connections: 16, ..ServerLimits::default() };
    let (routes, member, _) = echo_routes();
    let server = start(f, any_port(), routes, limits(test_config(), server_limits)).await;
    let mut flood = Vec::new();
    for _ in 0..300 {
        flood.push(TcpStream::connect(server.addr()).await.unwrap());
    }
    for i in 0..5 {
        let t = client_to(f, server.addr(), test_config());
        let answer = t.call(FROM, TO, heartbeat(i)).await;
        assert_eq!(answer.unwrap(), EchoMember::answer(&heartbeat(i)).unwrap(), "a caller during the flood");
    }
    assert_eq!(member.calls(), 5);
    // The oldest of the flood were closed to make room.
    assert!(closed_within(&mut flood[0], Duration::from_secs(5)).await, "the oldest silent connection was kept");
    let mut still_open = 0;
    for sock in flood.iter_mut().rev().take(32) {
        if !closed_within(sock, Duration::from_millis(20)).await {
            still_open += 1;
        }
    }
    assert!(still_open <= 16, "{still_open} of the newest 32 silent connections are open; at most 16 may be");
    server.stop().await;
}

/// Clients may hold only `max_connections - reserved_for_peers`
/// connections: a client past that share is refused with an error saying
/// so, while a peer (the cluster token) still gets a connection.
pub async fn clients_cannot_take_the_connections_kept_for_peers<F: TransportFixture>(f: &F) {
    let token = "the-cluster-token-for-limits";
    let server_limits = ServerLimits {
        max_connections: 8,
        reserved_for_peers: 4,
        max_silent_connections: 8,
        ..ServerLimits::default()
    };
    let server_cfg = NetConfig { cluster_token: Some(ClusterToken::new(token).unwrap()), ..test_config() };
    let (routes, member, _) = echo_routes();
    let server = start(f, any_port(), routes, limits(server_cfg, server_limits)).await;
    let addr = server.addr().to_string();
    // Each client is a connection of its own, kept open after its call.
    let mut clients = Vec::new();
    for i in 0..4 {
        let c = f.service_client(test_config());
        let answer = c.call_service(&addr, ServiceRequest::Status).await;
        assert!(answer.is_ok(), "client {i} within the clients' share: {answer:?}");
        clients.push(c);
    }
    let extra = f.service_client(test_config());
    match extra.call_service(&addr, ServiceRequest::Status).await {
        Err(TransportError::Rejected { reason, .. }) if reason.contains("client connections") => {}
        other => panic!("a client past the clients' share: expected a refusal naming it, got {other:?}"),
    }
    let peer_cfg = NetConfig { cluster_token: Some(ClusterToken::new(token).unwrap()), ..test_config() };
    let t = client_to(f, server.addr(), peer_cfg);
    assert_eq!(t.call(FROM, TO, heartbeat(3)).await.unwrap(), EchoMember::answer(&heartbeat(3)).unwrap());
    assert_eq!(member.calls(), 1);
    drop(clients);
    server.stop().await;
}
