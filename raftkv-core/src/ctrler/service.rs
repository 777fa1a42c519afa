//! [`CtrlService`]: the controller's service handler — Join, Leave and Move
//! through the Raft log, Query after a ReadIndex barrier (no log write).

use std::time::Duration;
use tracing::Instrument;

use async_trait::async_trait;

use super::encoding::encode_command;
use super::state_machine::{CtrlReply, SharedCtrlState};
use crate::api::{ApiError, CtrlOp, CtrlRequest, NodeStatus, ServiceHandler, ServiceRequest, ServiceResponse};
use crate::raft::driver::RaftHandle;
use crate::types::{ConfigNum, GroupId, NodeId};

/// The controller service of one member.
#[derive(Clone)]
pub struct CtrlService {
    group: GroupId,
    raft: RaftHandle<CtrlReply>,
    state: SharedCtrlState,
    members: Vec<NodeId>,
    commit_timeout: Duration,
}

impl std::fmt::Debug for CtrlService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtrlService")
            .field("group", &self.group)
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}

impl CtrlService {
    /// The service of the member `raft` of controller group `group`, whose
    /// members in server-list order are `members`; a write that does not
    /// commit within `commit_timeout` is answered `Unavailable` (the client
    /// retries with the same request id).
    #[must_use]
    pub fn new(
        group: GroupId,
        raft: RaftHandle<CtrlReply>,
        state: SharedCtrlState,
        members: Vec<NodeId>,
        commit_timeout: Duration,
    ) -> Self {
        Self { group, raft, state, members, commit_timeout }
    }

    async fn ctrl(&self, request: CtrlRequest) -> ServiceResponse {
        let refuse =
            |e: &crate::raft::driver::RaftError| ServiceResponse::Ctrl(Err(ApiError::from_raft(e, &self.members)));
        if let CtrlOp::Query { num } = request.op {
            return match self.raft.read_index().await {
                Ok(_) => ServiceResponse::Ctrl(Ok(Some(self.state.read().configs.query(num).clone()))),
                Err(e) => refuse(&e),
            };
        }
        // The count of this member's configurations: a command for another
        // count than the replicated history's is refused when applied.
        let shards = self.state.read().configs.shard_count();
        let Some(command) = encode_command(request.id, &request.op, shards) else {
            return ServiceResponse::Ctrl(Err(ApiError::Invalid { reason: "nothing to do".into() }));
        };
        let span = tracing::info_span!("ctrler_op", group = %self.group, op = request.op.name(), client = %request.id.client, seq = request.id.seq);
        match tokio::time::timeout(self.commit_timeout, self.raft.propose(command)).instrument(span).await {
            Ok(Ok(Ok(()))) => ServiceResponse::Ctrl(Ok(None)),
            Ok(Ok(Err(reason))) => ServiceResponse::Ctrl(Err(ApiError::Invalid { reason })),
            Ok(Err(e)) => refuse(&e),
            Err(_) => ServiceResponse::Ctrl(Err(ApiError::Unavailable {
                reason: format!("not committed within {:?}", self.commit_timeout),
            })),
        }
    }
}

#[async_trait]
impl ServiceHandler for CtrlService {
    async fn handle(&self, request: ServiceRequest) -> ServiceResponse {
        match request {
            ServiceRequest::Ctrl(r) => self.ctrl(r).await,
            ServiceRequest::Status => match self.raft.status().await {
                Ok(raft) => ServiceResponse::Status(Ok(NodeStatus {
                    group: self.group,
                    raft,
                    config: ConfigNum(0),
                    shards: Vec::new(),
                })),
                Err(e) => ServiceResponse::Status(Err(ApiError::from_raft(&e, &self.members))),
            },
            other => {
                let what = format!("{} (this is a shard controller)", other.name());
                other.refuse(ApiError::Unsupported { what })
            }
        }
    }
}
