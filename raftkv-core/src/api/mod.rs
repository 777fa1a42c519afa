//! Service RPCs: what clients and other groups ask of a server — key-value
//! operations, controller operations, shard migration and node status.
//!
//! A transport delivers a [`ServiceRequest`] to the server's
//! [`ServiceHandler`] and carries its [`ServiceResponse`] back; the client
//! half is [`ServiceClient`]. Refusals ([`ApiError`]: wrong group, not the
//! leader, …) are ordinary answers inside the response, not transport errors.

pub mod admin;
pub mod ctrler;
mod error;
pub mod kv;
pub mod migration;

use async_trait::async_trait;
use bytes::Bytes;

pub use admin::{NodeStatus, ShardState, ShardStatus};
pub use ctrler::{CtrlOp, CtrlRequest, ShardConfig};
pub use error::ApiError;
pub use kv::{shard_of, KvOp, KvRequest, RequestId};
pub use migration::{DeleteShardsRequest, PullShardsRequest, ShardData};

use crate::transport::TransportError;

/// Any service request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceRequest {
    /// A key-value operation (ShardKV).
    Kv(KvRequest),
    /// A controller operation.
    Ctrl(CtrlRequest),
    /// Shard migration: send me these shards.
    PullShards(PullShardsRequest),
    /// Shard migration: delete your copy of these shards.
    DeleteShards(DeleteShardsRequest),
    /// Node status.
    Status,
}

/// Any service response: the answer to the [`ServiceRequest`] of the same name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceResponse {
    /// A Get's value (`None` when the key is missing), `None` for writes.
    Kv(Result<Option<Bytes>, ApiError>),
    /// The configuration asked for by a Query, `None` for Join, Leave and Move.
    Ctrl(Result<Option<ShardConfig>, ApiError>),
    /// The pulled shards.
    PullShards(Result<Vec<ShardData>, ApiError>),
    /// The shards were deleted (or already gone).
    DeleteShards(Result<(), ApiError>),
    /// The node's status.
    Status(Result<NodeStatus, ApiError>),
}

impl ServiceRequest {
    /// Short name of the call (`kv.get`, `ctrler.join`, `migration.pull_shards`, `admin.status`).
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Kv(r) => match r.op {
                KvOp::Get { .. } => "kv.get",
                KvOp::Put { .. } => "kv.put",
                KvOp::Append { .. } => "kv.append",
                KvOp::Delete { .. } => "kv.delete",
            },
            Self::Ctrl(r) => match r.op {
                CtrlOp::Join { .. } => "ctrler.join",
                CtrlOp::Leave { .. } => "ctrler.leave",
                CtrlOp::Move { .. } => "ctrler.move",
                CtrlOp::Query { .. } => "ctrler.query",
            },
            Self::PullShards(_) => "migration.pull_shards",
            Self::DeleteShards(_) => "migration.delete_shards",
            Self::Status => "admin.status",
        }
    }

    /// The response of this request's kind carrying `error`.
    #[must_use]
    pub fn refuse(&self, error: ApiError) -> ServiceResponse {
        match self {
            Self::Kv(_) => ServiceResponse::Kv(Err(error)),
            Self::Ctrl(_) => ServiceResponse::Ctrl(Err(error)),
            Self::PullShards(_) => ServiceResponse::PullShards(Err(error)),
            Self::DeleteShards(_) => ServiceResponse::DeleteShards(Err(error)),
            Self::Status => ServiceResponse::Status(Err(error)),
        }
    }

    /// Whether `response` is of the kind that answers this request.
    #[must_use]
    pub fn is_answered_by(&self, response: &ServiceResponse) -> bool {
        matches!(
            (self, response),
            (Self::Kv(_), ServiceResponse::Kv(_))
                | (Self::Ctrl(_), ServiceResponse::Ctrl(_))
                | (Self::PullShards(_), ServiceResponse::PullShards(_))
                | (Self::DeleteShards(_), ServiceResponse::DeleteShards(_))
                | (Self::Status, ServiceResponse::Status(_))
        )
    }
}

/// Server half of the service RPCs: answers requests a transport delivers.
///
/// # Contract
/// - `handle` answers every request with the response of its kind
///   ([`ServiceRequest::refuse`] builds one for a refusal); a service the
///   server does not offer is refused with [`ApiError::Unsupported`].
/// - It may be called concurrently from many connections.
#[async_trait]
pub trait ServiceHandler: Send + Sync + 'static {
    /// Answer one request.
    async fn handle(&self, request: ServiceRequest) -> ServiceResponse;
}

/// Client half of the service RPCs.
///
/// # Contract
/// - `call_service` sends `request` to the server at `addr` (`host:port`) and
///   resolves to its response, which answers the request
///   ([`ServiceRequest::is_answered_by`]), or to a [`TransportError`]; it
///   finishes within the transport's deadline.
/// - An error leaves the outcome unknown: a client retries with the same
///   [`RequestId`] so the server can deduplicate.
#[async_trait]
pub trait ServiceClient: Send + Sync + 'static {
    /// Send one request to `addr` and wait for its response.
    async fn call_service(&self, addr: &str, request: ServiceRequest) -> Result<ServiceResponse, TransportError>;
}
