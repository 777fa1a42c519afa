//! The gRPC transport as a conformance-suite fixture.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Buf, BufMut, Bytes};
use raftkv_core::api::ServiceClient;
use raftkv_core::raft::RaftRequest;
use raftkv_core::transport::Transport;
use raftkv_core::{GroupId, NodeId};
use raftkv_transport_grpc::{GrpcClient, GrpcServer};
use raftkv_wire::net::{DialService, Dialer};
use raftkv_wire::net::{NetConfig, RaftRoute, Routes};
use raftkv_wire::testkit::transport::{RawOutcome, RunningServer, TransportFixture};
use raftkv_wire::{RaftRequestPb, RAFT_RPCS, SERVICE_RPCS};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataMap;
use tonic::transport::Endpoint;
use tonic::Extensions;
use tonic::{Code, Status};

pub struct GrpcFixture;

struct Running(GrpcServer);

#[async_trait]
impl RunningServer for Running {
    fn addr(&self) -> SocketAddr {
        self.0.addr()
    }

    async fn stop(self: Box<Self>) {
        self.0.stop().await;
    }
}

/// Bytes in, bytes out: lets a test put anything on the wire.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

fn camel(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_uppercase().chain(c).collect::<String>()).unwrap_or_default()
        })
        .collect()
}

/// `raft/append_entries` → `/raftkv.v1.Raft/AppendEntries`.
fn grpc_path(rpc: &str) -> String {
    let (service, method) = rpc.split_once('/').unwrap_or((rpc, ""));
    format!("/raftkv.v1.{}/{}", camel(service), camel(method))
}

fn outcome<T>(result: Result<T, Status>, body: impl FnOnce(T) -> Bytes) -> RawOutcome {
    match result {
        Ok(v) => RawOutcome::Answered(body(v)),
        Err(s) if s.code() == Code::Unavailable && s.metadata().get("raftkv-error").is_none() => {
            RawOutcome::Failed(s.to_string())
        }
        Err(s) => RawOutcome::Refused(s.message().to_string()),
    }
}

#[async_trait]
impl TransportFixture for GrpcFixture {
    async fn serve(&self, addr: SocketAddr, routes: Routes, cfg: NetConfig) -> Result<Box<dyn RunningServer>, String> {
        let server = GrpcServer::start(addr, routes, &cfg).await.map_err(|e| e.to_string())?;
        Ok(Box::new(Running(server)))
    }

    fn raft_client(&self, group: GroupId, peers: BTreeMap<NodeId, String>, cfg: NetConfig) -> Arc<dyn Transport> {
        Arc::new(GrpcClient::new(cfg).expect("client config").raft(group, peers))
    }

    fn service_client(&self, cfg: NetConfig) -> Arc<dyn ServiceClient> {
        Arc::new(GrpcClient::new(cfg).expect("client config"))
    }

    fn encode_raft(&self, route: RaftRoute, request: RaftRequest) -> (String, Bytes) {
        let wire = RaftRequestPb::from_core(route, request);
        (format!("raft/{}", wire.rpc()), Bytes::from(wire.encode_to_vec()))
    }

    async fn send_raw(&self, addr: SocketAddr, rpc: &str, body: Bytes) -> RawOutcome {
        send_raw_with(addr, rpc, body, MetadataMap::new()).await
    }

    fn encode_raft_traced(&self, route: RaftRoute, request: RaftRequest, traceparent: &str) -> (String, Bytes) {
        let mut wire = RaftRequestPb::from_core(route, request);
        // Raw, not through `with_traceparent`: hostile values are the point.
        wire.route_mut().expect("a route").traceparent = traceparent.to_string();
        (format!("raft/{}", wire.rpc()), Bytes::from(wire.encode_to_vec()))
    }

    async fn send_raw_traced(&self, addr: SocketAddr, rpc: &str, body: Bytes, traceparent: &[u8]) -> RawOutcome {
        let mut headers = http::HeaderMap::new();
        let value = http::HeaderValue::from_bytes(traceparent).expect("the case sends valid header bytes");
        headers.insert(raftkv_core::trace::TRACEPARENT, value);
        send_raw_with(addr, rpc, body, MetadataMap::from_headers(headers)).await
    }

    fn rpcs(&self) -> Vec<String> {
        RAFT_RPCS
            .iter()
            .map(|r| format!("raft/{r}"))
            .chain(std::iter::once("raft/pipeline".to_string()))
            .chain(SERVICE_RPCS.iter().map(|r| (*r).to_string()))
            .collect()
    }

    fn ordered(&self) -> bool {
        true
    }
}

/// `message` as a request carrying `metadata`.
fn request<T>(metadata: &MetadataMap, message: T) -> tonic::Request<T> {
    tonic::Request::from_parts(metadata.clone(), Extensions::default(), message)
}

/// Send `body` as the request (or the only message) of `rpc`, with `metadata`.
async fn send_raw_with(addr: SocketAddr, rpc: &str, body: Bytes, metadata: MetadataMap) -> RawOutcome {
    let dialer = Dialer::new(&NetConfig::default(), &[]).unwrap();
    let channel = match Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector(DialService(dialer))
        .await
    {
        Ok(c) => c,
        Err(e) => return RawOutcome::Failed(e.to_string()),
    };
    let mut grpc =
        tonic::client::Grpc::new(channel).max_decoding_message_size(usize::MAX).max_encoding_message_size(usize::MAX);
    if let Err(e) = grpc.ready().await {
        return RawOutcome::Failed(e.to_string());
    }
    let path: http::uri::PathAndQuery = grpc_path(rpc).parse().unwrap();
    match rpc {
        "raft/install_snapshot" => {
            let stream = tokio_stream::once(body);
            outcome(
                grpc.client_streaming(request(&metadata, stream), path, RawCodec).await,
                tonic::Response::into_inner,
            )
        }
        "raft/pipeline" => {
            let stream = tokio_stream::once(body);
            match grpc.streaming(request(&metadata, stream), path, RawCodec).await {
                Ok(response) => {
                    let mut replies = response.into_inner();
                    outcome(replies.message().await, Option::unwrap_or_default)
                }
                Err(s) => outcome::<Bytes>(Err(s), |b| b),
            }
        }
        _ => outcome(grpc.unary(request(&metadata, body), path, RawCodec).await, tonic::Response::into_inner),
    }
}
