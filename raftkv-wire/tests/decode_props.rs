//! Property tests of the wire protocol: random bytes into every decoder never
//! panic, and every core message survives encoding and decoding unchanged.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use raftkv_core::api::{
    ApiError, CtrlOp, CtrlRequest, KvOp, KvRequest, PullShardsRequest, RequestId, ServiceRequest, ServiceResponse,
    ShardConfig, ShardData,
};
use raftkv_core::raft::{
    AppendEntriesRequest, AppendEntriesResponse, Entry, EntryPayload, HeartbeatRequest, InstallSnapshotRequest,
    RaftRequest, RaftResponse, SnapshotMeta, VoteRequest,
};
use raftkv_core::{ClientId, ConfigNum, GroupId, LogIndex, NodeId, ShardId, Term};
use raftkv_wire::frame::FrameDecoder;
use raftkv_wire::net::RaftRoute;
use raftkv_wire::{
    pb, snapshot_chunk_from_pb, RaftRequestPb, RaftResponsePb, ServiceRequestPb, ServiceResponsePb, RAFT_RPCS,
    SERVICE_RPCS,
};

fn bytes() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from)
}

fn route() -> impl Strategy<Value = RaftRoute> {
    (0..5u64, 1..6u64, 1..6u64).prop_map(|(g, f, t)| RaftRoute { group: GroupId(g), from: NodeId(f), to: NodeId(t) })
}

fn append_entries() -> impl Strategy<Value = RaftRequest> {
    (1..1000u64, 0..1000u64, prop::collection::vec((any::<bool>(), bytes()), 0..6), 0..2000u64, any::<u64>()).prop_map(
        |(term, prev, payloads, commit, read_seq)| {
            let entries = payloads
                .into_iter()
                .enumerate()
                .map(|(i, (blank, b))| Entry {
                    term: Term(term),
                    index: LogIndex(prev + 1 + i as u64),
                    payload: if blank { EntryPayload::Blank } else { EntryPayload::Command(b) },
                })
                .collect();
            RaftRequest::AppendEntries(AppendEntriesRequest {
                term: Term(term),
                leader: NodeId(1),
                prev_log_index: LogIndex(prev),
                prev_log_term: Term(term / 2),
                entries,
                leader_commit: LogIndex(commit),
                read_seq,
            })
        },
    )
}

fn raft_request() -> impl Strategy<Value = RaftRequest> {
    prop_oneof![
        append_entries(),
        (0..1u64 << 40, 1..9u64, any::<u64>()).prop_map(|(t, l, s)| RaftRequest::Heartbeat(HeartbeatRequest {
            term: Term(t),
            leader: NodeId(l),
            commit: LogIndex(t / 3),
            read_seq: s,
        })),
        (0..1u64 << 40, 1..9u64, any::<bool>(), any::<bool>()).prop_map(|(t, c, p, x)| RaftRequest::Vote(
            VoteRequest {
                term: Term(t),
                candidate: NodeId(c),
                last_log_index: LogIndex(t * 2),
                last_log_term: Term(t),
                pre_vote: p,
                transfer: x,
            }
        )),
        (0..1u64 << 40, bytes(), any::<bool>(), 0..1u64 << 40).prop_map(|(t, data, done, offset)| {
            RaftRequest::InstallSnapshot(InstallSnapshotRequest {
                term: Term(t),
                leader: NodeId(2),
                meta: SnapshotMeta { last_index: LogIndex(t + 9), last_term: Term(t) },
                offset,
                data,
                done,
            })
        }),
    ]
}

fn service_request() -> impl Strategy<Value = ServiceRequest> {
    let id = (any::<u64>(), any::<u64>()).prop_map(|(c, s)| RequestId { client: ClientId(c), seq: s });
    let groups = prop::collection::btree_map(1..50u64, prop::collection::vec("[a-z0-9.:-]{1,20}", 0..4), 0..4)
        .prop_map(|m| m.into_iter().map(|(g, s)| (GroupId(g), s)).collect::<BTreeMap<_, _>>());
    prop_oneof![
        (id.clone(), bytes()).prop_map(|(id, key)| ServiceRequest::Kv(KvRequest { id, op: KvOp::Get { key } })),
        (id.clone(), bytes(), bytes())
            .prop_map(|(id, key, value)| ServiceRequest::Kv(KvRequest { id, op: KvOp::Append { key, value } })),
        (id.clone(), groups)
            .prop_map(|(id, groups)| ServiceRequest::Ctrl(CtrlRequest { id, op: CtrlOp::Join { groups } })),
        (id.clone(), prop::option::of(any::<u64>()))
            .prop_map(|(id, n)| ServiceRequest::Ctrl(CtrlRequest { id, op: CtrlOp::Query { num: n.map(ConfigNum) } })),
        (any::<u64>(), prop::collection::vec(any::<u64>(), 0..10), prop::option::of(bytes()), any::<u64>()).prop_map(
            |(c, s, after, max_bytes)| ServiceRequest::PullShards(PullShardsRequest {
                config: ConfigNum(c),
                shards: s.into_iter().map(ShardId).collect(),
                after,
                max_bytes
            })
        ),
        Just(ServiceRequest::Status),
    ]
}

fn service_response() -> impl Strategy<Value = (&'static str, ServiceResponse)> {
    let error = prop_oneof![
        any::<u64>().prop_map(|c| ApiError::WrongGroup { config: ConfigNum(c) }),
        prop::option::of(1..9u64).prop_map(|l| ApiError::NotLeader { leader_hint: l.map(NodeId) }),
        "[ -~]{0,30}".prop_map(|reason| ApiError::Invalid { reason }),
    ];
    prop_oneof![
        prop::option::of(bytes()).prop_map(|v| ("kv/get", ServiceResponse::Kv(Ok(v)))),
        error.clone().prop_map(|e| ("kv/put", ServiceResponse::Kv(Err(e)))),
        (any::<u64>(), prop::collection::vec(0..20u64, 0..10)).prop_map(|(num, shards)| (
            "ctrler/query",
            ServiceResponse::Ctrl(Ok(Some(ShardConfig {
                num: ConfigNum(num),
                shards: shards.into_iter().map(GroupId).collect(),
                groups: BTreeMap::from([(GroupId(1), vec!["a:1".to_string()])]),
            })))
        )),
        prop::collection::vec((any::<u64>(), prop::collection::vec((bytes(), bytes()), 0..4)), 0..3).prop_map(
            |shards| (
                "migration/pull_shards",
                ServiceResponse::PullShards(Ok(shards
                    .into_iter()
                    .map(|(s, entries)| ShardData {
                        shard: ShardId(s),
                        entries,
                        dedup: vec![(ClientId(s), s / 2)],
                        more: s % 2 == 1
                    })
                    .collect()))
            )
        ),
        error.prop_map(|e| ("migration/delete_shards", ServiceResponse::DeleteShards(Err(e)))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_into_every_raft_decoder_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let body = Bytes::from(body);
        for rpc in RAFT_RPCS {
            if let Ok(m) = RaftRequestPb::decode(rpc, body.clone()) {
                let _ = m.into_core();
            }
            if let Ok(m) = RaftResponsePb::decode(rpc, body.clone()) {
                let _ = m.into_core();
            }
        }
        if let Ok(m) = <pb::PipelineRequest as prost::Message>::decode(body.clone()) {
            let (_, wire) = RaftRequestPb::from_pipeline(m);
            let _ = wire.and_then(RaftRequestPb::into_core);
        }
        if let Ok(m) = <pb::PipelineReply as prost::Message>::decode(body.clone()) {
            if let Ok(Ok(r)) = RaftResponsePb::from_pipeline(m.body) {
                let _ = r.into_core();
            }
        }
        if let Ok(m) = <pb::InstallSnapshotChunk as prost::Message>::decode(body) {
            let _ = snapshot_chunk_from_pb(m);
        }
    }

    #[test]
    fn random_bytes_into_every_service_decoder_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let body = Bytes::from(body);
        for rpc in SERVICE_RPCS {
            if let Ok(m) = ServiceRequestPb::decode(rpc, body.clone()) {
                let _ = m.into_core();
            }
            if let Ok(m) = ServiceResponsePb::decode(rpc, body.clone()) {
                let _ = m.into_core();
            }
        }
    }

    #[test]
    fn random_byte_streams_into_the_frame_decoder_never_panic(
        pieces in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..16),
        limit in 0usize..256,
    ) {
        let mut d = FrameDecoder::new(limit);
        for p in pieces {
            d.push(&p);
            while let Ok(Some(frame)) = d.next_frame() {
                prop_assert!(frame.len() <= limit);
            }
        }
        let _ = d.finish();
    }

    #[test]
    fn corrupted_valid_requests_never_panic(
        request in raft_request(),
        route in route(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let wire = RaftRequestPb::from_core(route, request);
        let rpc = wire.rpc();
        let mut body = wire.encode_to_vec();
        for (at, v) in edits {
            if !body.is_empty() {
                let i = at.index(body.len());
                body[i] = v;
            }
        }
        if let Ok(m) = RaftRequestPb::decode(rpc, Bytes::from(body)) {
            let _ = m.into_core();
        }
    }

    #[test]
    fn raft_requests_round_trip(request in raft_request(), route in route()) {
        let wire = RaftRequestPb::from_core(route, request.clone());
        let decoded = RaftRequestPb::decode(wire.rpc(), Bytes::from(wire.encode_to_vec())).unwrap().into_core();
        prop_assert_eq!(decoded, Ok((route, request)));
    }

    #[test]
    fn raft_responses_round_trip(term in 0..1u64 << 40, matched in 0..1u64 << 40, ok in any::<bool>(), conflict in prop::option::of(0..1u64 << 40)) {
        let response = RaftResponse::AppendEntries(AppendEntriesResponse {
            term: Term(term),
            success: ok,
            match_index: LogIndex(matched),
            rejected_prev: LogIndex(matched / 2),
            conflict_term: conflict.map(Term),
            conflict_index: LogIndex(matched / 3),
            read_seq: term ^ matched,
        });
        let wire = RaftResponsePb::from_core(response.clone());
        let decoded = RaftResponsePb::decode(wire.rpc(), Bytes::from(wire.encode_to_vec())).unwrap().into_core();
        prop_assert_eq!(decoded, Ok(response));
    }

    #[test]
    fn service_requests_round_trip(request in service_request()) {
        let wire = ServiceRequestPb::from_core(request.clone());
        let decoded = ServiceRequestPb::decode(wire.rpc(), Bytes::from(wire.encode_to_vec())).unwrap().into_core();
        prop_assert_eq!(decoded, Ok(request));
    }

    #[test]
    fn service_responses_round_trip((rpc, response) in service_response()) {
        let wire = ServiceResponsePb::from_core(response.clone());
        let decoded = ServiceResponsePb::decode(rpc, Bytes::from(wire.encode_to_vec())).unwrap().into_core();
        prop_assert_eq!(decoded, Ok(response));
    }
}

#[test]
fn decode_errors_name_the_message_and_field() {
    let route = RaftRoute { group: GroupId(1), from: NodeId(1), to: NodeId(2) };
    let mut wire = RaftRequestPb::from_core(
        route,
        RaftRequest::AppendEntries(AppendEntriesRequest {
            term: Term(3),
            leader: NodeId(1),
            prev_log_index: LogIndex(4),
            prev_log_term: Term(2),
            entries: vec![Entry { term: Term(3), index: LogIndex(5), payload: EntryPayload::Blank }],
            leader_commit: LogIndex(4),
            read_seq: 0,
        }),
    );
    if let RaftRequestPb::AppendEntries(m) = &mut wire {
        m.entries[0].index = 7;
    }
    let err = wire.clone().into_core().unwrap_err().to_string();
    assert!(err.contains("AppendEntriesRequest") && err.contains("entries") && err.contains("expected 5"), "{err}");
    if let RaftRequestPb::AppendEntries(m) = &mut wire {
        m.route = None;
    }
    let err = wire.into_core().unwrap_err().to_string();
    assert!(err.contains("route") && err.contains("missing"), "{err}");
    let err = RaftRequestPb::decode("nope", Bytes::new()).unwrap_err().to_string();
    assert!(err.contains("unknown rpc"), "{err}");
    let huge = pb::HeartbeatRequest {
        route: Some(pb::Route { group: 1, from: 1, to: 2, ..Default::default() }),
        term: u64::MAX,
        leader: 1,
        commit: 0,
        read_seq: 0,
    };
    let err = RaftRequestPb::Heartbeat(huge).into_core().unwrap_err().to_string();
    assert!(err.contains("term") && err.contains("out of range"), "{err}");
}
