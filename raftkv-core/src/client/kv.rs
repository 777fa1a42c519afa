//! [`KvClerk`]: the ShardKV client.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use super::retry::Refusals;
use super::{Attempts, ClerkConfig, ClerkError, CtrlClerk};
use crate::api::{
    shard_of, ApiError, KvOp, KvRequest, RequestId, ServiceClient, ServiceRequest, ServiceResponse, ShardConfig,
};
use crate::types::{ClientId, GroupId};

/// Where a clerk learns which group serves which shard.
enum Routing {
    /// Ask the controller (and refresh when told `WrongGroup`).
    Controller(Box<CtrlClerk>),
    /// A fixed configuration (a single group without a controller).
    Static,
}

/// A client of ShardKV: Get, Put, Append and Delete. It caches the
/// configuration, routes each key to the group serving its shard
/// ([`shard_of`]), and retries with the same request id — on another server
/// when one is not the leader or does not answer, after refreshing the
/// configuration when told `WrongGroup` — so every write applies at most once.
pub struct KvClerk {
    routing: Routing,
    config: ShardConfig,
    net: Arc<dyn ServiceClient>,
    client: ClientId,
    seq: u64,
    leaders: BTreeMap<GroupId, usize>,
    cfg: ClerkConfig,
}

impl std::fmt::Debug for KvClerk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvClerk")
            .field("client", &self.client)
            .field("config", &self.config.num)
            .finish_non_exhaustive()
    }
}

impl KvClerk {
    /// A clerk that learns configurations from the controller clerk `ctrl`.
    #[must_use]
    pub fn new(ctrl: CtrlClerk, net: Arc<dyn ServiceClient>, client: ClientId, cfg: ClerkConfig) -> Self {
        Self {
            routing: Routing::Controller(Box::new(ctrl)),
            config: ShardConfig::default(),
            net,
            client,
            seq: 0,
            leaders: BTreeMap::new(),
            cfg,
        }
    }

    /// A clerk of a fixed configuration (no controller).
    #[must_use]
    pub fn with_config(config: ShardConfig, net: Arc<dyn ServiceClient>, client: ClientId, cfg: ClerkConfig) -> Self {
        Self { routing: Routing::Static, config, net, client, seq: 0, leaders: BTreeMap::new(), cfg }
    }

    /// The key's value; `None` if it is missing.
    pub async fn get(&mut self, key: impl Into<Bytes>) -> Result<Option<Bytes>, ClerkError> {
        self.call(KvOp::Get { key: key.into() }).await
    }

    /// Set the key.
    pub async fn put(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<(), ClerkError> {
        self.call(KvOp::Put { key: key.into(), value: value.into() }).await.map(|_| ())
    }

    /// Append to the key's value.
    pub async fn append(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<(), ClerkError> {
        self.call(KvOp::Append { key: key.into(), value: value.into() }).await.map(|_| ())
    }

    /// Remove the key.
    pub async fn delete(&mut self, key: impl Into<Bytes>) -> Result<(), ClerkError> {
        self.call(KvOp::Delete { key: key.into() }).await.map(|_| ())
    }

    /// This clerk's client id.
    #[must_use]
    pub fn client(&self) -> ClientId {
        self.client
    }

    async fn refresh(&mut self) -> Result<(), ClerkError> {
        if let Routing::Controller(ctrl) = &mut self.routing {
            self.config = ctrl.query(None).await?;
        }
        Ok(())
    }

    async fn call(&mut self, op: KvOp) -> Result<Option<Bytes>, ClerkError> {
        self.seq += 1;
        let request = ServiceRequest::Kv(KvRequest { id: RequestId { client: self.client, seq: self.seq }, op });
        let key = match &request {
            ServiceRequest::Kv(r) => r.op.key().clone(),
            _ => Bytes::new(),
        };
        let mut attempts = Attempts::new(self.cfg.deadline);
        let mut refusals = Refusals::default();
        loop {
            attempts.check()?;
            let shard = shard_of(&key, self.config.shards.len());
            let group =
                usize::try_from(shard.0).ok().and_then(|i| self.config.shards.get(i)).copied().unwrap_or(GroupId(0));
            let servers = self.config.groups.get(&group).cloned().unwrap_or_default();
            let mut refresh = servers.is_empty();
            let start = self.leaders.get(&group).copied().unwrap_or(0);
            for k in 0..servers.len() {
                attempts.check()?;
                let i = (start + k) % servers.len();
                let answer = self.net.call_service(&servers[i], request.clone()).await;
                if answer.is_ok() {
                    refusals.other();
                }
                match answer {
                    Ok(ServiceResponse::Kv(Ok(value))) => {
                        self.leaders.insert(group, i);
                        return Ok(value);
                    }
                    Ok(ServiceResponse::Kv(Err(ApiError::Invalid { reason }))) => {
                        return Err(ClerkError::Invalid(reason))
                    }
                    Ok(ServiceResponse::Kv(Err(ApiError::WrongGroup { .. }))) => {
                        // Only a leader applies and answers this: remember it.
                        self.leaders.insert(group, i);
                        attempts.last = format!("group {group} does not serve the key's shard {shard}");
                        refresh = true;
                        break;
                    }
                    Ok(other) => attempts.last = format!("{}: {other:?}", servers[i]),
                    Err(e) => {
                        refusals.failed(&e, servers.len())?;
                        attempts.last = e.to_string();
                    }
                }
            }
            tokio::time::sleep(self.cfg.retry_pause).await;
            if refresh || matches!(self.routing, Routing::Controller(_)) {
                self.refresh().await?;
            }
        }
    }
}
