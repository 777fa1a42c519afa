//! The previous holder's check before it deletes shards it handed over.
//!
//! A delete is the one migration step that destroys data: if a holder
//! deleted a frozen shard before the group that gained it had installed it,
//! acknowledged writes would be gone. So a holder takes a
//! [`DeleteShardsRequest`] as a claim to verify, not an order:
//! 1. the transport has already checked that the caller may speak for the
//!    group the request names (`Caller::may_speak_for` of the network transports' access policy);
//! 2. for a shard that went to a group (not to nobody), the holder's own
//!    configuration — the one it froze the shard in, since it cannot move on
//!    while holding it — must have given the shard to that group;
//! 3. that group itself must report, from a replica's applied state, each
//!    shard as collecting from this holder at the configuration it was frozen
//!    in. A group enters that state only by applying the shard's install, so
//!    a report of it proves the data is in the group's log; the group stays in
//!    it until the holder has confirmed the delete. The group's servers come
//!    from the holder's configuration or, when the holder has moved past the
//!    configurations naming that group, from the controller's history —
//!    never from the request.

use std::collections::BTreeMap;

use super::service::ShardKvService;
use crate::api::{ApiError, DeleteShardsRequest, NodeStatus, ServiceRequest, ServiceResponse, ShardState, ShardStatus};
use crate::client::{ClerkConfig, CtrlClerk};
use crate::types::{ClientId, ConfigNum, GroupId, ShardId};

/// A frozen shard the holder still has: its id, and whether it went to nobody.
pub(crate) type HeldShard = (ShardId, bool);

/// Whether `status` (a replica of `group`) shows every shard of `shards`
/// installed from `holder` as frozen at `frozen_at`.
fn reports_installed(
    status: &NodeStatus,
    group: GroupId,
    holder: GroupId,
    frozen_at: ConfigNum,
    shards: &[ShardId],
) -> bool {
    let by_shard: BTreeMap<ShardId, &ShardStatus> = status.shards.iter().map(|s| (s.shard, s)).collect();
    status.group == group
        && shards.iter().all(|id| {
            by_shard.get(id).is_some_and(|s| {
                s.state == ShardState::Collecting && s.from == Some(holder) && s.frozen_at == Some(frozen_at)
            })
        })
}

impl ShardKvService {
    /// Check the claim of `request` about the frozen shards `held` (see the
    /// module docs); `Ok` when the holder may delete them.
    pub(crate) async fn confirm_handover(
        &self,
        request: &DeleteShardsRequest,
        held: &[HeldShard],
    ) -> Result<(), ApiError> {
        let (config, servers) = {
            let state = self.state.read();
            (state.config().clone(), state.config().groups.get(&request.group).cloned())
        };
        for &(shard, to_nobody) in held {
            let owner = config.shards.get(usize::try_from(shard.0).unwrap_or(usize::MAX)).copied();
            if !to_nobody && (config.num != request.config || owner != Some(request.group)) {
                return Err(ApiError::Invalid {
                    reason: format!(
                        "configuration {} gave shard {shard} to group {}, not to group {}",
                        config.num,
                        owner.map_or_else(|| "none".to_string(), |g| g.to_string()),
                        request.group
                    ),
                });
            }
        }
        let servers = match servers {
            Some(s) => s,
            None => self.servers_in_history(request.group, request.config, config.num).await?,
        };
        let shards: Vec<ShardId> = held.iter().map(|&(s, _)| s).collect();
        let mut answered = 0usize;
        for server in &servers {
            let status =
                tokio::time::timeout(self.call_timeout, self.net.call_service(server, ServiceRequest::Status)).await;
            if let Ok(Ok(ServiceResponse::Status(Ok(status)))) = status {
                answered += 1;
                if reports_installed(&status, request.group, self.group, request.config, &shards) {
                    return Ok(());
                }
            }
        }
        if answered == 0 {
            return Err(ApiError::Unavailable {
                reason: format!("no server of group {} answered whether it installed shards {shards:?}", request.group),
            });
        }
        tracing::warn!(group = %self.group, asker = %request.group, config = %request.config, shards = ?shards,
            "refused to delete shards: the group asking does not report them installed from here");
        Err(ApiError::Invalid {
            reason: format!(
                "group {} does not report shards {shards:?} installed from group {} (frozen at configuration {})",
                request.group, self.group, request.config
            ),
        })
    }

    /// The servers of `group` in the latest configuration from `current`
    /// back to the one after `frozen_at` that lists it, from the controller.
    async fn servers_in_history(
        &self,
        group: GroupId,
        frozen_at: ConfigNum,
        current: ConfigNum,
    ) -> Result<Vec<String>, ApiError> {
        let unknown = || ApiError::NotReady { config: current };
        if self.ctrl_servers.is_empty() {
            return Err(unknown());
        }
        let cfg = ClerkConfig { retry_pause: self.call_timeout / 4, deadline: Some(self.call_timeout) };
        let mut ctrl = CtrlClerk::new(self.ctrl_servers.clone(), self.net.clone(), ClientId(0), cfg);
        let mut num = current.0;
        while num > frozen_at.0 {
            let config = ctrl.query(Some(ConfigNum(num))).await.map_err(|e| ApiError::Unavailable {
                reason: format!("cannot read configuration {num} from the controller: {e}"),
            })?;
            if let Some(servers) = config.groups.get(&group) {
                return Ok(servers.clone());
            }
            num -= 1;
        }
        Err(unknown())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::core::{Role, Status};
    use crate::types::{LogIndex, NodeId, Term};

    fn status(group: u64, shards: Vec<ShardStatus>) -> NodeStatus {
        let raft = Status {
            id: NodeId(1),
            role: Role::Follower,
            term: Term(1),
            leader: None,
            commit: LogIndex(0),
            applied: LogIndex(0),
            last_index: LogIndex(0),
            snapshot_index: LogIndex(0),
            followers: Vec::new(),
            storage_failing: None,
        };
        NodeStatus { group: GroupId(group), raft, config: ConfigNum(5), shards }
    }

    fn collecting(shard: u64, from: u64, frozen_at: u64) -> ShardStatus {
        ShardStatus {
            shard: ShardId(shard),
            state: ShardState::Collecting,
            from: Some(GroupId(from)),
            frozen_at: Some(ConfigNum(frozen_at)),
        }
    }

    #[test]
    fn only_a_report_of_every_shard_collecting_from_this_holder_counts() {
        let shards = [ShardId(1), ShardId(4)];
        let good = status(2, vec![collecting(1, 1, 5), collecting(4, 1, 5)]);
        assert!(reports_installed(&good, GroupId(2), GroupId(1), ConfigNum(5), &shards));
        assert!(!reports_installed(&good, GroupId(3), GroupId(1), ConfigNum(5), &shards), "another group's report");
        assert!(!reports_installed(&good, GroupId(2), GroupId(7), ConfigNum(5), &shards), "from another holder");
        assert!(!reports_installed(&good, GroupId(2), GroupId(1), ConfigNum(4), &shards), "another freeze");
        let one_missing = status(2, vec![collecting(1, 1, 5)]);
        assert!(!reports_installed(&one_missing, GroupId(2), GroupId(1), ConfigNum(5), &shards));
        let mut pulling = collecting(4, 1, 5);
        pulling.state = ShardState::Pulling;
        let still_pulling = status(2, vec![collecting(1, 1, 5), pulling]);
        assert!(!reports_installed(&still_pulling, GroupId(2), GroupId(1), ConfigNum(5), &shards));
    }
}
