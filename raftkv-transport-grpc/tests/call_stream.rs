//! The multiplexed call stream (`raftkv.v1.Calls/Stream`) as a raw client
//! sees it: answers carry their call's number and may come out of order, a
//! malformed frame gets an error reply and the stream goes on, and a
//! migration request is refused at the client before it is sent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use raftkv_core::api::{KvOp, KvRequest, PullShardsRequest, RequestId, ServiceClient, ServiceRequest, ServiceResponse};
use raftkv_core::{ClientId, ConfigNum, ShardId};
use raftkv_transport_grpc::{GrpcClient, GrpcServer};
use raftkv_wire::pb::{self, call_reply, calls_client::CallsClient, pipeline_error};
use raftkv_wire::testkit::transport::cases_for::echo_routes;
use raftkv_wire::testkit::transport::{any_port, test_config};
use raftkv_wire::ServiceRequestPb;
use tonic::transport::Endpoint;

fn get(seq: u64, key: &str) -> pb::CallRequest {
    let request = ServiceRequest::Kv(KvRequest {
        id: RequestId { client: ClientId(1), seq },
        op: KvOp::Get { key: Bytes::from(key.to_string()) },
    });
    ServiceRequestPb::from_core(request).into_call(seq, None).expect("a get travels on the stream")
}

#[tokio::test]
async fn every_call_is_answered_under_its_number_and_a_bad_frame_does_not_end_the_stream() {
    let (routes, _, _) = echo_routes();
    let server = GrpcServer::start(any_port(), routes, &test_config()).await.unwrap();
    let channel = Endpoint::from_shared(format!("http://{}", server.addr())).unwrap().connect().await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut replies = CallsClient::new(channel)
        .stream(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();

    tx.send(get(7, "abc")).unwrap();
    tx.send(pb::CallRequest { seq: 8, traceparent: String::new(), body: None }).unwrap();
    tx.send(get(9, "xyz")).unwrap();
    let mut answers = std::collections::BTreeMap::new();
    for _ in 0..3 {
        let reply = tokio::time::timeout(Duration::from_secs(5), replies.message()).await.unwrap().unwrap().unwrap();
        answers.insert(reply.seq, reply.body);
    }
    assert_eq!(answers.keys().copied().collect::<Vec<_>>(), vec![7, 8, 9]);
    let value = |body: &Option<call_reply::Body>| match body {
        Some(call_reply::Body::Kv(pb::KvResponse { result: Some(pb::kv_response::Result::Ok(ok)) })) => {
            ok.value.clone()
        }
        other => panic!("not a value: {other:?}"),
    };
    // The echo service answers a get with the key reversed.
    assert_eq!(value(&answers[&7]), Some(Bytes::from("cba")));
    assert_eq!(value(&answers[&9]), Some(Bytes::from("zyx")));
    match &answers[&8] {
        Some(call_reply::Body::Error(e)) => {
            assert_eq!(e.code, pipeline_error::Code::Malformed as i32);
            assert!(e.message.contains("body"), "{}", e.message);
        }
        other => panic!("a frame without body must get an error reply, got {other:?}"),
    }
    // Still open: another call is answered.
    tx.send(get(10, "q")).unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), replies.message()).await.unwrap().unwrap().unwrap();
    assert_eq!((reply.seq, value(&reply.body)), (10, Some(Bytes::from("q"))));
    server.stop().await;
}

#[tokio::test]
async fn the_client_sends_small_calls_on_the_stream_and_migration_as_unary_calls() {
    let (routes, _, service) = echo_routes();
    let server = GrpcServer::start(any_port(), routes, &test_config()).await.unwrap();
    let client: Arc<dyn ServiceClient> = Arc::new(GrpcClient::new(test_config()).unwrap());
    let addr = server.addr().to_string();
    let calls: Vec<_> = (0..64u64)
        .map(|seq| {
            let (client, addr) = (client.clone(), addr.clone());
            tokio::spawn(async move {
                let key = Bytes::from(format!("key-{seq}"));
                let request =
                    ServiceRequest::Kv(KvRequest { id: RequestId { client: ClientId(2), seq }, op: KvOp::Get { key } });
                (seq, client.call_service(&addr, request).await)
            })
        })
        .collect();
    for call in calls {
        let (seq, answer) = call.await.unwrap();
        let expected: Vec<u8> = format!("key-{seq}").bytes().rev().collect();
        assert_eq!(answer.unwrap(), ServiceResponse::Kv(Ok(Some(Bytes::from(expected)))), "call {seq}");
    }
    let pull = ServiceRequest::PullShards(PullShardsRequest {
        config: ConfigNum(1),
        shards: vec![ShardId(0)],
        after: None,
        max_bytes: 0,
    });
    let answer = client.call_service(&addr, pull).await.unwrap();
    assert!(matches!(answer, ServiceResponse::PullShards(_)), "{answer:?}");
    assert_eq!(service.calls(), 65);
    server.stop().await;
}
