//! ShardKV: a replica group serving the shards a configuration gives it.
//!
//! Every member replicates a [`ShardKvState`]: the group's configuration
//! and, per held shard, its data, its duplicate table (which moves with the
//! shard) and its phase — serving, pulling (gained, waiting for data),
//! collecting (installed and serving; the old holder has not yet deleted its
//! copy), or frozen (lost; kept until the new holder has it).
//!
//! - Reads go through a ReadIndex barrier, writes through the log, each
//!   applied at most once per (client, sequence) thanks to the shard's
//!   duplicate table; a key whose shard the group does not serve gets
//!   [`ApiError::WrongGroup`](crate::api::ApiError::WrongGroup).
//! - The leader's migration task moves to configuration `num + 1` only when
//!   every shard is settled, pulls gained shards from their previous holders
//!   and installs them through the log, then asks the holders to delete
//!   them (through their logs). Shards not involved keep serving throughout,
//!   and a gained shard serves as soon as it is installed.
//! - A shard that goes to no group stays frozen with its last holder, which
//!   may move on; the group that later gains it finds that holder in the
//!   controller's history and pulls it from there.

mod command;
mod cursor;
mod handover;
mod migration;
mod server;
mod service;
mod shard_count;
mod state;
mod state_machine;

pub use command::{Command, ShardSource};
pub use migration::ConfigSource;
pub use server::{ShardKvOptions, ShardKvServer};
pub use service::{KvLimits, ShardKvService};
pub use shard_count::{ShardCountCheck, ShardCountMismatch};
pub use state::{Applied, Exchange, ShardKvImage, ShardKvState, MAX_STORED_VALUE_BYTES};
pub use state_machine::{ShardKvStateMachine, SharedShardKv};
