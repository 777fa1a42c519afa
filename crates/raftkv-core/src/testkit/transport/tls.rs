//! TLS and mTLS cases: servers present a certificate signed by the cluster
//! CA; with mTLS they refuse clients that cannot present one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use super::cases::{client_to, echo_routes, heartbeat, start, FROM, TO};
use super::{any_port, test_config, EchoMember, TestPki, TransportFixture};
use crate::api::ServiceRequest;
use crate::transport::{Identity, NetConfig, TlsConfig};

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

/// A client trusting the cluster CA talks to a TLS server.
pub async fn tls_calls_succeed_with_the_cluster_ca<F: TransportFixture>(f: &F, pki: &TestPki) {
    let (routes, _, _) = echo_routes();
    let server = start(f, any_port(), routes, server_cfg(pki, false)).await;
    let cfg = client_cfg(&pki.ca_pem, None);
    let t = client_to(f, server.addr(), cfg.clone());
    for i in 0..10 {
        assert_eq!(t.call(FROM, TO, heartbeat(i)).await.unwrap(), EchoMember::answer(&heartbeat(i)).unwrap());
    }
    let c = f.service_client(cfg);
    c.call_service(&server.addr().to_string(), ServiceRequest::Status).await.unwrap();
    server.stop().await;
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
