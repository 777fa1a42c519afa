//! [`PullCursor`]: how far a new owner's pull of shards has got, kept in
//! the replicated state so that a pull resumes where it stopped.

use bytes::Bytes;

use crate::api::ShardData;
use crate::types::ShardId;

/// Where a pull stands: the shards still to fetch, in order, and the key
/// after which the first one resumes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PullCursor {
    pub(crate) shards: Vec<ShardId>,
    pub(crate) after: Option<Bytes>,
}

impl PullCursor {
    /// Where the pull stands once `runs`, fetched from this cursor, are
    /// installed; `None` when that completes it, or when the runs are not
    /// the shards asked for in order or a cut-short run is empty (no
    /// progress: the next round starts again from the installed state).
    pub(crate) fn after_runs(&self, runs: &[ShardData]) -> Option<Self> {
        if runs.is_empty() || runs.len() > self.shards.len() {
            return None;
        }
        if runs.iter().zip(&self.shards).any(|(run, &shard)| run.shard != shard) {
            return None;
        }
        let last_index = runs.len() - 1;
        let last = &runs[last_index];
        if last.more {
            let after = last.entries.last().map(|(k, _)| k.clone())?;
            return Some(Self { shards: self.shards[last_index..].to_vec(), after: Some(after) });
        }
        let rest = self.shards[runs.len()..].to_vec();
        (!rest.is_empty()).then_some(Self { shards: rest, after: None })
    }
}
