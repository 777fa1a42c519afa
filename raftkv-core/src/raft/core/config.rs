//! Static configuration of one Raft member.

use crate::types::{GroupId, NodeId};

/// Settings of one Raft member. Times are in ticks; the driver decides how
/// long a tick is ([`DriverConfig`](crate::raft::driver::DriverConfig)).
#[derive(Clone, Debug)]
pub struct RaftConfig {
    /// The group this member belongs to (for traces).
    pub group: GroupId,
    /// This member.
    pub id: NodeId,
    /// Every voter of the group, this member included.
    pub voters: Vec<NodeId>,
    /// Ticks between heartbeats from the leader.
    pub heartbeat_ticks: u32,
    /// Minimum election timeout; each timeout is drawn from `[election_ticks, 2 * election_ticks)`.
    pub election_ticks: u32,
    /// Run a pre-vote round before incrementing the term.
    pub pre_vote: bool,
    /// A leader that has not heard from a majority within an election timeout steps down,
    /// and followers ignore votes while they hear from a leader.
    pub check_quorum: bool,
    /// Append requests in flight per follower while replicating.
    pub max_inflight: usize,
    /// Most entries in one append request.
    pub max_entries_per_append: usize,
    /// Most payload bytes in one append request (at least one entry is always sent).
    pub max_bytes_per_append: usize,
    /// Seed of the election-timeout randomisation.
    pub seed: u64,
}

impl RaftConfig {
    /// Defaults for a member `id` of `voters`.
    #[must_use]
    pub fn new(group: GroupId, id: NodeId, voters: Vec<NodeId>) -> Self {
        Self {
            group,
            id,
            voters,
            heartbeat_ticks: 10,
            election_ticks: 50,
            pre_vote: true,
            check_quorum: true,
            max_inflight: 64,
            max_entries_per_append: 4096,
            max_bytes_per_append: 4 << 20,
            seed: id.0,
        }
    }

    /// Checks the settings, naming the first bad one.
    pub fn validate(&self) -> Result<(), super::ConfigError> {
        use super::ConfigError;
        if self.voters.contains(&NodeId(0)) {
            return Err(ConfigError::Invalid {
                key: "voters",
                expected: "node ids of 1 or more (0 means \"no vote\" on disk)",
            });
        }
        if !self.voters.contains(&self.id) {
            return Err(ConfigError::NotAVoter(self.id));
        }
        let mut sorted = self.voters.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != self.voters.len() {
            return Err(ConfigError::DuplicateVoter);
        }
        if self.heartbeat_ticks == 0 {
            return Err(ConfigError::Invalid { key: "heartbeat_ticks", expected: "at least 1" });
        }
        if self.election_ticks <= self.heartbeat_ticks {
            return Err(ConfigError::Invalid { key: "election_ticks", expected: "greater than heartbeat_ticks" });
        }
        if self.max_inflight == 0 {
            return Err(ConfigError::Invalid { key: "max_inflight", expected: "at least 1" });
        }
        if self.max_entries_per_append == 0 {
            return Err(ConfigError::Invalid { key: "max_entries_per_append", expected: "at least 1" });
        }
        Ok(())
    }
}
