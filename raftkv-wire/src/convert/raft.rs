//! Raft messages: core types ↔ their protobuf form, with the checks that keep
//! a hostile or corrupt message from reaching the engine.

use crate::net::RaftRoute;
use bytes::Bytes;
use raftkv_core::raft::{
    AppendEntriesRequest, AppendEntriesResponse, Entry, EntryPayload, HeartbeatRequest, HeartbeatResponse,
    InstallSnapshotRequest, InstallSnapshotResponse, RaftRequest, RaftResponse, SnapshotMeta, TimeoutNowRequest,
    TimeoutNowResponse, VoteRequest, VoteResponse,
};
use raftkv_core::{GroupId, LogIndex, NodeId, Term};

use crate::error::{decode, DecodeError};
use crate::pb;
use crate::pb::{pipeline_reply, pipeline_request};

/// The Raft RPCs by name, as they appear in routes (`/raft/v1/<name>`).
pub const RAFT_RPCS: [&str; 5] = ["append_entries", "heartbeat", "vote", "install_snapshot", "timeout_now"];

/// A Raft request in its wire form: one protobuf message per RPC.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum RaftRequestPb {
    /// `append_entries`.
    AppendEntries(pb::AppendEntriesRequest),
    /// `heartbeat`.
    Heartbeat(pb::HeartbeatRequest),
    /// `vote`.
    Vote(pb::VoteRequest),
    /// `install_snapshot` (one chunk).
    InstallSnapshot(pb::InstallSnapshotChunk),
    /// `timeout_now`.
    TimeoutNow(pb::TimeoutNowRequest),
}

/// A Raft response in its wire form.
#[derive(Clone, Debug, PartialEq)]
pub enum RaftResponsePb {
    /// `append_entries`.
    AppendEntries(pb::AppendEntriesResponse),
    /// `heartbeat`.
    Heartbeat(pb::HeartbeatResponse),
    /// `vote`.
    Vote(pb::VoteResponse),
    /// `install_snapshot`.
    InstallSnapshot(pb::InstallSnapshotResponse),
    /// `timeout_now`.
    TimeoutNow(pb::TimeoutNowResponse),
}

wire_enum_codec!(RaftRequestPb { AppendEntries, Heartbeat, Vote, InstallSnapshot, TimeoutNow } rpcs RAFT_RPCS);
wire_enum_codec!(RaftResponsePb { AppendEntries, Heartbeat, Vote, InstallSnapshot, TimeoutNow } rpcs RAFT_RPCS);

fn route_to_pb(r: RaftRoute) -> Option<pb::Route> {
    Some(route_pb(r))
}

fn route_from_pb(message: &'static str, r: Option<pb::Route>) -> Result<RaftRoute, DecodeError> {
    let r = r.ok_or_else(|| DecodeError::missing(message, "route"))?;
    if r.from == 0 || r.to == 0 {
        return Err(DecodeError::invalid(message, "route", "node ids start at 1"));
    }
    Ok(RaftRoute { group: GroupId(r.group), from: NodeId(r.from), to: NodeId(r.to) })
}

fn entry_to_pb(e: Entry) -> pb::Entry {
    let payload = match e.payload {
        EntryPayload::Blank => pb::entry::Payload::Blank(pb::Blank {}),
        EntryPayload::Command(c) => pb::entry::Payload::Command(c),
    };
    pb::Entry { term: e.term.0, index: e.index.0, payload: Some(payload) }
}

/// Entries must run contiguously from `prev_log_index + 1`, with terms that
/// never decrease, start at or after `prev_log_term`, and do not pass the
/// leader's term: the engine relies on all of it.
fn entries_from_pb(
    prev_log_index: u64,
    prev_log_term: u64,
    term: u64,
    entries: Vec<pb::Entry>,
) -> Result<Vec<Entry>, DecodeError> {
    const M: &str = "AppendEntriesRequest";
    let mut last_term = prev_log_term;
    if prev_log_term > term {
        return Err(DecodeError::invalid(M, "prev_log_term", "is greater than the leader's term"));
    }
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.into_iter().enumerate() {
        let expected = prev_log_index
            .checked_add(i as u64 + 1)
            .ok_or_else(|| DecodeError::invalid(M, "entries", "indices overflow"))?;
        if e.index != expected {
            return Err(DecodeError::invalid(
                M,
                "entries",
                format!("entry {i} has index {}, expected {expected}", e.index),
            ));
        }
        if e.term < last_term || e.term > term {
            return Err(DecodeError::invalid(
                M,
                "entries",
                format!("entry {i} has term {}, outside {last_term}..={term}", e.term),
            ));
        }
        last_term = e.term;
        let payload = match e.payload {
            Some(pb::entry::Payload::Blank(_)) => EntryPayload::Blank,
            Some(pb::entry::Payload::Command(c)) => EntryPayload::Command(c),
            None => return Err(DecodeError::missing(M, "entries.payload")),
        };
        out.push(Entry { term: Term(e.term), index: LogIndex(e.index), payload });
    }
    Ok(out)
}

fn meta_from_pb(message: &'static str, m: Option<pb::SnapshotMeta>) -> Result<SnapshotMeta, DecodeError> {
    let m = m.ok_or_else(|| DecodeError::missing(message, "meta"))?;
    Ok(SnapshotMeta { last_index: LogIndex(m.last_index), last_term: Term(m.last_term) })
}

fn nonzero(message: &'static str, field: &'static str, v: u64) -> Result<NodeId, DecodeError> {
    if v == 0 {
        return Err(DecodeError::invalid(message, field, "node ids start at 1"));
    }
    Ok(NodeId(v))
}

/// Largest term or log index accepted from the network: far beyond any real
/// cluster, and leaves room for the engine's `+ 1`s.
pub const MAX_TERM_OR_INDEX: u64 = i64::MAX as u64;

/// Check that every term and index of a message is at most [`MAX_TERM_OR_INDEX`].
fn bounded(message: &'static str, fields: &[(&'static str, u64)]) -> Result<(), DecodeError> {
    for &(field, v) in fields {
        if v > MAX_TERM_OR_INDEX {
            return Err(DecodeError::invalid(message, field, format!("{v} is out of range (at most 2^63 - 1)")));
        }
    }
    Ok(())
}

impl RaftRequestPb {
    /// The wire form of `request` addressed by `route`.
    #[must_use]
    pub fn from_core(route: RaftRoute, request: RaftRequest) -> Self {
        let route = route_to_pb(route);
        match request {
            RaftRequest::AppendEntries(r) => Self::AppendEntries(pb::AppendEntriesRequest {
                route,
                term: r.term.0,
                leader: r.leader.0,
                prev_log_index: r.prev_log_index.0,
                prev_log_term: r.prev_log_term.0,
                entries: r.entries.into_iter().map(entry_to_pb).collect(),
                leader_commit: r.leader_commit.0,
                read_seq: r.read_seq,
            }),
            RaftRequest::Heartbeat(r) => Self::Heartbeat(pb::HeartbeatRequest {
                route,
                term: r.term.0,
                leader: r.leader.0,
                commit: r.commit.0,
                read_seq: r.read_seq,
            }),
            RaftRequest::Vote(r) => Self::Vote(pb::VoteRequest {
                route,
                term: r.term.0,
                candidate: r.candidate.0,
                last_log_index: r.last_log_index.0,
                last_log_term: r.last_log_term.0,
                pre_vote: r.pre_vote,
                transfer: r.transfer,
            }),
            RaftRequest::InstallSnapshot(r) => Self::InstallSnapshot(snapshot_chunk_to_pb(route, r)),
            RaftRequest::TimeoutNow(r) => {
                Self::TimeoutNow(pb::TimeoutNowRequest { route, term: r.term.0, leader: r.leader.0 })
            }
        }
    }

    /// The request and its route, checked.
    pub fn into_core(self) -> Result<(RaftRoute, RaftRequest), DecodeError> {
        match self {
            Self::AppendEntries(r) => {
                const M: &str = "AppendEntriesRequest";
                let route = route_from_pb(M, r.route)?;
                bounded(
                    M,
                    &[
                        ("term", r.term),
                        ("prev_log_index", r.prev_log_index),
                        ("leader_commit", r.leader_commit),
                        ("entries", r.prev_log_index.saturating_add(r.entries.len() as u64)),
                    ],
                )?;
                let entries = entries_from_pb(r.prev_log_index, r.prev_log_term, r.term, r.entries)?;
                let req = AppendEntriesRequest {
                    term: Term(r.term),
                    leader: nonzero(M, "leader", r.leader)?,
                    prev_log_index: LogIndex(r.prev_log_index),
                    prev_log_term: Term(r.prev_log_term),
                    entries,
                    leader_commit: LogIndex(r.leader_commit),
                    read_seq: r.read_seq,
                };
                Ok((route, RaftRequest::AppendEntries(req)))
            }
            Self::Heartbeat(r) => {
                const M: &str = "HeartbeatRequest";
                let route = route_from_pb(M, r.route)?;
                bounded(M, &[("term", r.term), ("commit", r.commit)])?;
                let req = HeartbeatRequest {
                    term: Term(r.term),
                    leader: nonzero(M, "leader", r.leader)?,
                    commit: LogIndex(r.commit),
                    read_seq: r.read_seq,
                };
                Ok((route, RaftRequest::Heartbeat(req)))
            }
            Self::Vote(r) => {
                const M: &str = "VoteRequest";
                let route = route_from_pb(M, r.route)?;
                bounded(
                    M,
                    &[("term", r.term), ("last_log_index", r.last_log_index), ("last_log_term", r.last_log_term)],
                )?;
                let req = VoteRequest {
                    term: Term(r.term),
                    candidate: nonzero(M, "candidate", r.candidate)?,
                    last_log_index: LogIndex(r.last_log_index),
                    last_log_term: Term(r.last_log_term),
                    pre_vote: r.pre_vote,
                    transfer: r.transfer,
                };
                Ok((route, RaftRequest::Vote(req)))
            }
            Self::InstallSnapshot(r) => {
                let (route, req) = snapshot_chunk_from_pb(r)?;
                Ok((route, RaftRequest::InstallSnapshot(req)))
            }
            Self::TimeoutNow(r) => {
                const M: &str = "TimeoutNowRequest";
                let route = route_from_pb(M, r.route)?;
                bounded(M, &[("term", r.term)])?;
                let req = TimeoutNowRequest { term: Term(r.term), leader: nonzero(M, "leader", r.leader)? };
                Ok((route, RaftRequest::TimeoutNow(req)))
            }
        }
    }

    /// Decode the request of RPC `rpc` from `buf`.
    pub fn decode(rpc: &str, buf: Bytes) -> Result<Self, DecodeError> {
        Ok(match rpc {
            "append_entries" => Self::AppendEntries(decode("AppendEntriesRequest", buf)?),
            "heartbeat" => Self::Heartbeat(decode("HeartbeatRequest", buf)?),
            "vote" => Self::Vote(decode("VoteRequest", buf)?),
            "install_snapshot" => Self::InstallSnapshot(decode("InstallSnapshotChunk", buf)?),
            "timeout_now" => Self::TimeoutNow(decode("TimeoutNowRequest", buf)?),
            other => return Err(DecodeError::UnknownRpc(format!("raft/{other}"))),
        })
    }

    /// As a message of the ordered pipeline numbered `seq`; a snapshot chunk
    /// does not travel on the pipeline and is handed back (boxed: it is the
    /// rare path, and keeps the `Result` small).
    pub fn into_pipeline(self, seq: u64) -> Result<pb::PipelineRequest, Box<pb::InstallSnapshotChunk>> {
        let body = match self {
            Self::AppendEntries(m) => pipeline_request::Body::AppendEntries(m),
            Self::Heartbeat(m) => pipeline_request::Body::Heartbeat(m),
            Self::Vote(m) => pipeline_request::Body::Vote(m),
            Self::TimeoutNow(m) => pipeline_request::Body::TimeoutNow(m),
            Self::InstallSnapshot(m) => return Err(Box::new(m)),
        };
        Ok(pb::PipelineRequest { seq, body: Some(body) })
    }

    /// A pipeline message's sequence number and request.
    pub fn from_pipeline(m: pb::PipelineRequest) -> (u64, Result<Self, DecodeError>) {
        let req = match m.body {
            Some(pipeline_request::Body::AppendEntries(b)) => Ok(Self::AppendEntries(b)),
            Some(pipeline_request::Body::Heartbeat(b)) => Ok(Self::Heartbeat(b)),
            Some(pipeline_request::Body::Vote(b)) => Ok(Self::Vote(b)),
            Some(pipeline_request::Body::TimeoutNow(b)) => Ok(Self::TimeoutNow(b)),
            None => Err(DecodeError::missing("PipelineRequest", "body")),
        };
        (m.seq, req)
    }
}

/// The wire form of one snapshot chunk.
#[must_use]
pub fn snapshot_chunk_to_pb(route: Option<pb::Route>, r: InstallSnapshotRequest) -> pb::InstallSnapshotChunk {
    pb::InstallSnapshotChunk {
        route,
        term: r.term.0,
        leader: r.leader.0,
        meta: Some(pb::SnapshotMeta { last_index: r.meta.last_index.0, last_term: r.meta.last_term.0 }),
        offset: r.offset,
        data: r.data,
        done: r.done,
    }
}

/// One snapshot chunk and its route, checked.
pub fn snapshot_chunk_from_pb(r: pb::InstallSnapshotChunk) -> Result<(RaftRoute, InstallSnapshotRequest), DecodeError> {
    const M: &str = "InstallSnapshotChunk";
    let route = route_from_pb(M, r.route)?;
    let meta = meta_from_pb(M, r.meta)?;
    bounded(M, &[("term", r.term), ("meta.last_index", meta.last_index.0), ("meta.last_term", meta.last_term.0)])?;
    if r.offset.checked_add(r.data.len() as u64).is_none() {
        return Err(DecodeError::invalid(M, "offset", "offset plus chunk length overflows"));
    }
    let req = InstallSnapshotRequest {
        term: Term(r.term),
        leader: nonzero(M, "leader", r.leader)?,
        meta,
        offset: r.offset,
        data: r.data,
        done: r.done,
    };
    Ok((route, req))
}

/// The wire route of a core route, carrying no trace context (see
/// [`pb::Route::with_traceparent`]).
#[must_use]
pub fn route_pb(route: RaftRoute) -> pb::Route {
    pb::Route { group: route.group.0, from: route.from.0, to: route.to.0, traceparent: String::new() }
}

impl RaftResponsePb {
    /// The wire form of `response`.
    #[must_use]
    pub fn from_core(response: RaftResponse) -> Self {
        match response {
            RaftResponse::AppendEntries(r) => Self::AppendEntries(pb::AppendEntriesResponse {
                term: r.term.0,
                success: r.success,
                match_index: r.match_index.0,
                rejected_prev: r.rejected_prev.0,
                conflict_term: r.conflict_term.map(|t| t.0),
                conflict_index: r.conflict_index.0,
                read_seq: r.read_seq,
            }),
            RaftResponse::Heartbeat(r) => {
                Self::Heartbeat(pb::HeartbeatResponse { term: r.term.0, read_seq: r.read_seq })
            }
            RaftResponse::Vote(r) => {
                Self::Vote(pb::VoteResponse { term: r.term.0, granted: r.granted, pre_vote: r.pre_vote })
            }
            RaftResponse::InstallSnapshot(r) => Self::InstallSnapshot(snapshot_response_to_pb(&r)),
            RaftResponse::TimeoutNow(r) => Self::TimeoutNow(pb::TimeoutNowResponse { term: r.term.0 }),
        }
    }

    /// The response, checked.
    pub fn into_core(self) -> Result<RaftResponse, DecodeError> {
        Ok(match self {
            Self::AppendEntries(r) => {
                bounded(
                    "AppendEntriesResponse",
                    &[
                        ("term", r.term),
                        ("match_index", r.match_index),
                        ("rejected_prev", r.rejected_prev),
                        ("conflict_term", r.conflict_term.unwrap_or(0)),
                        ("conflict_index", r.conflict_index),
                    ],
                )?;
                RaftResponse::AppendEntries(AppendEntriesResponse {
                    term: Term(r.term),
                    success: r.success,
                    match_index: LogIndex(r.match_index),
                    rejected_prev: LogIndex(r.rejected_prev),
                    conflict_term: r.conflict_term.map(Term),
                    conflict_index: LogIndex(r.conflict_index),
                    read_seq: r.read_seq,
                })
            }
            Self::Heartbeat(r) => {
                bounded("HeartbeatResponse", &[("term", r.term)])?;
                RaftResponse::Heartbeat(HeartbeatResponse { term: Term(r.term), read_seq: r.read_seq })
            }
            Self::Vote(r) => {
                bounded("VoteResponse", &[("term", r.term)])?;
                RaftResponse::Vote(VoteResponse { term: Term(r.term), granted: r.granted, pre_vote: r.pre_vote })
            }
            Self::InstallSnapshot(r) => RaftResponse::InstallSnapshot(snapshot_response_from_pb(&r)?),
            Self::TimeoutNow(r) => {
                bounded("TimeoutNowResponse", &[("term", r.term)])?;
                RaftResponse::TimeoutNow(TimeoutNowResponse { term: Term(r.term) })
            }
        })
    }

    /// Decode the response of RPC `rpc` from `buf`.
    pub fn decode(rpc: &str, buf: Bytes) -> Result<Self, DecodeError> {
        Ok(match rpc {
            "append_entries" => Self::AppendEntries(decode("AppendEntriesResponse", buf)?),
            "heartbeat" => Self::Heartbeat(decode("HeartbeatResponse", buf)?),
            "vote" => Self::Vote(decode("VoteResponse", buf)?),
            "install_snapshot" => Self::InstallSnapshot(decode("InstallSnapshotResponse", buf)?),
            "timeout_now" => Self::TimeoutNow(decode("TimeoutNowResponse", buf)?),
            other => return Err(DecodeError::UnknownRpc(format!("raft/{other}"))),
        })
    }

    /// As the pipeline reply numbered `seq`; a snapshot response does not
    /// travel on the pipeline and is handed back.
    pub fn into_pipeline(self, seq: u64) -> Result<pb::PipelineReply, pb::InstallSnapshotResponse> {
        let body = match self {
            Self::AppendEntries(m) => pipeline_reply::Body::AppendEntries(m),
            Self::Heartbeat(m) => pipeline_reply::Body::Heartbeat(m),
            Self::Vote(m) => pipeline_reply::Body::Vote(m),
            Self::TimeoutNow(m) => pipeline_reply::Body::TimeoutNow(m),
            Self::InstallSnapshot(m) => return Err(m),
        };
        Ok(pb::PipelineReply { seq, body: Some(body) })
    }

    /// A pipeline reply's response, or the error the receiver reported for
    /// that message, or why the reply is malformed.
    pub fn from_pipeline(body: Option<pipeline_reply::Body>) -> Result<Result<Self, pb::PipelineError>, DecodeError> {
        Ok(Ok(match body {
            Some(pipeline_reply::Body::AppendEntries(b)) => Self::AppendEntries(b),
            Some(pipeline_reply::Body::Heartbeat(b)) => Self::Heartbeat(b),
            Some(pipeline_reply::Body::Vote(b)) => Self::Vote(b),
            Some(pipeline_reply::Body::TimeoutNow(b)) => Self::TimeoutNow(b),
            Some(pipeline_reply::Body::Error(e)) => return Ok(Err(e)),
            None => return Err(DecodeError::missing("PipelineReply", "body")),
        }))
    }
}

/// The wire form of a snapshot answer.
#[must_use]
pub fn snapshot_response_to_pb(r: &InstallSnapshotResponse) -> pb::InstallSnapshotResponse {
    pb::InstallSnapshotResponse { term: r.term.0, accepted: r.accepted, next_offset: r.next_offset }
}

/// A snapshot answer from its wire form, checked.
pub fn snapshot_response_from_pb(r: &pb::InstallSnapshotResponse) -> Result<InstallSnapshotResponse, DecodeError> {
    bounded("InstallSnapshotResponse", &[("term", r.term)])?;
    Ok(InstallSnapshotResponse { term: Term(r.term), accepted: r.accepted, next_offset: r.next_offset })
}
