//! Deterministic simulation: virtual time, a seeded faulty network, crashes
//! that keep only durable state.
//!
//! A simulation runs on a single-threaded tokio runtime whose clock is paused:
//! time advances only when every task waits, straight to the next timer, so a
//! 120-second scenario takes milliseconds and, given the same seed, the same
//! events happen in the same order. Every source of randomness (network
//! faults, election timeouts, test schedules) derives from the seed.

mod invariants;
pub mod lab3;
mod member_storage;
mod nemesis;
mod network;
mod raft_cluster;
mod recording_sm;

use std::future::Future;
use std::time::Duration;

pub use invariants::InvariantChecker;
pub use member_storage::{MemStorage, MemberStorage};
pub use nemesis::{raft_nemesis, NemesisReport};
pub use network::{SimNetwork, SimTransport};
pub use raft_cluster::{RaftCluster, RaftClusterConfig};
pub use recording_sm::{cmd, cmd_value, AppliedView, RecordingStateMachine};

/// Longest a simulated test may run, in virtual time (the labs' 120 s limit).
pub const MAX_VIRTUAL_TIME: Duration = Duration::from_secs(120);

/// The seed for test `name`: `RAFTKV_SEED` if set, else a stable hash of the name.
#[must_use]
pub fn seed_for(name: &str) -> u64 {
    if let Some(seed) = std::env::var("RAFTKV_SEED").ok().and_then(|s| s.trim().parse().ok()) {
        return seed;
    }
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

struct SeedReporter {
    name: String,
    seed: u64,
}

impl Drop for SeedReporter {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("[sim] {} FAILED with seed {} — replay with RAFTKV_SEED={}", self.name, self.seed, self.seed);
        }
    }
}

/// Run `scenario` deterministically with the seed of test `name`, failing if
/// it takes more than [`MAX_VIRTUAL_TIME`]. A failure prints the seed.
///
/// # Panics
/// If the scenario panics or exceeds the virtual time limit.
pub fn simulate<F, Fut>(name: &str, scenario: F)
where
    F: FnOnce(u64) -> Fut,
    Fut: Future<Output = ()>,
{
    let seed = seed_for(name);
    simulate_seed(name, seed, MAX_VIRTUAL_TIME, scenario);
}

/// Like [`simulate`] with an explicit seed and time limit.
///
/// # Panics
/// If the runtime cannot be built, the scenario panics, or it exceeds `limit`.
pub fn simulate_seed<F, Fut, T>(name: &str, seed: u64, limit: Duration, scenario: F) -> T
where
    F: FnOnce(u64) -> Fut,
    Fut: Future<Output = T>,
{
    let _reporter = SeedReporter { name: name.to_string(), seed };
    eprintln!("[sim] {name}: seed {seed}");
    #[allow(clippy::expect_used)]
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("build a current-thread tokio runtime");
    rt.block_on(async move {
        match tokio::time::timeout(limit, scenario(seed)).await {
            Ok(v) => v,
            Err(_) => panic!("{name}: exceeded {limit:?} of virtual time (seed {seed})"),
        }
    })
}
