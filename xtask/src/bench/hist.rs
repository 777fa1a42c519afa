//! A log-linear latency histogram (HDR-like): 64 linear sub-buckets per power
//! of two, so a recorded value is reported within 1.6 % of its true value.

/// Values below this are recorded exactly.
const LINEAR: u64 = 128;
/// Sub-buckets per power of two above `LINEAR`.
const SUB: u64 = 64;
/// Enough buckets for every `u64`.
const BUCKETS: usize = (LINEAR + (64 - 7) * SUB) as usize;

/// What one closed-loop caller measured: the latencies of its successful
/// calls and the number of failed ones, counted only while measuring.
#[derive(Default)]
pub struct Tally {
    pub hist: Histogram,
    pub errors: u64,
}

impl Tally {
    /// Count a call that started at `started` and succeeded if `ok` — if `measuring`.
    pub fn count(&mut self, measuring: bool, ok: bool, started: std::time::Instant) {
        if !measuring {
            return;
        }
        if ok {
            self.hist.record(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
        } else {
            self.errors += 1;
        }
    }
}

/// Counts of values (nanoseconds here) in log-linear buckets.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self { counts: vec![0; BUCKETS], total: 0, max: 0 }
    }
}

fn index_of(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let e = 63 - u64::from(v.leading_zeros()); // >= 7
    let mantissa = v >> (e - 6); // in [64, 128)
    (LINEAR + (e - 7) * SUB + (mantissa - SUB)) as usize
}

/// Midpoint of the values bucket `i` holds.
fn value_of(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let k = i - LINEAR;
    let e = k / SUB + 7;
    let mantissa = k % SUB + SUB;
    let width = 1u64 << (e - 6);
    (mantissa << (e - 6)) + width / 2
}

impl Histogram {
    /// Record one value.
    pub fn record(&mut self, v: u64) {
        self.counts[index_of(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    /// Add every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// Values recorded.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Largest value recorded.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` in `[0, 1]` (0 if empty).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return value_of(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_precise() {
        let mut last = 0;
        for v in (0..2_000_000u64).step_by(7).chain([u64::MAX / 3, u64::MAX]) {
            let i = index_of(v);
            assert!(i >= last && i < BUCKETS, "v={v} i={i}");
            last = i;
            let back = value_of(i);
            let err = back.abs_diff(v) as f64 / v.max(1) as f64;
            assert!(err <= 0.016, "v={v} back={back} err={err}");
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::default();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.02, "{p50}");
        assert!((p99 - 990_000.0).abs() / 990_000.0 < 0.02, "{p99}");
        assert_eq!(h.len(), 1000);
        assert_eq!(h.max(), 1_000_000);
    }
}
