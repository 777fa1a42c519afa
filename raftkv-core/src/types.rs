//! Domain newtypes shared by every room of RaftKV.
//!
//! Each identifier is its own type so that a shard number cannot be passed
//! where a group id is expected.

use std::fmt;

macro_rules! newtype_u64 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl From<u64> for $name {
            fn from(v: u64) -> Self {
                Self(v)
            }
        }
    };
}

newtype_u64!(
    /// A Raft term: a logical clock that increases with every election.
    Term
);
newtype_u64!(
    /// Position of an entry in the replicated log; the first entry has index 1.
    LogIndex
);
newtype_u64!(
    /// Identifies one Raft member inside its group.
    NodeId
);
newtype_u64!(
    /// Identifies a replica group (a Raft group serving a set of shards).
    GroupId
);
newtype_u64!(
    /// A shard number in `0..n_shards`.
    ShardId
);
newtype_u64!(
    /// The number of a shard configuration published by the controller.
    ConfigNum
);
newtype_u64!(
    /// Identifies one client (clerk) for at-most-once deduplication.
    ClientId
);

impl LogIndex {
    /// The index right after this one.
    #[must_use]
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }

    /// The index right before this one (saturating at zero).
    #[must_use]
    pub fn prev(self) -> Self {
        Self(self.0.saturating_sub(1))
    }
}

impl Term {
    /// The term right after this one.
    #[must_use]
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

/// One member of one Raft group: what a multi-raft store keys a log by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberId {
    /// The group.
    pub group: GroupId,
    /// The member inside the group.
    pub node: NodeId,
}

impl MemberId {
    /// Member `node` of group `group`.
    #[must_use]
    pub fn new(group: GroupId, node: NodeId) -> Self {
        Self { group, node }
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "group {}, node {}", self.group, self.node)
    }
}
