//! Property-based hostile input: random bytes, and valid bodies with random
//! bytes changed, posted to every route of a server (proptest). The server
//! must answer every one — an answer or an error reply, never a dropped
//! connection — and keep serving.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::cases::{append, client_to, echo_routes, heartbeat, start, FROM, GROUP, TO};
use super::{any_port, test_config, EchoMember, RawOutcome, TransportFixture};
use crate::net::RaftRoute;
use raftkv_core::api::ServiceRequest;

/// Cases per route.
const CASES: u32 = 48;

/// Random bodies, and valid bodies with up to 8 bytes overwritten.
fn bodies(valid: Vec<Bytes>) -> impl Strategy<Value = Bytes> {
    let random = prop::collection::vec(any::<u8>(), 0..600).prop_map(Bytes::from);
    let mutated =
        (prop::sample::select(valid), prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8))
            .prop_map(|(body, edits)| {
                let mut b = body.to_vec();
                if !b.is_empty() {
                    for (at, v) in edits {
                        let i = at.index(b.len());
                        b[i] = v;
                    }
                }
                Bytes::from(b)
            });
    prop_oneof![random, mutated]
}

/// Random and corrupted bodies to every route get an answer; the server keeps serving.
pub async fn random_bytes_to_every_route_never_break_the_server<F: TransportFixture>(f: &F) {
    let (routes, _, _) = echo_routes();
    let server = start(f, any_port(), routes, test_config()).await;
    let addr = server.addr();
    let route = RaftRoute { group: GROUP, from: FROM, to: TO };
    let valid: Vec<Bytes> = [heartbeat(3), append(4, vec![Bytes::from_static(b"abc"), Bytes::from(vec![9u8; 40])])]
        .into_iter()
        .map(|r| f.encode_raft(route, r).1)
        .collect();
    let handle = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| {
        for rpc in f.rpcs() {
            let mut runner = TestRunner::new(Config { cases: CASES, failure_persistence: None, ..Config::default() });
            let result = runner.run(&bodies(valid.clone()), |body| {
                match handle.block_on(f.send_raw(addr, &rpc, body.clone())) {
                    RawOutcome::Failed(e) => Err(TestCaseError::fail(format!("{rpc}: no answer to {body:?}: {e}"))),
                    RawOutcome::Answered(_) | RawOutcome::Refused(_) => Ok(()),
                }
            });
            if let Err(e) = result {
                panic!("{rpc}: {e}");
            }
        }
    });
    let t = client_to(f, addr, test_config());
    assert_eq!(t.call(FROM, TO, heartbeat(1)).await.unwrap(), EchoMember::answer(&heartbeat(1)).unwrap());
    f.service_client(test_config()).call_service(&addr.to_string(), ServiceRequest::Status).await.unwrap();
    server.stop().await;
}
