//! The [`StateMachine`] trait: what a Raft group replicates.

use async_trait::async_trait;
use bytes::Bytes;

use crate::storage::{SnapshotReader, SnapshotWriter, StorageError};
use crate::types::{LogIndex, Term};

/// A committed command handed to [`StateMachine::apply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// Log index of the command.
    pub index: LogIndex,
    /// Term of the command.
    pub term: Term,
    /// The command as proposed.
    pub command: Bytes,
}

/// Errors a state machine may report. Any error stops the Raft member: a
/// replica that cannot apply the log deterministically must not go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateMachineError {
    /// Writing or reading a snapshot failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A snapshot could not be decoded.
    #[error("snapshot is malformed: {0}")]
    MalformedSnapshot(String),
    /// The state machine's own failure.
    #[error("state machine failed: {0}")]
    Failed(String),
}

/// A deterministic state machine replicated by Raft.
///
/// # Contract
/// - **Determinism**: applying the same commands in the same order from the
///   same snapshot gives the same state and the same responses on every
///   member. No clocks, randomness or hash-map iteration order may leak into
///   state or responses.
/// - **Order**: `apply` is called with commands in log order, each exactly
///   once per incarnation; a batch holds consecutive committed commands
///   (blank entries are skipped, so indices may have gaps).
/// - **Snapshots**: `snapshot` captures the state covering every command
///   applied so far as a [`SnapshotImage`], which the engine writes to the
///   snapshot store while applying goes on; `restore` replaces the whole
///   state with a snapshot's. After a restart, the member restores the latest
///   snapshot and re-applies the log after it, so `apply` must not rely on
///   state outside the snapshot.
#[async_trait]
pub trait StateMachine: Send + 'static {
    /// What a command returns to its proposer.
    type Response: Send + 'static;

    /// Apply a batch of committed commands, returning one response per command, in order.
    async fn apply(&mut self, batch: Vec<Committed>) -> Result<Vec<Self::Response>, StateMachineError>;

    /// Capture the current state. This runs on the apply path, so it should
    /// be cheap: an encoding of a small state, or copy-on-write handles to a
    /// large one. The image is written afterwards, beside later applies.
    async fn snapshot(&mut self) -> Result<Box<dyn SnapshotImage>, StateMachineError>;

    /// Replace the state with the snapshot read from `input`.
    async fn restore(&mut self, input: &mut dyn SnapshotReader) -> Result<(), StateMachineError>;
}

/// A point-in-time copy of a state machine's state, captured by
/// [`StateMachine::snapshot`] and written to the snapshot store off the apply
/// path (the engine finishes or aborts the writer).
#[async_trait]
pub trait SnapshotImage: Send + 'static {
    /// Write the image into `out`.
    async fn write_to(self: Box<Self>, out: &mut dyn SnapshotWriter) -> Result<(), StateMachineError>;
}

/// A state encoded as one value is its own image.
#[async_trait]
impl SnapshotImage for Bytes {
    async fn write_to(self: Box<Self>, out: &mut dyn SnapshotWriter) -> Result<(), StateMachineError> {
        out.write(*self).await?;
        Ok(())
    }
}

/// Read a whole snapshot into memory (for state machines whose snapshot is
/// one encoded value).
pub async fn read_snapshot(input: &mut dyn SnapshotReader) -> Result<Bytes, StorageError> {
    let mut data = bytes::BytesMut::new();
    while let Some(chunk) = input.next_chunk(1 << 20).await? {
        data.extend_from_slice(&chunk);
    }
    Ok(data.freeze())
}
