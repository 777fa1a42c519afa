//! Log writes beside the event loop.
//!
//! A task owns the log store's mutations, so that the event loop goes on
//! answering heartbeats, confirming reads and sending appends while a write
//! and its sync are in progress. It does the writes in the order they were
//! submitted. Writes submitted while one is in progress are merged into one
//! (one sync for all of them), unless a purge comes between them. Each write
//! done is reported as [`LoopRequest::Persisted`] with the sequence number of the
//! last submission it covered.
//!
//! A write that fails with [`StorageError::Io`] (a full disk, say) changed
//! nothing (the `LogStore` contract), so the writer reports
//! [`LoopRequest::WriteFailing`] and tries it again, with the submissions that
//! arrived meanwhile, after a growing pause: the member resumes by itself once
//! the cause is gone. Any other error (damage, a broken invariant, a closed
//! store) is final: it is reported and the writer stops.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::LoopRequest;
use crate::metrics::RaftMetrics;
use crate::storage::{LogStore, LogWrite, StorageError};
use crate::types::LogIndex;

/// One submission: drop the entries through `purge_through`, then `write`.
pub(crate) struct WriteJob {
    pub(crate) seq: u64,
    pub(crate) purge_through: Option<LogIndex>,
    pub(crate) write: LogWrite,
}

/// Fold `next` into `into`, as if `into` were written first and then `next`.
pub(crate) fn merge(into: &mut LogWrite, next: LogWrite) {
    if let Some(t) = next.truncate_after {
        into.entries.retain(|e| e.index <= t);
        into.truncate_after = Some(into.truncate_after.map_or(t, |earlier| earlier.min(t)));
    }
    into.entries.extend(next.entries);
    if next.hard_state.is_some() {
        into.hard_state = next.hard_state;
    }
}

/// Pause before the first retry of a failed write; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(50);
/// Longest pause between retries.
const RETRY_MAX: Duration = Duration::from_secs(1);

/// Whether a failed write may succeed when tried again (it changed nothing).
fn retryable(error: &StorageError) -> bool {
    matches!(error, StorageError::Io { .. })
}

/// Do the jobs from `jobs` until it closes or a write fails for good; report
/// each to `events`.
pub(crate) async fn run<R>(
    store: Arc<dyn LogStore>,
    mut jobs: mpsc::UnboundedReceiver<WriteJob>,
    events: mpsc::UnboundedSender<LoopRequest<R>>,
    metrics: Arc<RaftMetrics>,
) {
    let mut held: Option<WriteJob> = None;
    loop {
        let mut job = match held.take() {
            Some(job) => job,
            None => match jobs.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        absorb_queued(&mut job, &mut jobs, &mut held);
        let mut pause = RETRY_FIRST;
        let result = loop {
            match perform(&*store, job.purge_through, job.write.clone(), &metrics).await {
                Err(error) if retryable(&error) => {
                    if events.send(LoopRequest::WriteFailing { error }).is_err() {
                        return;
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_MAX);
                    // What arrived meanwhile goes with the retry, up to a purge.
                    if held.is_none() {
                        absorb_queued(&mut job, &mut jobs, &mut held);
                    }
                }
                result => break result,
            }
        };
        let failed = result.is_err();
        if events.send(LoopRequest::Persisted { seq: job.seq, result }).is_err() || failed {
            return;
        }
    }
}

/// Merge the queued submissions into `job`, up to one that purges, which is
/// kept in `held` for the next write.
fn absorb_queued(job: &mut WriteJob, jobs: &mut mpsc::UnboundedReceiver<WriteJob>, held: &mut Option<WriteJob>) {
    while let Ok(next) = jobs.try_recv() {
        if next.purge_through.is_some() {
            *held = Some(next);
            return;
        }
        merge(&mut job.write, next.write);
        job.seq = next.seq;
    }
}

async fn perform(
    store: &dyn LogStore,
    purge_through: Option<LogIndex>,
    write: LogWrite,
    metrics: &RaftMetrics,
) -> Result<(), StorageError> {
    if let Some(index) = purge_through {
        store.purge_through(index).await?;
    }
    if !write.is_empty() {
        let count = write.entries.len() as u64;
        let started = tokio::time::Instant::now();
        store.write(write).await?;
        metrics.log_write_latency.observe(started.elapsed());
        metrics.entries_persisted.add(count);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::raft::{Entry, EntryPayload, HardState};
    use crate::types::{NodeId, Term};

    fn entries(term: u64, from: u64, to: u64) -> Vec<Entry> {
        (from..=to)
            .map(|i| Entry {
                term: Term(term),
                index: LogIndex(i),
                payload: EntryPayload::Command(Bytes::from(format!("{term}/{i}"))),
            })
            .collect()
    }

    fn ids(w: &LogWrite) -> Vec<(u64, u64)> {
        w.entries.iter().map(|e| (e.index.0, e.term.0)).collect()
    }

    #[test]
    fn appends_concatenate_and_the_later_hard_state_wins() {
        let hs = |term| HardState { term: Term(term), vote: Some(NodeId(1)), commit: LogIndex(2) };
        let mut w = LogWrite { truncate_after: None, entries: entries(1, 1, 3), hard_state: Some(hs(1)) };
        merge(&mut w, LogWrite { truncate_after: None, entries: entries(2, 4, 5), hard_state: Some(hs(2)) });
        merge(&mut w, LogWrite { truncate_after: None, entries: vec![], hard_state: None });
        assert_eq!(ids(&w), vec![(1, 1), (2, 1), (3, 1), (4, 2), (5, 2)]);
        assert_eq!(w.truncate_after, None);
        assert_eq!(w.hard_state, Some(hs(2)));
    }

    #[test]
    fn a_later_truncation_drops_the_earlier_entries_after_it() {
        let mut w = LogWrite { truncate_after: None, entries: entries(1, 4, 9), hard_state: None };
        merge(&mut w, LogWrite { truncate_after: Some(LogIndex(6)), entries: entries(3, 7, 8), hard_state: None });
        assert_eq!(ids(&w), vec![(4, 1), (5, 1), (6, 1), (7, 3), (8, 3)]);
        assert_eq!(w.truncate_after, Some(LogIndex(6)), "the store's own entries after 6 go too");
    }

    #[test]
    fn the_lower_of_two_truncations_is_kept() {
        let mut w = LogWrite { truncate_after: Some(LogIndex(3)), entries: entries(2, 4, 6), hard_state: None };
        merge(&mut w, LogWrite { truncate_after: Some(LogIndex(5)), entries: entries(3, 6, 6), hard_state: None });
        assert_eq!(ids(&w), vec![(4, 2), (5, 2), (6, 3)]);
        assert_eq!(w.truncate_after, Some(LogIndex(3)));

        let mut w = LogWrite { truncate_after: Some(LogIndex(5)), entries: entries(2, 6, 7), hard_state: None };
        merge(&mut w, LogWrite { truncate_after: Some(LogIndex(2)), entries: entries(3, 3, 3), hard_state: None });
        assert_eq!(ids(&w), vec![(3, 3)]);
        assert_eq!(w.truncate_after, Some(LogIndex(2)));
    }
}
