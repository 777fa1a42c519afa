//! [`ShardKvService`]: a ShardKV member's service handler — client reads
//! after a ReadIndex barrier, client writes through the log, and the old
//! owner's half of shard migration (hand over frozen shards, delete them).

use std::time::Duration;
use tracing::Instrument;

use async_trait::async_trait;
use bytes::Bytes;

use super::command::Command;
use super::state::Applied;
use super::state_machine::SharedShardKv;
use crate::api::{
    ApiError, DeleteShardsRequest, KvOp, KvRequest, NodeStatus, PullShardsRequest, ServiceClient, ServiceHandler,
    ServiceRequest, ServiceResponse,
};
use crate::raft::driver::{RaftError, RaftHandle};
use crate::types::{GroupId, NodeId};

/// Most bytes of keys and values sent in one answer to a pull that asked
/// for a size.
const MAX_PULL_BYTES: usize = 16 << 20;

/// Largest sizes a client may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvLimits {
    /// Longest key, in bytes.
    pub max_key_bytes: usize,
    /// Longest value (or appended suffix), in bytes.
    pub max_value_bytes: usize,
}

impl Default for KvLimits {
    fn default() -> Self {
        Self { max_key_bytes: 8 << 10, max_value_bytes: 1 << 20 }
    }
}

/// The service of one ShardKV member.
#[derive(Clone)]
pub struct ShardKvService {
    pub(crate) group: GroupId,
    pub(crate) raft: RaftHandle<Applied>,
    pub(crate) state: SharedShardKv,
    pub(crate) members: Vec<NodeId>,
    pub(crate) limits: KvLimits,
    pub(crate) commit_timeout: Duration,
    /// Calls to other groups and the controller (checking a handover).
    pub(crate) net: std::sync::Arc<dyn ServiceClient>,
    /// The controller's servers (none with a static configuration).
    pub(crate) ctrl_servers: Vec<String>,
    /// Deadline of one call to another group or the controller.
    pub(crate) call_timeout: Duration,
}

impl std::fmt::Debug for ShardKvService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardKvService")
            .field("group", &self.group)
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}

impl ShardKvService {
    fn refusal(&self, e: &RaftError) -> ApiError {
        ApiError::from_raft(e, &self.members)
    }

    /// Replicate `command`; its reply once applied.
    pub(crate) async fn propose(&self, command: &Command) -> Result<Applied, ApiError> {
        match tokio::time::timeout(self.commit_timeout, self.raft.propose(command.encode())).await {
            Ok(Ok(applied)) => Ok(applied),
            Ok(Err(e)) => Err(self.refusal(&e)),
            Err(_) => Err(ApiError::Unavailable { reason: format!("not committed within {:?}", self.commit_timeout) }),
        }
    }

    fn check_sizes(&self, op: &KvOp) -> Result<(), ApiError> {
        let key = op.key();
        if key.len() > self.limits.max_key_bytes {
            return Err(ApiError::Invalid {
                reason: format!("key of {} bytes exceeds the limit of {} bytes", key.len(), self.limits.max_key_bytes),
            });
        }
        if let KvOp::Put { value, .. } | KvOp::Append { value, .. } = op {
            if value.len() > self.limits.max_value_bytes {
                return Err(ApiError::Invalid {
                    reason: format!(
                        "value of {} bytes exceeds the limit of {} bytes",
                        value.len(),
                        self.limits.max_value_bytes
                    ),
                });
            }
        }
        Ok(())
    }

    async fn kv(&self, request: KvRequest) -> Result<Option<Bytes>, ApiError> {
        self.check_sizes(&request.op)?;
        if let KvOp::Get { key } = &request.op {
            self.raft.read_index().await.map_err(|e| self.refusal(&e))?;
            return self.state.read().get(key);
        }
        match self.propose(&Command::Client { id: request.id, op: request.op }).await? {
            Applied::Ok => Ok(None),
            Applied::WrongGroup { config } => Err(ApiError::WrongGroup { config }),
            Applied::Stale => Err(ApiError::Unavailable { reason: "the write was not applied".into() }),
            Applied::Malformed(why) | Applied::Refused(why) => Err(ApiError::Invalid { reason: why }),
            Applied::ShardCountMismatch { .. } => {
                Err(ApiError::Unavailable { reason: "this replica's shard count is wrong; it stopped".into() })
            }
        }
    }

    async fn pull(&self, request: PullShardsRequest) -> Result<Vec<crate::api::ShardData>, ApiError> {
        // No read index (and any replica may answer): a shard frozen at a
        // configuration never changes afterwards, and every replica that
        // applied the freeze holds the same copy — one that did not yet, or
        // no longer holds it, refuses.
        let _span = tracing::info_span!("shard_pull_serve", group = %self.group, config = %request.config, shards = ?request.shards).entered();
        // No size asked for: whole shards, as a requester that cannot resume
        // a shard expects.
        let max_bytes = match request.max_bytes {
            0 => usize::MAX,
            n => usize::try_from(n).unwrap_or(usize::MAX).min(MAX_PULL_BYTES),
        };
        self.state.read().frozen(request.config, &request.shards, request.after.as_deref(), max_bytes)
    }

    async fn delete(&self, request: DeleteShardsRequest) -> Result<(), ApiError> {
        let span = tracing::info_span!("shard_gc_serve", group = %self.group, config = %request.config, shards = ?request.shards);
        self.raft.read_index().instrument(span.clone()).await.map_err(|e| self.refusal(&e))?;
        let held = {
            let state = self.state.read();
            if state.config().num < request.config {
                return Err(ApiError::NotReady { config: state.config().num });
            }
            state.held_frozen(request.config, &request.shards)
        };
        if held.is_empty() {
            // Nothing of it is held any more: already deleted.
            return Ok(());
        }
        self.confirm_handover(&request, &held).instrument(span.clone()).await?;
        self.propose(&Command::Delete { frozen_at: request.config, shards: request.shards })
            .instrument(span)
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl ServiceHandler for ShardKvService {
    async fn handle(&self, request: ServiceRequest) -> ServiceResponse {
        match request {
            ServiceRequest::Kv(r) => ServiceResponse::Kv(self.kv(r).await),
            ServiceRequest::PullShards(r) => ServiceResponse::PullShards(self.pull(r).await),
            ServiceRequest::DeleteShards(r) => ServiceResponse::DeleteShards(self.delete(r).await),
            ServiceRequest::Status => ServiceResponse::Status(match self.raft.status().await {
                Ok(raft) => {
                    let state = self.state.read();
                    Ok(NodeStatus { group: self.group, raft, config: state.config().num, shards: state.shard_status() })
                }
                Err(e) => Err(self.refusal(&e)),
            }),
            other => {
                let what = format!("{} (this is a ShardKV server)", other.name());
                other.refuse(ApiError::Unsupported { what })
            }
        }
    }
}
