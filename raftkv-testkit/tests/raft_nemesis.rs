//! Randomized faults (partitions, crashes, unreliable and reordering network,
//! leadership transfers) under concurrent clients, on the simulator.
//!
//! Runs 16 seeds derived from `RAFTKV_SEED` (or a fixed base); a failure lists
//! every failing seed, each replayable alone with `RAFTKV_SEED=<seed>` and
//! `RAFTKV_NEMESIS_SEEDS=1`.

use raftkv_testkit::sim::raft_nemesis;

const DEFAULT_BASE: u64 = 0x6e65_6d65_7369_7300;
const DEFAULT_SEEDS: u64 = 16;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.trim().parse().ok())
}

#[test]
fn raft_nemesis_16_seeds() {
    let base = env_u64("RAFTKV_SEED").unwrap_or(DEFAULT_BASE);
    let count = env_u64("RAFTKV_NEMESIS_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let mut failures = Vec::new();
    for seed in base..base + count {
        match raft_nemesis(seed) {
            Ok(r) => eprintln!(
                "[nemesis] seed {seed}: ok — {} acked of {} proposed, {} started, {} crashes, {} restarts, \
                 {} partitions, {} transfers ({} accepted), {} checker steps, {:.1}s virtual, final index {}",
                r.acknowledged,
                r.proposed,
                r.started,
                r.crashes,
                r.restarts,
                r.partitions,
                r.transfers,
                r.transfers_accepted,
                r.checker_steps,
                r.virtual_secs,
                r.final_index
            ),
            Err(e) => failures.push((seed, e)),
        }
    }
    if !failures.is_empty() {
        let list: Vec<String> = failures.iter().map(|(s, e)| format!("  seed {s}: {e}")).collect();
        panic!(
            "{} of {count} nemesis seeds failed (replay one with RAFTKV_SEED=<seed> RAFTKV_NEMESIS_SEEDS=1):\n{}",
            failures.len(),
            list.join("\n")
        );
    }
}
