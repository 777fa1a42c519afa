//! [`CtrlClerk`]: the shard controller's client.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::retry::Refusals;
use super::{Attempts, ClerkConfig, ClerkError};
use crate::api::{
    ApiError, CtrlOp, CtrlRequest, RequestId, ServiceClient, ServiceRequest, ServiceResponse, ShardConfig,
};
use crate::types::{ClientId, ConfigNum, GroupId, ShardId};

/// A client of the shard controller: Join, Leave, Move and Query, each
/// retried across the controller's servers until one leader applies it.
pub struct CtrlClerk {
    servers: Vec<String>,
    net: Arc<dyn ServiceClient>,
    client: ClientId,
    seq: u64,
    leader: usize,
    cfg: ClerkConfig,
}

impl std::fmt::Debug for CtrlClerk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtrlClerk")
            .field("servers", &self.servers)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl CtrlClerk {
    /// A clerk of the controller at `servers`, reached through `net`,
    /// identified as `client` (unique among clients: it keys deduplication).
    #[must_use]
    pub fn new(servers: Vec<String>, net: Arc<dyn ServiceClient>, client: ClientId, cfg: ClerkConfig) -> Self {
        Self { servers, net, client, seq: 0, leader: 0, cfg }
    }

    /// Add groups with their servers.
    pub async fn join(&mut self, groups: BTreeMap<GroupId, Vec<String>>) -> Result<(), ClerkError> {
        self.call(CtrlOp::Join { groups }).await.map(|_| ())
    }

    /// Remove groups.
    pub async fn leave(&mut self, groups: Vec<GroupId>) -> Result<(), ClerkError> {
        self.call(CtrlOp::Leave { groups }).await.map(|_| ())
    }

    /// Give `shard` to `group`.
    pub async fn move_shard(&mut self, shard: ShardId, group: GroupId) -> Result<(), ClerkError> {
        self.call(CtrlOp::Move { shard, group }).await.map(|_| ())
    }

    /// Configuration `num` (`None` or a number past the latest: the latest).
    pub async fn query(&mut self, num: Option<ConfigNum>) -> Result<ShardConfig, ClerkError> {
        match self.call(CtrlOp::Query { num }).await? {
            Some(c) => Ok(c),
            None => Err(ClerkError::Invalid("the controller answered a query without a configuration".into())),
        }
    }

    async fn call(&mut self, op: CtrlOp) -> Result<Option<ShardConfig>, ClerkError> {
        if self.servers.is_empty() {
            return Err(ClerkError::NoServers);
        }
        self.seq += 1;
        let request = ServiceRequest::Ctrl(CtrlRequest { id: RequestId { client: self.client, seq: self.seq }, op });
        let mut attempts = Attempts::new(self.cfg.deadline);
        let mut refusals = Refusals::default();
        loop {
            for _ in 0..self.servers.len() {
                attempts.check()?;
                let server = self.leader % self.servers.len();
                let answer = self.net.call_service(&self.servers[server], request.clone()).await;
                if answer.is_ok() {
                    refusals.other();
                }
                match answer {
                    Ok(ServiceResponse::Ctrl(Ok(config))) => return Ok(config),
                    Ok(ServiceResponse::Ctrl(Err(ApiError::Invalid { reason }))) => {
                        return Err(ClerkError::Invalid(reason))
                    }
                    Ok(ServiceResponse::Ctrl(Err(ApiError::NotLeader { leader_hint: Some(l) }))) if l.0 >= 1 => {
                        attempts.last = format!("{} is not the leader", self.servers[server]);
                        self.leader = usize::try_from(l.0 - 1).unwrap_or(0);
                        continue;
                    }
                    Ok(other) => attempts.last = format!("{}: {other:?}", self.servers[server]),
                    Err(e) => {
                        refusals.failed(&e, self.servers.len())?;
                        attempts.last = e.to_string();
                    }
                }
                self.leader = server + 1;
            }
            tokio::time::sleep(self.cfg.retry_pause).await;
        }
    }
}
