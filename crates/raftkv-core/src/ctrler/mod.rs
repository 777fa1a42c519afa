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

mod configs;
mod encoding;
mod rebalance;
mod service;
mod state_machine;

pub use configs::{Configs, CtrlOpError};
pub use encoding::{get_config, put_config};
pub use rebalance::rebalance;
pub use service::CtrlService;
pub use state_machine::{CtrlReply, CtrlState, CtrlStateMachine, SharedCtrlState};

/// Shards in a cluster unless configured otherwise.
pub const DEFAULT_SHARDS: usize = 10;
