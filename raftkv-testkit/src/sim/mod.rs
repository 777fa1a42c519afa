//! Deterministic simulation: virtual time, a seeded faulty network, crashes
//! that keep only durable state.
//!
//! A simulation runs on a single-threaded tokio runtime whose clock is paused:
//! time advances only when every task waits, straight to the next timer, so a
//! 120-second scenario takes milliseconds and, given the same seed, the same
//! events happen in the same order. Every source of randomness (network
//! faults, election timeouts, test schedules) derives from the seed.

pub mod forgery;
mod invariants;
pub mod lab3;
pub mod lab4;
pub mod lab5_ctrler;
pub mod lab5_shardkv;
mod member_storage;
mod nemesis;
mod network;
mod raft_cluster;
mod recording_sm;
pub mod shard_cluster;
mod shard_nemesis;

use std::future::Future;
use std::time::Duration;

pub use invariants::InvariantChecker;
pub use member_storage::{DirStorage, MemStorage, MemberStorage, OpenInDir};
pub use nemesis::{raft_nemesis, NemesisReport};
pub use network::{SimNetwork, SimServiceClient, SimTransport};
pub use raft_cluster::{RaftCluster, RaftClusterConfig};
pub use recording_sm::{cmd, cmd_value, AppliedView, RecordingStateMachine};
pub use shard_cluster::{ShardCluster, ShardClusterConfig};
pub use shard_nemesis::{shard_nemesis, ShardNemesisReport};

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
    F: FnOnce(u64) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let seed = seed_for(name);
    simulate_seed(name, seed, MAX_VIRTUAL_TIME, scenario);
}

/// Run `scenario` with `seed` like [`simulate_seed`], turning a failure into
/// an `Err` whose message starts with `seed <seed>: ` (for runners that try
/// many seeds and report every failing one).
pub fn run_seed<F, Fut, T>(name: &str, seed: u64, scenario: F) -> Result<T, String>
where
    F: FnOnce(u64) -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        simulate_seed(name, seed, MAX_VIRTUAL_TIME, scenario)
    }));
    run.map_err(|payload| {
        let message = super::panic_message(payload.as_ref());
        let prefix = format!("seed {seed}: ");
        format!("{prefix}{}", message.strip_prefix(&prefix).unwrap_or(&message))
    })
}

/// Wall-clock budget of one simulation (`RAFTKV_SIM_WALL_SECS`, default 300 s).
/// Virtual time only advances when every task waits, so a livelock in zero
/// virtual time would otherwise hang forever instead of failing.
fn wall_limit() -> Duration {
    let secs = std::env::var("RAFTKV_SIM_WALL_SECS").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(300);
    Duration::from_secs(secs)
}

/// Like [`simulate`] with an explicit seed and virtual time limit.
///
/// The scenario runs on its own thread (with the caller's `tracing`
/// dispatcher); if it produces no result within the wall-clock budget the
/// call panics naming the seed.
///
/// # Panics
/// If the runtime cannot be built, the scenario panics, exceeds `limit` of
/// virtual time, or exceeds the wall-clock budget.
pub fn simulate_seed<F, Fut, T>(name: &str, seed: u64, limit: Duration, scenario: F) -> T
where
    F: FnOnce(u64) -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    let _reporter = SeedReporter { name: name.to_string(), seed };
    eprintln!("[sim] {name}: seed {seed}");
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    let (tx, rx) = std::sync::mpsc::channel();
    let thread_name = name.to_string();
    let spawned = std::thread::Builder::new().name(format!("sim-{name}")).spawn(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            tracing::dispatcher::with_default(&dispatch, || run_paused(&thread_name, seed, limit, scenario))
        }));
        let _ = tx.send(outcome);
    });
    if let Err(e) = spawned {
        panic!("{name}: cannot start the simulation thread: {e}");
    }
    match rx.recv_timeout(wall_limit()) {
        Ok(Ok(v)) => v,
        Ok(Err(payload)) => std::panic::resume_unwind(payload),
        Err(_) => panic!(
            "{name}: no result after {:?} of wall time — a livelock in zero virtual time? (seed {seed})",
            wall_limit()
        ),
    }
}

fn run_paused<F, Fut, T>(name: &str, seed: u64, limit: Duration, scenario: F) -> T
where
    F: FnOnce(u64) -> Fut,
    Fut: Future<Output = T>,
{
    let rt = match tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build() {
        Ok(rt) => rt,
        Err(e) => panic!("{name}: cannot build a current-thread tokio runtime: {e}"),
    };
    rt.block_on(async move {
        match tokio::time::timeout(limit, scenario(seed)).await {
            Ok(v) => v,
            Err(_) => panic!("{name}: exceeded {limit:?} of virtual time (seed {seed})"),
        }
    })
}
