//! The HTTP transport as a conformance-suite fixture.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use raftkv_core::api::ServiceClient;
use raftkv_core::raft::RaftRequest;
use raftkv_core::transport::Transport;
use raftkv_core::{GroupId, NodeId};
use raftkv_transport_http::{HttpClient, HttpServer};
use raftkv_wire::frame::encode_frame;
use raftkv_wire::net::{NetConfig, RaftRoute, Routes};
use raftkv_wire::testkit::transport::{RawOutcome, RunningServer, TransportFixture};
use raftkv_wire::{RaftRequestPb, RAFT_RPCS, SERVICE_RPCS};

pub struct HttpFixture;

struct Running(HttpServer);

#[async_trait]
impl RunningServer for Running {
    fn addr(&self) -> SocketAddr {
        self.0.addr()
    }

    async fn stop(self: Box<Self>) {
        self.0.stop().await;
    }
}

/// POST `body` to `path` on a fresh plaintext connection; the reply's status and body.
pub async fn post_raw(addr: SocketAddr, path: &str, body: Bytes) -> Result<(http::StatusCode, Bytes), String> {
    post_raw_with(addr, path, body, http::HeaderMap::new()).await
}

/// As [`post_raw`], with `headers` added to the request.
pub async fn post_raw_with(
    addr: SocketAddr,
    path: &str,
    body: Bytes,
    headers: http::HeaderMap,
) -> Result<(http::StatusCode, Bytes), String> {
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut request = http::Request::post(path)
        .header(http::header::HOST, addr.to_string())
        .header(http::header::CONTENT_TYPE, "application/x-protobuf")
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    request.headers_mut().extend(headers);
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((status, body))
}

/// `wire` as the HTTP transport posts it: the RPC and the body (a snapshot
/// chunk as a body of one frame).
fn encode(wire: &RaftRequestPb) -> (String, Bytes) {
    let rpc = format!("raft/{}", wire.rpc());
    let body = match wire {
        RaftRequestPb::InstallSnapshot(chunk) => encode_frame(chunk),
        other => Bytes::from(other.encode_to_vec()),
    };
    (rpc, body)
}

/// POST `body` as the request of `rpc`, with `headers`.
async fn send_raw_with(addr: SocketAddr, rpc: &str, body: Bytes, headers: http::HeaderMap) -> RawOutcome {
    let (service, method) = rpc.split_once('/').unwrap_or((rpc, ""));
    match post_raw_with(addr, &format!("/{service}/v1/{method}"), body, headers).await {
        Ok((status, body)) if status.is_success() => RawOutcome::Answered(body),
        Ok((status, body)) => RawOutcome::Refused(format!("{status}: {}", String::from_utf8_lossy(&body))),
        Err(e) => RawOutcome::Failed(e),
    }
}

#[async_trait]
impl TransportFixture for HttpFixture {
    async fn serve(&self, addr: SocketAddr, routes: Routes, cfg: NetConfig) -> Result<Box<dyn RunningServer>, String> {
        let server = HttpServer::start(addr, routes, &cfg).await.map_err(|e| e.to_string())?;
        Ok(Box::new(Running(server)))
    }

    fn raft_client(&self, group: GroupId, peers: BTreeMap<NodeId, String>, cfg: NetConfig) -> Arc<dyn Transport> {
        Arc::new(HttpClient::new(cfg).expect("client config").raft(group, peers))
    }

    fn service_client(&self, cfg: NetConfig) -> Arc<dyn ServiceClient> {
        Arc::new(HttpClient::new(cfg).expect("client config"))
    }

    fn encode_raft(&self, route: RaftRoute, request: RaftRequest) -> (String, Bytes) {
        encode(&RaftRequestPb::from_core(route, request))
    }

    async fn send_raw(&self, addr: SocketAddr, rpc: &str, body: Bytes) -> RawOutcome {
        send_raw_with(addr, rpc, body, http::HeaderMap::new()).await
    }

    fn encode_raft_traced(&self, route: RaftRoute, request: RaftRequest, traceparent: &str) -> (String, Bytes) {
        let mut wire = RaftRequestPb::from_core(route, request);
        // Raw, not through `with_traceparent`: hostile values are the point.
        wire.route_mut().expect("a route").traceparent = traceparent.to_string();
        encode(&wire)
    }

    async fn send_raw_traced(&self, addr: SocketAddr, rpc: &str, body: Bytes, traceparent: &[u8]) -> RawOutcome {
        let mut headers = http::HeaderMap::new();
        let value = http::HeaderValue::from_bytes(traceparent).expect("the case sends valid header bytes");
        headers.insert(raftkv_core::trace::TRACEPARENT, value);
        send_raw_with(addr, rpc, body, headers).await
    }

    fn rpcs(&self) -> Vec<String> {
        RAFT_RPCS.iter().map(|r| format!("raft/{r}")).chain(SERVICE_RPCS.iter().map(|r| (*r).to_string())).collect()
    }

    fn ordered(&self) -> bool {
        false
    }
}
