//! Counters and latency histograms a Raft member keeps about itself, cheap
//! enough to update on every proposal and every durable write (relaxed
//! atomics, no locks). A server exports them, e.g. as Prometheus text;
//! gauges such as the term or the commit index come from
//! [`RaftHandle::status`](crate::raft::driver::RaftHandle::status) instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds (the last bucket, +Inf,
/// is implicit): 50 µs to 10 s, about three per decade.
pub const LATENCY_BOUNDS: [f64; 17] =
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A latency histogram with the fixed buckets of [`LATENCY_BOUNDS`].
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last one is +Inf.
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

/// What a [`Histogram`] held at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, observations ≤ bound)`, cumulative, in
    /// bound order; the +Inf bucket is `count`.
    pub buckets: Vec<(f64, u64)>,
    /// Sum of all observations, in seconds.
    pub sum_seconds: f64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    /// Record one observation.
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let bucket = LATENCY_BOUNDS.iter().position(|&b| secs <= b).unwrap_or(LATENCY_BOUNDS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The histogram's current contents.
    #[must_use]
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let buckets = LATENCY_BOUNDS
            .iter()
            .zip(&self.buckets)
            .map(|(&bound, n)| {
                cumulative += n.load(Ordering::Relaxed);
                (bound, cumulative)
            })
            .collect();
        let inf = self.buckets[LATENCY_BOUNDS.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
            buckets,
            // Read after the buckets: `count` is never below their sum.
            count: (cumulative + inf).max(self.count.load(Ordering::Relaxed)),
            sum_seconds: Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)).as_secs_f64(),
        }
    }
}

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Add `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Add one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// The current count.
    #[must_use]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What one Raft member counts about itself.
#[derive(Debug, Default)]
pub struct RaftMetrics {
    /// Times this member saw a new leader (another member's or its own) take office.
    pub leader_changes: Counter,
    /// Elections this member started (pre-votes not counted).
    pub elections: Counter,
    /// Proposals handed to this member.
    pub proposals: Counter,
    /// Proposals that failed (not leader, leadership lost before commit, stopped).
    pub proposal_failures: Counter,
    /// From a proposal's submission to its state-machine response.
    pub proposal_latency: Histogram,
    /// One durable log write (append + fsync) of the event loop.
    pub log_write_latency: Histogram,
    /// Entries made durable in the log.
    pub entries_persisted: Counter,
    /// Linearizable read barriers (ReadIndex) asked of this member.
    pub reads: Counter,
    /// Snapshots this member took of its state machine.
    pub snapshots_taken: Counter,
    /// Snapshots this member installed from its leader.
    pub snapshots_installed: Counter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them_and_add_up() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(10));
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets[0], (0.00005, 2), "≤ 50 µs holds 10 µs and exactly 50 µs");
        let at = |bound: f64| s.buckets.iter().find(|(b, _)| *b == bound).map(|&(_, n)| n);
        assert_eq!(at(0.0025), Some(2));
        assert_eq!(at(0.005), Some(3));
        assert_eq!(at(10.0), Some(3), "60 s is only in +Inf");
        assert!((s.sum_seconds - 60.00306).abs() < 1e-9, "{}", s.sum_seconds);
    }

    #[test]
    fn an_empty_histogram_is_all_zeros() {
        let s = Histogram::default().snapshot();
        assert_eq!(s.count, 0);
        assert!(s.buckets.iter().all(|&(_, n)| n == 0));
        assert_eq!(s.buckets.len(), LATENCY_BOUNDS.len());
    }
}
