//! Service messages (KV, controller, migration, admin): core types ↔ their
//! protobuf form.

use std::collections::BTreeMap;

use bytes::Bytes;
use raftkv_core::api::{
    ApiError, CtrlOp, CtrlRequest, DeleteShardsRequest, KvOp, KvRequest, NodeStatus, PullShardsRequest, RequestId,
    ServiceRequest, ServiceResponse, ShardConfig, ShardData, ShardState, ShardStatus,
};
use raftkv_core::raft::core::{FollowerStatus, ProgressState, Role, Status};
use raftkv_core::{ClientId, ConfigNum, GroupId, LogIndex, NodeId, ShardId, Term};

use crate::error::{decode, DecodeError};
use crate::pb;

/// Every service RPC as `service/method`; the HTTP transport serves each at
/// `/<service>/v1/<method>`, the gRPC one as `raftkv.v1.<Service>/<Method>`.
pub const SERVICE_RPCS: [&str; 11] = [
    "kv/get",
    "kv/put",
    "kv/append",
    "kv/delete",
    "ctrler/join",
    "ctrler/leave",
    "ctrler/move",
    "ctrler/query",
    "migration/pull_shards",
    "migration/delete_shards",
    "admin/status",
];

/// A service request in its wire form: one protobuf message per RPC.
#[derive(Clone, Debug, PartialEq)]
pub enum ServiceRequestPb {
    /// `kv/get`.
    Get(pb::GetRequest),
    /// `kv/put`.
    Put(pb::PutRequest),
    /// `kv/append`.
    Append(pb::AppendRequest),
    /// `kv/delete`.
    Delete(pb::DeleteRequest),
    /// `ctrler/join`.
    Join(pb::JoinRequest),
    /// `ctrler/leave`.
    Leave(pb::LeaveRequest),
    /// `ctrler/move`.
    Move(pb::MoveRequest),
    /// `ctrler/query`.
    Query(pb::QueryRequest),
    /// `migration/pull_shards`.
    PullShards(pb::PullShardsRequest),
    /// `migration/delete_shards`.
    DeleteShards(pb::DeleteShardsRequest),
    /// `admin/status`.
    Status(pb::StatusRequest),
}

/// A service response in its wire form: one protobuf message per service
/// (migration has two).
#[derive(Clone, Debug, PartialEq)]
pub enum ServiceResponsePb {
    /// Answer to every `kv/*`.
    Kv(pb::KvResponse),
    /// Answer to every `ctrler/*`.
    Ctrl(pb::CtrlResponse),
    /// Answer to `migration/pull_shards`.
    PullShards(pb::PullShardsResponse),
    /// Answer to `migration/delete_shards`.
    DeleteShards(pb::DeleteShardsResponse),
    /// Answer to `admin/status`.
    Status(pb::StatusResponse),
}

wire_enum_codec!(ServiceRequestPb {
    Get,
    Put,
    Append,
    Delete,
    Join,
    Leave,
    Move,
    Query,
    PullShards,
    DeleteShards,
    Status
} rpcs SERVICE_RPCS);
wire_enum_codec!(ServiceResponsePb { Kv, Ctrl, PullShards, DeleteShards, Status });

fn id_to_pb(id: RequestId) -> Option<pb::RequestId> {
    Some(pb::RequestId { client: id.client.0, seq: id.seq })
}

fn id_from_pb(message: &'static str, id: Option<pb::RequestId>) -> Result<RequestId, DecodeError> {
    let id = id.ok_or_else(|| DecodeError::missing(message, "id"))?;
    Ok(RequestId { client: ClientId(id.client), seq: id.seq })
}

fn groups_to_pb(groups: BTreeMap<GroupId, Vec<String>>) -> Vec<pb::GroupServers> {
    groups.into_iter().map(|(g, servers)| pb::GroupServers { group: g.0, servers }).collect()
}

fn groups_from_pb(
    message: &'static str,
    groups: Vec<pb::GroupServers>,
) -> Result<BTreeMap<GroupId, Vec<String>>, DecodeError> {
    let mut out = BTreeMap::new();
    for g in groups {
        if out.insert(GroupId(g.group), g.servers).is_some() {
            return Err(DecodeError::invalid(message, "groups", format!("group {} is listed twice", g.group)));
        }
    }
    Ok(out)
}

fn shards_from_pb(shards: Vec<u64>) -> Vec<ShardId> {
    shards.into_iter().map(ShardId).collect()
}

impl ServiceRequestPb {
    /// The wire form of `request`.
    #[must_use]
    pub fn from_core(request: ServiceRequest) -> Self {
        match request {
            ServiceRequest::Kv(KvRequest { id, op }) => {
                let id = id_to_pb(id);
                match op {
                    KvOp::Get { key } => Self::Get(pb::GetRequest { id, key }),
                    KvOp::Put { key, value } => Self::Put(pb::PutRequest { id, key, value }),
                    KvOp::Append { key, value } => Self::Append(pb::AppendRequest { id, key, value }),
                    KvOp::Delete { key } => Self::Delete(pb::DeleteRequest { id, key }),
                }
            }
            ServiceRequest::Ctrl(CtrlRequest { id, op }) => {
                let id = id_to_pb(id);
                match op {
                    CtrlOp::Join { groups } => Self::Join(pb::JoinRequest { id, groups: groups_to_pb(groups) }),
                    CtrlOp::Leave { groups } => {
                        Self::Leave(pb::LeaveRequest { id, groups: groups.into_iter().map(|g| g.0).collect() })
                    }
                    CtrlOp::Move { shard, group } => Self::Move(pb::MoveRequest { id, shard: shard.0, group: group.0 }),
                    CtrlOp::Query { num } => Self::Query(pb::QueryRequest { id, num: num.map(|n| n.0) }),
                }
            }
            ServiceRequest::PullShards(r) => Self::PullShards(pb::PullShardsRequest {
                config: r.config.0,
                shards: r.shards.into_iter().map(|s| s.0).collect(),
                after: r.after,
                max_bytes: r.max_bytes,
            }),
            ServiceRequest::DeleteShards(r) => Self::DeleteShards(pb::DeleteShardsRequest {
                config: r.config.0,
                shards: r.shards.into_iter().map(|s| s.0).collect(),
                group: r.group.0,
            }),
            ServiceRequest::Status => Self::Status(pb::StatusRequest {}),
        }
    }

    /// The request, checked.
    pub fn into_core(self) -> Result<ServiceRequest, DecodeError> {
        let kv = |id, op| ServiceRequest::Kv(KvRequest { id, op });
        let ctrl = |id, op| ServiceRequest::Ctrl(CtrlRequest { id, op });
        Ok(match self {
            Self::Get(r) => kv(id_from_pb("GetRequest", r.id)?, KvOp::Get { key: r.key }),
            Self::Put(r) => kv(id_from_pb("PutRequest", r.id)?, KvOp::Put { key: r.key, value: r.value }),
            Self::Append(r) => kv(id_from_pb("AppendRequest", r.id)?, KvOp::Append { key: r.key, value: r.value }),
            Self::Delete(r) => kv(id_from_pb("DeleteRequest", r.id)?, KvOp::Delete { key: r.key }),
            Self::Join(r) => ctrl(
                id_from_pb("JoinRequest", r.id)?,
                CtrlOp::Join { groups: groups_from_pb("JoinRequest", r.groups)? },
            ),
            Self::Leave(r) => ctrl(
                id_from_pb("LeaveRequest", r.id)?,
                CtrlOp::Leave { groups: r.groups.into_iter().map(GroupId).collect() },
            ),
            Self::Move(r) => ctrl(
                id_from_pb("MoveRequest", r.id)?,
                CtrlOp::Move { shard: ShardId(r.shard), group: GroupId(r.group) },
            ),
            Self::Query(r) => ctrl(id_from_pb("QueryRequest", r.id)?, CtrlOp::Query { num: r.num.map(ConfigNum) }),
            Self::PullShards(r) => ServiceRequest::PullShards(PullShardsRequest {
                config: ConfigNum(r.config),
                shards: shards_from_pb(r.shards),
                after: r.after,
                max_bytes: r.max_bytes,
            }),
            Self::DeleteShards(r) => {
                if r.group == 0 {
                    return Err(DecodeError::invalid(
                        "DeleteShardsRequest",
                        "group",
                        "must name the group that gained the shards (ShardKV groups start at 1)",
                    ));
                }
                ServiceRequest::DeleteShards(DeleteShardsRequest {
                    config: ConfigNum(r.config),
                    shards: shards_from_pb(r.shards),
                    group: GroupId(r.group),
                })
            }
            Self::Status(_) => ServiceRequest::Status,
        })
    }

    /// Decode the request of RPC `rpc` (`service/method`) from `buf`.
    pub fn decode(rpc: &str, buf: Bytes) -> Result<Self, DecodeError> {
        Ok(match rpc {
            "kv/get" => Self::Get(decode("GetRequest", buf)?),
            "kv/put" => Self::Put(decode("PutRequest", buf)?),
            "kv/append" => Self::Append(decode("AppendRequest", buf)?),
            "kv/delete" => Self::Delete(decode("DeleteRequest", buf)?),
            "ctrler/join" => Self::Join(decode("JoinRequest", buf)?),
            "ctrler/leave" => Self::Leave(decode("LeaveRequest", buf)?),
            "ctrler/move" => Self::Move(decode("MoveRequest", buf)?),
            "ctrler/query" => Self::Query(decode("QueryRequest", buf)?),
            "migration/pull_shards" => Self::PullShards(decode("PullShardsRequest", buf)?),
            "migration/delete_shards" => Self::DeleteShards(decode("DeleteShardsRequest", buf)?),
            "admin/status" => Self::Status(decode("StatusRequest", buf)?),
            other => return Err(DecodeError::UnknownRpc(other.to_string())),
        })
    }
}

fn error_to_pb(e: ApiError) -> pb::ApiError {
    use pb::api_error::Code;
    let mut out = pb::ApiError { code: 0, reason: String::new(), leader_hint: None, config: 0 };
    let code = match e {
        ApiError::WrongGroup { config } => {
            out.config = config.0;
            Code::WrongGroup
        }
        ApiError::NotLeader { leader_hint } => {
            out.leader_hint = leader_hint.map(|n| n.0);
            Code::NotLeader
        }
        ApiError::NotReady { config } => {
            out.config = config.0;
            Code::NotReady
        }
        ApiError::Unavailable { reason } => {
            out.reason = reason;
            Code::Unavailable
        }
        ApiError::Invalid { reason } => {
            out.reason = reason;
            Code::Invalid
        }
        ApiError::Unsupported { what } => {
            out.reason = what;
            Code::Unsupported
        }
        other => {
            out.reason = other.to_string();
            Code::Unavailable
        }
    };
    out.code = code as i32;
    out
}

fn error_from_pb(message: &'static str, e: pb::ApiError) -> Result<ApiError, DecodeError> {
    use pb::api_error::Code;
    let code = Code::try_from(e.code)
        .map_err(|_| DecodeError::invalid(message, "error.code", format!("unknown code {}", e.code)))?;
    Ok(match code {
        Code::WrongGroup => ApiError::WrongGroup { config: ConfigNum(e.config) },
        Code::NotLeader => ApiError::NotLeader { leader_hint: e.leader_hint.filter(|&n| n != 0).map(NodeId) },
        Code::NotReady => ApiError::NotReady { config: ConfigNum(e.config) },
        Code::Unavailable => ApiError::Unavailable { reason: e.reason },
        Code::Invalid => ApiError::Invalid { reason: e.reason },
        Code::Unsupported => ApiError::Unsupported { what: e.reason },
        Code::Unspecified => return Err(DecodeError::invalid(message, "error.code", "code is unspecified")),
    })
}

fn config_to_pb(c: ShardConfig) -> pb::ShardConfig {
    pb::ShardConfig {
        num: c.num.0,
        shards: c.shards.into_iter().map(|g| g.0).collect(),
        groups: groups_to_pb(c.groups),
    }
}

fn config_from_pb(c: pb::ShardConfig) -> Result<ShardConfig, DecodeError> {
    Ok(ShardConfig {
        num: ConfigNum(c.num),
        shards: c.shards.into_iter().map(GroupId).collect(),
        groups: groups_from_pb("ShardConfig", c.groups)?,
    })
}

fn shard_to_pb(s: ShardData) -> pb::ShardData {
    pb::ShardData {
        shard: s.shard.0,
        entries: s.entries.into_iter().map(|(key, value)| pb::KeyValue { key, value }).collect(),
        dedup: s.dedup.into_iter().map(|(c, seq)| pb::DedupEntry { client: c.0, seq }).collect(),
        more: s.more,
    }
}

fn shard_from_pb(s: pb::ShardData) -> ShardData {
    ShardData {
        shard: ShardId(s.shard),
        entries: s.entries.into_iter().map(|kv| (kv.key, kv.value)).collect(),
        dedup: s.dedup.into_iter().map(|d| (ClientId(d.client), d.seq)).collect(),
        more: s.more,
    }
}

fn role_to_pb(r: Role) -> pb::Role {
    match r {
        Role::Follower => pb::Role::Follower,
        Role::PreCandidate => pb::Role::PreCandidate,
        Role::Candidate => pb::Role::Candidate,
        Role::Leader => pb::Role::Leader,
    }
}

fn role_from_pb(v: i32) -> Result<Role, DecodeError> {
    match pb::Role::try_from(v) {
        Ok(pb::Role::Follower) => Ok(Role::Follower),
        Ok(pb::Role::PreCandidate) => Ok(Role::PreCandidate),
        Ok(pb::Role::Candidate) => Ok(Role::Candidate),
        Ok(pb::Role::Leader) => Ok(Role::Leader),
        _ => Err(DecodeError::invalid("NodeStatus", "role", format!("unknown role {v}"))),
    }
}

fn follower_to_pb(f: FollowerStatus) -> pb::FollowerStatus {
    let (state, snapshot_index) = match f.state {
        ProgressState::Probe => (pb::ProgressState::Probe, 0),
        ProgressState::Replicate => (pb::ProgressState::Replicate, 0),
        ProgressState::Snapshot(i) => (pb::ProgressState::Snapshot, i.0),
    };
    pb::FollowerStatus {
        node: f.id.0,
        match_index: f.match_index.0,
        next_index: f.next_index.0,
        lag: f.lag,
        state: state as i32,
        snapshot_index,
    }
}

fn follower_from_pb(f: pb::FollowerStatus) -> Result<FollowerStatus, DecodeError> {
    let state = match pb::ProgressState::try_from(f.state) {
        Ok(pb::ProgressState::Probe) => ProgressState::Probe,
        Ok(pb::ProgressState::Replicate) => ProgressState::Replicate,
        Ok(pb::ProgressState::Snapshot) => ProgressState::Snapshot(LogIndex(f.snapshot_index)),
        _ => return Err(DecodeError::invalid("FollowerStatus", "state", format!("unknown state {}", f.state))),
    };
    Ok(FollowerStatus {
        id: NodeId(f.node),
        match_index: LogIndex(f.match_index),
        next_index: LogIndex(f.next_index),
        lag: f.lag,
        state,
    })
}

fn shard_state_to_pb(s: ShardState) -> pb::ShardState {
    match s {
        ShardState::Serving => pb::ShardState::Serving,
        ShardState::Pulling => pb::ShardState::Pulling,
        ShardState::Sending => pb::ShardState::Sending,
        ShardState::Collecting => pb::ShardState::Collecting,
    }
}

fn shard_state_from_pb(v: i32) -> Result<ShardState, DecodeError> {
    match pb::ShardState::try_from(v) {
        Ok(pb::ShardState::Serving) => Ok(ShardState::Serving),
        Ok(pb::ShardState::Pulling) => Ok(ShardState::Pulling),
        Ok(pb::ShardState::Sending) => Ok(ShardState::Sending),
        Ok(pb::ShardState::Collecting) => Ok(ShardState::Collecting),
        _ => Err(DecodeError::invalid("ShardStatus", "state", format!("unknown state {v}"))),
    }
}

fn status_to_pb(s: NodeStatus) -> pb::NodeStatus {
    let r = s.raft;
    pb::NodeStatus {
        group: s.group.0,
        node: r.id.0,
        role: role_to_pb(r.role) as i32,
        term: r.term.0,
        leader: r.leader.map(|n| n.0),
        commit: r.commit.0,
        applied: r.applied.0,
        last_index: r.last_index.0,
        snapshot_index: r.snapshot_index.0,
        followers: r.followers.into_iter().map(follower_to_pb).collect(),
        storage_failing: r.storage_failing,
        config: s.config.0,
        shards: s
            .shards
            .into_iter()
            .map(|st| pb::ShardStatus {
                shard: st.shard.0,
                state: shard_state_to_pb(st.state) as i32,
                from_group: st.from.map(|g| g.0),
                frozen_at: st.frozen_at.map(|c| c.0),
            })
            .collect(),
    }
}

fn status_from_pb(s: pb::NodeStatus) -> Result<NodeStatus, DecodeError> {
    let raft = Status {
        id: NodeId(s.node),
        role: role_from_pb(s.role)?,
        term: Term(s.term),
        leader: s.leader.map(NodeId),
        commit: LogIndex(s.commit),
        applied: LogIndex(s.applied),
        last_index: LogIndex(s.last_index),
        snapshot_index: LogIndex(s.snapshot_index),
        followers: s.followers.into_iter().map(follower_from_pb).collect::<Result<_, _>>()?,
        storage_failing: s.storage_failing,
    };
    let shards = s
        .shards
        .into_iter()
        .map(|st| {
            Ok(ShardStatus {
                shard: ShardId(st.shard),
                state: shard_state_from_pb(st.state)?,
                from: st.from_group.map(GroupId),
                frozen_at: st.frozen_at.map(ConfigNum),
            })
        })
        .collect::<Result<_, DecodeError>>()?;
    Ok(NodeStatus { group: GroupId(s.group), raft, config: ConfigNum(s.config), shards })
}

impl ServiceResponsePb {
    /// The wire form of `response`.
    #[must_use]
    pub fn from_core(response: ServiceResponse) -> Self {
        use pb::{ctrl_response, delete_shards_response, kv_response, pull_shards_response, status_response};
        match response {
            ServiceResponse::Kv(r) => Self::Kv(pb::KvResponse {
                result: Some(match r {
                    Ok(value) => kv_response::Result::Ok(pb::KvResult { value }),
                    Err(e) => kv_response::Result::Error(error_to_pb(e)),
                }),
            }),
            ServiceResponse::Ctrl(r) => Self::Ctrl(pb::CtrlResponse {
                result: Some(match r {
                    Ok(config) => ctrl_response::Result::Ok(pb::CtrlResult { config: config.map(config_to_pb) }),
                    Err(e) => ctrl_response::Result::Error(error_to_pb(e)),
                }),
            }),
            ServiceResponse::PullShards(r) => Self::PullShards(pb::PullShardsResponse {
                result: Some(match r {
                    Ok(shards) => pull_shards_response::Result::Ok(pb::ShardBatch {
                        shards: shards.into_iter().map(shard_to_pb).collect(),
                    }),
                    Err(e) => pull_shards_response::Result::Error(error_to_pb(e)),
                }),
            }),
            ServiceResponse::DeleteShards(r) => Self::DeleteShards(pb::DeleteShardsResponse {
                result: Some(match r {
                    Ok(()) => delete_shards_response::Result::Ok(pb::Empty {}),
                    Err(e) => delete_shards_response::Result::Error(error_to_pb(e)),
                }),
            }),
            ServiceResponse::Status(r) => Self::Status(pb::StatusResponse {
                result: Some(match r {
                    Ok(s) => status_response::Result::Ok(status_to_pb(s)),
                    Err(e) => status_response::Result::Error(error_to_pb(e)),
                }),
            }),
        }
    }

    /// The response, checked.
    pub fn into_core(self) -> Result<ServiceResponse, DecodeError> {
        use pb::{ctrl_response, delete_shards_response, kv_response, pull_shards_response, status_response};
        Ok(match self {
            Self::Kv(r) => ServiceResponse::Kv(match r.result {
                Some(kv_response::Result::Ok(ok)) => Ok(ok.value),
                Some(kv_response::Result::Error(e)) => Err(error_from_pb("KvResponse", e)?),
                None => return Err(DecodeError::missing("KvResponse", "result")),
            }),
            Self::Ctrl(r) => ServiceResponse::Ctrl(match r.result {
                Some(ctrl_response::Result::Ok(ok)) => Ok(ok.config.map(config_from_pb).transpose()?),
                Some(ctrl_response::Result::Error(e)) => Err(error_from_pb("CtrlResponse", e)?),
                None => return Err(DecodeError::missing("CtrlResponse", "result")),
            }),
            Self::PullShards(r) => ServiceResponse::PullShards(match r.result {
                Some(pull_shards_response::Result::Ok(ok)) => Ok(ok.shards.into_iter().map(shard_from_pb).collect()),
                Some(pull_shards_response::Result::Error(e)) => Err(error_from_pb("PullShardsResponse", e)?),
                None => return Err(DecodeError::missing("PullShardsResponse", "result")),
            }),
            Self::DeleteShards(r) => ServiceResponse::DeleteShards(match r.result {
                Some(delete_shards_response::Result::Ok(_)) => Ok(()),
                Some(delete_shards_response::Result::Error(e)) => Err(error_from_pb("DeleteShardsResponse", e)?),
                None => return Err(DecodeError::missing("DeleteShardsResponse", "result")),
            }),
            Self::Status(r) => ServiceResponse::Status(match r.result {
                Some(status_response::Result::Ok(s)) => Ok(status_from_pb(s)?),
                Some(status_response::Result::Error(e)) => Err(error_from_pb("StatusResponse", e)?),
                None => return Err(DecodeError::missing("StatusResponse", "result")),
            }),
        })
    }

    /// Decode the response to RPC `rpc` (`service/method`) from `buf`.
    pub fn decode(rpc: &str, buf: Bytes) -> Result<Self, DecodeError> {
        let service = rpc.split('/').next().unwrap_or_default();
        Ok(match (service, rpc) {
            ("kv", _) if SERVICE_RPCS[..4].contains(&rpc) => Self::Kv(decode("KvResponse", buf)?),
            ("ctrler", _) if SERVICE_RPCS[4..8].contains(&rpc) => Self::Ctrl(decode("CtrlResponse", buf)?),
            (_, "migration/pull_shards") => Self::PullShards(decode("PullShardsResponse", buf)?),
            (_, "migration/delete_shards") => Self::DeleteShards(decode("DeleteShardsResponse", buf)?),
            (_, "admin/status") => Self::Status(decode("StatusResponse", buf)?),
            _ => return Err(DecodeError::UnknownRpc(rpc.to_string())),
        })
    }
}
