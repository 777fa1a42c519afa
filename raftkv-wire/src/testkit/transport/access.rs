//! Cases of peer authentication by cluster token: Raft and migration RPCs
//! need the token, client RPCs do not.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::fmt::Debug;

use super::cases::{client_to, echo_routes, heartbeat, start, FROM, GROUP, TO};
use super::{any_port, test_config, EchoMember, TransportFixture};
use crate::net::{ClusterToken, NetConfig};
use raftkv_core::api::{DeleteShardsRequest, PullShardsRequest, ServiceRequest};
use raftkv_core::transport::TransportError;
use raftkv_core::types::{ConfigNum, ShardId};

/// The migration requests a peer sends (both need peer credentials).
#[must_use]
pub fn migration_requests() -> Vec<ServiceRequest> {
    vec![
        ServiceRequest::PullShards(PullShardsRequest {
            config: ConfigNum(4),
            shards: vec![ShardId(1)],
            after: None,
            max_bytes: 0,
        }),
        ServiceRequest::DeleteShards(DeleteShardsRequest {
            config: ConfigNum(4),
            shards: vec![ShardId(1)],
            group: GROUP,
        }),
    ]
}

/// Fail unless `result` is the server's refusal for lack of credentials.
pub fn assert_unauthorized<T: Debug>(result: &Result<T, TransportError>, what: &str) {
    match result {
        Err(TransportError::Rejected { reason, .. }) if reason.contains("refused") => {}
        other => panic!("{what}: expected a refusal for lack of credentials, got {other:?}"),
    }
}

fn with_token(token: Option<&str>) -> NetConfig {
    NetConfig { cluster_token: token.map(|t| ClusterToken::new(t).unwrap()), ..test_config() }
}

/// A server with a cluster token refuses Raft and migration RPCs that do not
/// carry it (none, or a wrong one) without reaching the member, answers them
/// with the token, and answers client RPCs either way.
pub async fn peer_rpcs_need_the_cluster_token<F: TransportFixture>(f: &F) {
    let token = "a-cluster-token-of-some-length";
    let (routes, member, _) = echo_routes();
    let server = start(f, any_port(), routes, with_token(Some(token))).await;
    let addr = server.addr().to_string();
    for (what, presented) in [("no token", None), ("a wrong token", Some("another-token-of-some-length"))] {
        let t = client_to(f, server.addr(), with_token(presented));
        assert_unauthorized(&t.call(FROM, TO, heartbeat(1)).await, &format!("a heartbeat with {what}"));
        let c = f.service_client(with_token(presented));
        for request in migration_requests() {
            assert_unauthorized(
                &c.call_service(&addr, request.clone()).await,
                &format!("{} with {what}", request.name()),
            );
        }
        let status = c.call_service(&addr, ServiceRequest::Status).await;
        assert!(status.is_ok(), "{what}: client RPCs need no token: {status:?}");
    }
    assert_eq!(member.calls(), 0, "a refused Raft RPC reached the member");
    let t = client_to(f, server.addr(), with_token(Some(token)));
    for i in 0..5 {
        assert_eq!(t.call(FROM, TO, heartbeat(i)).await.unwrap(), EchoMember::answer(&heartbeat(i)).unwrap());
    }
    let c = f.service_client(with_token(Some(token)));
    for request in migration_requests() {
        assert!(c.call_service(&addr, request.clone()).await.is_ok(), "{} with the token", request.name());
    }
    assert_eq!(member.calls(), 5);
    server.stop().await;
}
