//! [`Configs`]: the controller's history of shard configurations, and the
//! operations that append to it.

use std::collections::{BTreeMap, BTreeSet};

use super::rebalance::rebalance;
use crate::api::{CtrlOp, ShardConfig};
use crate::types::{ConfigNum, GroupId, ShardId};

/// Why a controller operation was refused (deterministically, when applied).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CtrlOpError {
    /// Join or Leave named no group.
    #[error("{0} names no group")]
    Empty(&'static str),
    /// Group 0 means "unassigned" and cannot join.
    #[error("group 0 is reserved (it means: unassigned)")]
    GroupZero,
    /// The group is already part of the configuration.
    #[error("group {0} has already joined")]
    AlreadyJoined(GroupId),
    /// A joining group must list its servers.
    #[error("group {0} lists no servers")]
    NoServers(GroupId),
    /// The group is not part of the configuration.
    #[error("group {0} is not part of the configuration")]
    UnknownGroup(GroupId),
    /// The shard does not exist.
    #[error("shard {shard} does not exist (there are {n} shards, 0..{n})")]
    NoSuchShard {
        /// The shard named.
        shard: ShardId,
        /// The number of shards.
        n: usize,
    },
}

/// Every configuration so far; the first (number 0) has no groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Configs {
    list: Vec<ShardConfig>,
}

impl Configs {
    /// The initial history for `n_shards` shards: config 0, all unassigned.
    #[must_use]
    pub fn new(n_shards: usize) -> Self {
        Self {
            list: vec![ShardConfig { num: ConfigNum(0), shards: vec![GroupId(0); n_shards], groups: BTreeMap::new() }],
        }
    }

    /// A history from stored configurations (numbered 0, 1, … in order).
    pub fn from_list(list: Vec<ShardConfig>) -> Result<Self, String> {
        let Some(first) = list.first() else { return Err("no configuration".into()) };
        let n = first.shards.len();
        for (i, c) in list.iter().enumerate() {
            if c.num.0 != i as u64 || c.shards.len() != n {
                return Err(format!("configuration {i} is numbered {} with {} shards", c.num, c.shards.len()));
            }
        }
        Ok(Self { list })
    }

    /// Shards in every configuration (all have as many as configuration 0).
    #[must_use]
    pub fn shard_count(&self) -> usize {
        self.list.first().map_or(0, |c| c.shards.len())
    }

    /// All configurations, oldest first.
    #[must_use]
    pub fn list(&self) -> &[ShardConfig] {
        &self.list
    }

    /// The latest configuration.
    #[must_use]
    pub fn latest(&self) -> &ShardConfig {
        // `list` always holds config 0.
        &self.list[self.list.len() - 1]
    }

    /// Configuration `num`, or the latest for `None` or a number past it.
    #[must_use]
    pub fn query(&self, num: Option<ConfigNum>) -> &ShardConfig {
        match num {
            Some(n) => usize::try_from(n.0).ok().and_then(|i| self.list.get(i)).unwrap_or_else(|| self.latest()),
            None => self.latest(),
        }
    }

    /// Apply a Join, Leave or Move: check it, then add the configuration it
    /// makes. A Query changes nothing.
    pub fn apply(&mut self, op: &CtrlOp) -> Result<(), CtrlOpError> {
        let latest = self.latest();
        let mut next = ShardConfig { num: ConfigNum(latest.num.0 + 1), ..latest.clone() };
        match op {
            CtrlOp::Query { .. } => return Ok(()),
            CtrlOp::Join { groups } => {
                if groups.is_empty() {
                    return Err(CtrlOpError::Empty("Join"));
                }
                for (&g, servers) in groups {
                    if g == GroupId(0) {
                        return Err(CtrlOpError::GroupZero);
                    }
                    if next.groups.contains_key(&g) {
                        return Err(CtrlOpError::AlreadyJoined(g));
                    }
                    if servers.is_empty() {
                        return Err(CtrlOpError::NoServers(g));
                    }
                }
                next.groups.extend(groups.iter().map(|(g, s)| (*g, s.clone())));
                rebalance(&mut next.shards, &next.groups.keys().copied().collect());
            }
            CtrlOp::Leave { groups } => {
                if groups.is_empty() {
                    return Err(CtrlOpError::Empty("Leave"));
                }
                for g in groups {
                    if !next.groups.contains_key(g) {
                        return Err(CtrlOpError::UnknownGroup(*g));
                    }
                }
                for g in groups {
                    next.groups.remove(g);
                }
                rebalance(&mut next.shards, &next.groups.keys().copied().collect::<BTreeSet<_>>());
            }
            CtrlOp::Move { shard, group } => {
                let n = next.shards.len();
                let i = usize::try_from(shard.0)
                    .ok()
                    .filter(|&i| i < n)
                    .ok_or(CtrlOpError::NoSuchShard { shard: *shard, n })?;
                if !next.groups.contains_key(group) {
                    return Err(CtrlOpError::UnknownGroup(*group));
                }
                next.shards[i] = *group;
            }
        }
        self.list.push(next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(g: u64, servers: &[&str]) -> CtrlOp {
        CtrlOp::Join { groups: BTreeMap::from([(GroupId(g), servers.iter().map(|s| (*s).to_string()).collect())]) }
    }

    #[test]
    fn operations_append_numbered_configurations_and_bad_ones_are_refused() {
        let mut c = Configs::new(10);
        assert_eq!(c.latest().num, ConfigNum(0));
        c.apply(&join(1, &["a:1", "b:1"])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.latest().num, ConfigNum(1));
        assert_eq!(c.latest().shards, vec![GroupId(1); 10]);
        assert_eq!(c.apply(&join(1, &["x"])), Err(CtrlOpError::AlreadyJoined(GroupId(1))));
        assert_eq!(c.apply(&join(0, &["x"])), Err(CtrlOpError::GroupZero));
        assert_eq!(c.apply(&join(2, &[])), Err(CtrlOpError::NoServers(GroupId(2))));
        assert_eq!(c.apply(&CtrlOp::Leave { groups: vec![GroupId(5)] }), Err(CtrlOpError::UnknownGroup(GroupId(5))));
        assert_eq!(
            c.apply(&CtrlOp::Move { shard: ShardId(10), group: GroupId(1) }),
            Err(CtrlOpError::NoSuchShard { shard: ShardId(10), n: 10 })
        );
        assert_eq!(c.latest().num, ConfigNum(1), "refused operations add no configuration");
        c.apply(&join(2, &["c:1"])).unwrap_or_else(|e| panic!("{e}"));
        c.apply(&CtrlOp::Move { shard: ShardId(9), group: GroupId(2) }).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.latest().shards[9], GroupId(2));
        assert_eq!(c.query(Some(ConfigNum(1))).shards, vec![GroupId(1); 10]);
        assert_eq!(c.query(Some(ConfigNum(99))).num, ConfigNum(3));
        assert_eq!(Configs::from_list(c.list().to_vec()), Ok(c.clone()));
        assert!(Configs::from_list(vec![]).is_err());
    }
}
