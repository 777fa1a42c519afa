//! TLS and mTLS cases: servers present a certificate signed by the cluster
//! CA; with mTLS they refuse clients that cannot present one; Raft and
//! migration RPCs need a certificate that names the sending member.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use super::access::{assert_unauthorized, migration_requests};
use super::cases::{client_to, echo_routes, heartbeat, start, FROM, GROUP, TO};
use super::{any_port, test_config, EchoMember, TestPki, TransportFixture};
use crate::net::{Identity, NetConfig, TlsConfig};
use raftkv_core::api::{DeleteShardsRequest, ServiceRequest};
use raftkv_core::types::{ConfigNum, GroupId, ShardId};

fn server_cfg(pki: &TestPki, mtls: bool) -> NetConfig {
    NetConfig {
        tls: Some(TlsConfig {
            ca_pem: pki.ca_pem.clone(),
            identity: Some(pki.node.clone()),
            require_client_cert: mtls,
            server_name: None,
        }),
        ..test_config()
    }
}

fn client_cfg(ca_pem: &[u8], identity: Option<&Identity>) -> NetConfig {
    NetConfig {
        tls: Some(TlsConfig {
            ca_pem: ca_pem.to_vec(),
            identity: identity.cloned(),
            require_client_cert: identity.is_some(),
            server_name: None,
        }),
        ..test_config()
    }
}

async fn expect_refused<F: TransportFixture>(f: &F, server_mtls: bool, client: NetConfig, pki: &TestPki, what: &str) {
    let (routes, member, service) = echo_routes();
    let server = start(f, any_port(), routes, server_cfg(pki, server_mtls)).await;
    let t = client_to(f, server.addr(), client.clone());
    for i in 0..2 {
        let r = t.call(FROM, TO, heartbeat(i)).await;
        assert!(r.is_err(), "{what}: a raft call must fail, got {r:?}");
    }
    let c = f.service_client(client);
    let r = c.call_service(&server.addr().to_string(), ServiceRequest::Status).await;
    assert!(r.is_err(), "{what}: a service call must fail, got {r:?}");
    assert_eq!((member.calls(), service.calls()), (0, 0), "{what}: nothing reached the server's handlers");

    // The server is fine: a proper client gets through.
    let good = client_cfg(&pki.ca_pem, Some(&pki.node));
    let t = client_to(f, server.addr(), good);
    assert_eq!(t.call(FROM, TO, heartbeat(7)).await.unwrap(), EchoMember::answer(&heartbeat(7)).unwrap());
    server.stop().await;
}

/// A client trusting the cluster CA talks to a TLS server: a member with
/// its certificate sends Raft RPCs, a client without one calls services.
pub async fn tls_calls_succeed_with_the_cluster_ca<F: TransportFixture>(f: &F, pki: &TestPki) {
    let (routes, _, _) = echo_routes();
    let server = start(f, any_port(), routes, server_cfg(pki, false)).await;
    let t = client_to(f, server.addr(), client_cfg(&pki.ca_pem, Some(&pki.node)));
    for i in 0..10 {
        assert_eq!(t.call(FROM, TO, heartbeat(i)).await.unwrap(), EchoMember::answer(&heartbeat(i)).unwrap());
    }
    let c = f.service_client(client_cfg(&pki.ca_pem, None));
    c.call_service(&server.addr().to_string(), ServiceRequest::Status).await.unwrap();
    server.stop().await;
}

/// With TLS, Raft and migration RPCs need a certificate of the cluster CA
/// that names the sending member: no certificate, a client certificate, or
/// a certificate naming another member gets them refused (and nothing
/// reaches the member), while client RPCs are answered for all of them.
pub async fn tls_peer_rpcs_need_a_certificate_naming_the_sender<F: TransportFixture>(f: &F, pki: &TestPki) {
    for mtls in [false, true] {
        let (routes, member, service) = echo_routes();
        let server = start(f, any_port(), routes, server_cfg(pki, mtls)).await;
        let addr = server.addr().to_string();
        let mut outsiders =
            vec![("a client certificate", Some(&pki.client)), ("member 3's certificate", Some(&pki.member_3))];
        if !mtls {
            outsiders.push(("no certificate", None));
        }
        for (what, identity) in outsiders {
            let cfg = client_cfg(&pki.ca_pem, identity);
            let t = client_to(f, server.addr(), cfg.clone());
            assert_unauthorized(
                &t.call(FROM, TO, heartbeat(1)).await,
                &format!("a heartbeat as member {FROM} with {what}"),
            );
            let c = f.service_client(cfg);
            let status = c.call_service(&addr, ServiceRequest::Status).await;
            assert!(status.is_ok(), "{what}: client RPCs stay open: {status:?}");
            if identity.is_some_and(|i| std::ptr::eq(i, &pki.member_3)) {
                continue;
            }
            for request in migration_requests() {
                assert_unauthorized(
                    &c.call_service(&addr, request.clone()).await,
                    &format!("{} with {what}", request.name()),
                );
            }
        }
        assert_eq!(member.calls(), 0, "a refused Raft RPC reached the member");
        // Member 3 of group 1 may ask for deletes for its own group, not for another's.
        let c = f.service_client(client_cfg(&pki.ca_pem, Some(&pki.member_3)));
        let delete = |group| {
            ServiceRequest::DeleteShards(DeleteShardsRequest { config: ConfigNum(4), shards: vec![ShardId(1)], group })
        };
        assert!(c.call_service(&addr, delete(GROUP)).await.is_ok(), "a member speaks for its own group");
        assert_unauthorized(&c.call_service(&addr, delete(GroupId(2))).await, "a delete for another group");
        let served = service.calls();
        // The node's certificate names member FROM: its Raft RPCs go through.
        let t = client_to(f, server.addr(), client_cfg(&pki.ca_pem, Some(&pki.node)));
        assert_eq!(t.call(FROM, TO, heartbeat(7)).await.unwrap(), EchoMember::answer(&heartbeat(7)).unwrap());
        assert_eq!(member.calls(), 1);
        assert!(served >= 2);
        server.stop().await;
    }
}

/// A client refuses a server whose certificate another CA signed.
pub async fn tls_client_refuses_a_server_from_another_ca<F: TransportFixture>(f: &F, pki: &TestPki) {
    expect_refused(f, false, client_cfg(&pki.rogue_ca_pem, None), pki, "client trusting another CA").await;
}

/// A TLS server refuses a plaintext client.
pub async fn tls_server_refuses_a_plaintext_client<F: TransportFixture>(f: &F, pki: &TestPki) {
    expect_refused(f, false, test_config(), pki, "plaintext client").await;
}

/// An mTLS server accepts a client presenting a cluster certificate.
pub async fn mtls_accepts_a_client_with_a_cluster_certificate<F: TransportFixture>(f: &F, pki: &TestPki) {
    let (routes, member, _) = echo_routes();
    let server = start(f, any_port(), routes, server_cfg(pki, true)).await;
    let cfg = client_cfg(&pki.ca_pem, Some(&pki.node));
    let t = client_to(f, server.addr(), cfg.clone());
    for i in 0..10 {
        assert_eq!(t.call(FROM, TO, heartbeat(i)).await.unwrap(), EchoMember::answer(&heartbeat(i)).unwrap());
    }
    let c = f.service_client(cfg);
    c.call_service(&server.addr().to_string(), ServiceRequest::Status).await.unwrap();
    assert_eq!(member.calls(), 10);
    server.stop().await;
}

/// An mTLS server refuses a client that presents no certificate.
pub async fn mtls_refuses_a_client_without_a_certificate<F: TransportFixture>(f: &F, pki: &TestPki) {
    expect_refused(f, true, client_cfg(&pki.ca_pem, None), pki, "client without a certificate").await;
}

/// An mTLS server refuses a client whose certificate another CA signed.
pub async fn mtls_refuses_a_client_certificate_from_another_ca<F: TransportFixture>(f: &F, pki: &TestPki) {
    expect_refused(f, true, client_cfg(&pki.ca_pem, Some(&pki.rogue)), pki, "client with a rogue certificate").await;
}
