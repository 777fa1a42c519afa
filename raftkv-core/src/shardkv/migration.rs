//! The migration task of a ShardKV member: while it leads its group, it
//! moves the group to the next configuration once every shard is settled,
//! pulls the shards the group gained from their previous holders and
//! installs them through the log, and asks the previous holders to delete
//! their copies (then records, through the log, that they did).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures::stream::{FuturesOrdered, StreamExt};
use tracing::Instrument;

use super::command::{Command, ShardSource};
use super::cursor::PullCursor;
use super::service::ShardKvService;
use super::state::{Applied, Exchange};
use crate::api::{
    ApiError, DeleteShardsRequest, PullShardsRequest, ServiceClient, ServiceRequest, ServiceResponse, ShardConfig,
    ShardData,
};
use crate::client::CtrlClerk;
use crate::raft::core::Role;
use crate::types::{ConfigNum, GroupId, ShardId};

/// Runs of one pull being committed at once, besides the one being fetched.
const INSTALLS_IN_FLIGHT: usize = 2;

/// Where a group learns its configurations.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    /// Poll the shard controller at these servers.
    Controller(Vec<String>),
    /// One fixed configuration (numbered 1), for a single group without a
    /// controller (the key-value service of the course's lab 4).
    Static(ShardConfig),
}

pub(crate) struct Migrator {
    pub(crate) service: ShardKvService,
    pub(crate) source: ConfigSource,
    pub(crate) ctrl: Option<CtrlClerk>,
    pub(crate) net: Arc<dyn ServiceClient>,
    pub(crate) interval: Duration,
    pub(crate) call_timeout: Duration,
    pub(crate) chunk_bytes: usize,
}

/// Send `request` to the servers of a group until one (its leader) answers
/// conclusively. `None` if none did.
async fn call_group(net: &dyn ServiceClient, servers: &[String], request: &ServiceRequest) -> Option<ServiceResponse> {
    for server in servers {
        match net.call_service(server, request.clone()).await {
            Ok(
                ServiceResponse::PullShards(Err(
                    ApiError::NotLeader { .. } | ApiError::Unavailable { .. } | ApiError::NotReady { .. },
                ))
                | ServiceResponse::DeleteShards(Err(ApiError::NotLeader { .. } | ApiError::Unavailable { .. })),
            )
            | Err(_) => continue,
            Ok(answer) => return Some(answer),
        }
    }
    None
}

impl Migrator {
    pub(crate) async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let leads = self.service.raft.status().await.map(|s| s.role == Role::Leader);
            match leads {
                Ok(true) => self.step().await,
                Ok(false) => {}
                Err(_) => return,
            }
        }
    }

    async fn step(&mut self) {
        let (settled, num, pulls, collections) = {
            let state = self.service.state.read();
            (state.settled(), state.config().num, state.pulls(), state.collections())
        };
        if settled {
            self.advance(num).await;
            return;
        }
        let group = self.service.group;
        let pulls = pulls.into_iter().map(|ex| self.pull(group, num, ex));
        futures::future::join_all(pulls).await;
        let collections = collections.into_iter().map(|ex| self.collect(group, num, ex));
        futures::future::join_all(collections).await;
    }

    /// Propose the configuration after `num`, if there is one.
    async fn advance(&mut self, num: ConfigNum) {
        let next = ConfigNum(num.0.saturating_add(1));
        let config = match &self.source {
            ConfigSource::Static(c) if num == ConfigNum(0) => ShardConfig { num: next, ..c.clone() },
            ConfigSource::Static(_) => return,
            ConfigSource::Controller(_) => {
                let Some(ctrl) = self.ctrl.as_mut() else { return };
                match tokio::time::timeout(self.call_timeout, ctrl.query(Some(next))).await {
                    Ok(Ok(c)) if c.num == next => c,
                    _ => return,
                }
            }
        };
        let sources = self.sources_of_unowned(&config).await;
        let Some(sources) = sources else { return };
        if self.service.state.read().waits_for_parked(&config, &sources) {
            return;
        }
        let span = tracing::info_span!("config_change", group = %self.service.group, config = %next);
        let _ = self.service.propose(&Command::Config { config, sources }).instrument(span).await;
    }

    /// For the shards `next` gives this group that had no owner before it,
    /// the last group that held each (from the controller's history).
    /// `None` if the history could not be read now.
    async fn sources_of_unowned(&mut self, next: &ShardConfig) -> Option<BTreeMap<ShardId, ShardSource>> {
        let me = self.service.group;
        let prev_owner: Vec<GroupId> = self.service.state.read().config().shards.clone();
        let unowned: Vec<usize> = (0..next.shards.len())
            .filter(|&i| next.shards[i] == me && prev_owner.get(i) == Some(&GroupId(0)))
            .collect();
        let mut sources = BTreeMap::new();
        if unowned.is_empty() || next.num.0 <= 1 {
            return Some(sources);
        }
        let ctrl = self.ctrl.as_mut()?;
        let mut pending = unowned;
        let mut num = next.num.0 - 1;
        // Walk back through configurations until every such shard's last holder is known.
        while num > 0 && !pending.is_empty() {
            num -= 1;
            let older = tokio::time::timeout(self.call_timeout, ctrl.query(Some(ConfigNum(num)))).await.ok()?.ok()?;
            pending.retain(|&i| {
                let owner = older.shards.get(i).copied().unwrap_or(GroupId(0));
                if owner == GroupId(0) {
                    return true;
                }
                // The holder's current addresses if it is still (or again) a member.
                let servers = next.groups.get(&owner).or_else(|| older.groups.get(&owner)).cloned().unwrap_or_default();
                sources.insert(ShardId(i as u64), ShardSource { group: owner, servers, frozen_at: ConfigNum(num + 1) });
                false
            });
        }
        Some(sources)
    }

    /// Pull the shards of `ex` in runs of about `chunk_bytes`, each
    /// installed through the log by a command of its own, resuming where the
    /// installed data ends. Up to [`INSTALLS_IN_FLIGHT`] runs are being
    /// committed while the next one is fetched; they are proposed in order,
    /// and a run that does not land where the data ends changes nothing (nor
    /// do the ones after it), so a failure only costs a new pull later.
    async fn pull(&self, group: GroupId, num: ConfigNum, ex: Exchange) {
        let span =
            tracing::info_span!("shard_pull", group = %group, from = %ex.group, config = %num, shards = ?ex.shards);
        let Some(mut cursor) = self.service.state.read().pull_cursor(&ex.shards) else { return };
        let mut installing = FuturesOrdered::new();
        loop {
            let Some(runs) = self.fetch_installing(&ex, &cursor, &mut installing).instrument(span.clone()).await else {
                return;
            };
            let next = cursor.after_runs(&runs);
            let install = tracing::info_span!(parent: &span, "shard_install", group = %group, config = %num,
                shards = ?cursor.shards, entries = runs.iter().map(|r| r.entries.len()).sum::<usize>());
            let command = Command::Install { config: num, after: cursor.after.clone(), shards: runs };
            let mut install = Box::pin(async move { self.service.propose(&command).await }.instrument(install));
            // Proposed now, so that the runs reach the log in order.
            if let Poll::Ready(done) = futures::poll!(&mut install) {
                if !matches!(done, Ok(Applied::Ok)) {
                    return;
                }
            } else {
                installing.push_back(install);
            }
            let Some(next) = next else { break };
            cursor = next;
            while installing.len() >= INSTALLS_IN_FLIGHT {
                if !matches!(installing.next().await, Some(Ok(Applied::Ok))) {
                    return;
                }
            }
        }
        while let Some(done) = installing.next().await {
            if !matches!(done, Ok(Applied::Ok)) {
                return;
            }
        }
    }

    /// The run at `cursor`, fetched while `installing` commits; `None` if the
    /// fetch or an install failed.
    async fn fetch_installing<F>(
        &self,
        ex: &Exchange,
        cursor: &PullCursor,
        installing: &mut FuturesOrdered<F>,
    ) -> Option<Vec<ShardData>>
    where
        F: std::future::Future<Output = Result<Applied, ApiError>>,
    {
        let fetch = self.fetch(ex, cursor);
        tokio::pin!(fetch);
        loop {
            tokio::select! {
                biased;
                done = installing.next(), if !installing.is_empty() => {
                    if !matches!(done, Some(Ok(Applied::Ok))) {
                        return None;
                    }
                }
                runs = &mut fetch => return runs,
            }
        }
    }

    /// One run of the pull at `cursor` from the holder of `ex`.
    async fn fetch(&self, ex: &Exchange, cursor: &PullCursor) -> Option<Vec<ShardData>> {
        let request = ServiceRequest::PullShards(PullShardsRequest {
            config: ex.frozen_at,
            shards: cursor.shards.clone(),
            after: cursor.after.clone(),
            max_bytes: self.chunk_bytes.max(1) as u64,
        });
        match tokio::time::timeout(self.call_timeout, call_group(self.net.as_ref(), &ex.servers, &request)).await {
            Ok(Some(ServiceResponse::PullShards(Ok(runs)))) => Some(runs),
            _ => None,
        }
    }

    async fn collect(&self, group: GroupId, num: ConfigNum, ex: Exchange) {
        let span =
            tracing::info_span!("shard_gc", group = %group, holder = %ex.group, config = %num, shards = ?ex.shards);
        async {
            let request = ServiceRequest::DeleteShards(DeleteShardsRequest {
                config: ex.frozen_at,
                shards: ex.shards.clone(),
                group,
            });
            let answer =
                tokio::time::timeout(self.call_timeout, call_group(self.net.as_ref(), &ex.servers, &request)).await;
            if let Ok(Some(ServiceResponse::DeleteShards(Ok(())))) = answer {
                let _ = self.service.propose(&Command::Collected { config: num, shards: ex.shards }).await;
            }
        }
        .instrument(span)
        .await;
    }
}
