//! The shard controller: a Raft group whose state machine holds the list of
//! shard configurations `{num, shards, groups}`.
//!
//! - [`Configs`] applies Join, Leave and Move, each adding a configuration;
//!   [`rebalance`] keeps every group within one shard of the others while
//!   moving the fewest shards, deterministically.
//! - [`CtrlStateMachine`] replicates it with a duplicate table, so a client's
//!   retry is applied once; [`CtrlService`] serves requests (writes through
//!   the log, queries after a ReadIndex barrier).
//! - The client is [`CtrlClerk`](crate::client::CtrlClerk).
//!
//! The shard count is fixed when a cluster is created: every command carries
//! its proposer's count, the first one applied fixes it in the replicated
//! history, later commands for another count are refused, and a member
//! started with another count stops ([`CtrlApplyError::ShardCount`]) rather
//! than answer for a cluster that does not exist.

mod configs;
mod encoding;
mod error;
mod rebalance;
mod service;
mod state_machine;

pub use configs::{Configs, CtrlOpError};
pub use encoding::{get_config, put_config};
pub use error::{CommandError, CtrlApplyError};
pub use rebalance::rebalance;
pub use service::CtrlService;
pub use state_machine::{CtrlReply, CtrlState, CtrlStateMachine, SharedCtrlState};

/// Shards in a cluster unless configured otherwise.
pub const DEFAULT_SHARDS: usize = 10;

/// The most shards a cluster may have.
pub const MAX_SHARDS: usize = 1 << 16;
