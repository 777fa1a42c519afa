//! Why a controller replica cannot go on: a command it cannot read, or a
//! shard count that is not the one its replicated configurations fix.

use crate::binary::BinaryError;

/// The controller command format this build writes (and the newest it reads).
pub(crate) const COMMAND_VERSION: u8 = 2;

/// Why a log command does not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The command is of a format this build does not know (a newer one):
    /// the replica stops rather than skip it.
    #[error(
        "controller command format version {version} is not supported (this build reads versions 1 and {newest})",
        newest = COMMAND_VERSION
    )]
    UnsupportedVersion {
        /// The version the command names.
        version: u8,
    },
    /// The bytes are not a command (answered as a refusal, as before).
    #[error("malformed command: {0}")]
    Malformed(#[from] BinaryError),
}

/// Why a controller replica stops applying its log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CtrlApplyError {
    /// A committed command is of an unknown format.
    #[error(transparent)]
    Command(CommandError),
    /// The replicated configurations have another shard count than this
    /// member was started with: it would answer queries and propose commands
    /// for a cluster that does not exist.
    #[error(
        "the controller's replicated configurations have {replicated} shards, but this member was started with \
         {configured} (`shards` / --shards): the shard count is fixed when a cluster is created; restart it with \
         shards = {replicated}"
    )]
    ShardCount {
        /// The count the replicated configurations have.
        replicated: usize,
        /// The count this member was started with.
        configured: usize,
    },
}
