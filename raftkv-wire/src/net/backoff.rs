//! Reconnecting to a peer: exponential [`Backoff`] with jitter, and the
//! per-peer [`Reconnect`] state a network transport keeps.

use std::time::{Duration, Instant};

use raftkv_core::rng::DetRng;

/// Exponential backoff with jitter between attempts to reach a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Pause after the first failure.
    pub initial: Duration,
    /// Longest pause.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { initial: Duration::from_millis(50), max: Duration::from_secs(2) }
    }
}

impl Backoff {
    /// Pause after `failures` consecutive failures (1 or more): `initial`
    /// doubled per earlier failure, capped at `max`, then drawn uniformly from
    /// its upper half so that peers that failed together do not retry together.
    pub fn delay(&self, failures: u32, rng: &mut DetRng) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        let ceiling = self.initial.saturating_mul(1u32 << doublings).min(self.max);
        let ceiling_us = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rng.range_inclusive(ceiling_us / 2, ceiling_us))
    }
}

/// Connection state of one peer: whether a (re)connection may be tried now.
#[derive(Debug)]
pub struct Reconnect {
    backoff: Backoff,
    rng: DetRng,
    failures: u32,
    retry_at: Option<Instant>,
}

impl Reconnect {
    /// A peer not yet tried, with jitter drawn from `seed`.
    #[must_use]
    pub fn new(backoff: Backoff, seed: u64) -> Self {
        Self { backoff, rng: DetRng::new(seed), failures: 0, retry_at: None }
    }

    /// `Ok` if a connection may be tried at `now`; otherwise how long until it may.
    pub fn may_try(&self, now: Instant) -> Result<(), Duration> {
        match self.retry_at {
            Some(at) if at > now => Err(at - now),
            _ => Ok(()),
        }
    }

    /// A connection attempt (or an established connection) failed at `now`:
    /// back off before the next attempt. Returns the pause.
    pub fn failed(&mut self, now: Instant) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let pause = self.backoff.delay(self.failures, &mut self.rng);
        self.retry_at = Some(now + pause);
        pause
    }

    /// A connection succeeded: the next failure starts from the initial pause.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.retry_at = None;
    }

    /// Consecutive failures so far.
    #[must_use]
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_stay_in_the_upper_half() {
        let b = Backoff { initial: Duration::from_millis(100), max: Duration::from_secs(1) };
        let mut rng = DetRng::new(3);
        for (failures, ceiling_ms) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (40, 1000)] {
            for _ in 0..50 {
                let d = b.delay(failures, &mut rng);
                let ceiling = Duration::from_millis(ceiling_ms);
                assert!(
                    d <= ceiling && d >= ceiling / 2,
                    "failure {failures}: {d:?} outside [{:?}, {ceiling:?}]",
                    ceiling / 2
                );
            }
        }
    }

    #[test]
    fn reconnect_waits_after_a_failure_and_resets_on_success() {
        let mut r = Reconnect::new(Backoff::default(), 1);
        let t0 = Instant::now();
        assert!(r.may_try(t0).is_ok());
        let pause = r.failed(t0);
        assert!(pause >= Duration::from_millis(25));
        assert!(r.may_try(t0).is_err());
        assert!(r.may_try(t0 + pause).is_ok());
        r.failed(t0 + pause);
        assert_eq!(r.failures(), 2);
        r.succeeded();
        assert_eq!(r.failures(), 0);
        assert!(r.may_try(t0).is_ok());
    }
}
