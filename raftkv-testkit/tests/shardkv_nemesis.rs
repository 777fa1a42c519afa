//! The sharded store's randomized nemesis over a few seeds (many more with
//! `cargo xtask stress shardkv --seeds N`). Replay one with
//! `RAFTKV_SEED=<seed> RAFTKV_NEMESIS_SEEDS=1`.

use raftkv_testkit::sim::shard_nemesis;

const DEFAULT_BASE: u64 = 0x5348_4152_444b_5600;
const DEFAULT_SEEDS: u64 = 8;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.trim().parse().ok())
}

#[test]
fn shardkv_nemesis_8_seeds() {
    let base = env_u64("RAFTKV_SEED").unwrap_or(DEFAULT_BASE);
    let count = env_u64("RAFTKV_NEMESIS_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let mut failures = Vec::new();
    for seed in base..base + count {
        match shard_nemesis(seed) {
            Ok(r) => eprintln!(
                "[shard nemesis] seed {seed}: ok — {} ops, {} configs, {} reconfigurations, {} crashes, {} partitions, \
                 linearizability {}, {:.1}s virtual",
                r.operations,
                r.configs,
                r.reconfigurations,
                r.crashes,
                r.partitions,
                if r.decided { "checked" } else { "undecided (budget)" },
                r.virtual_secs
            ),
            Err(e) => failures.push((seed, e)),
        }
    }
    if !failures.is_empty() {
        let list: Vec<String> = failures.iter().map(|(_, e)| format!("  {e}")).collect();
        panic!(
            "{} of {count} shard nemesis seeds failed (replay one with RAFTKV_SEED=<seed> RAFTKV_NEMESIS_SEEDS=1):\n{}",
            failures.len(),
            list.join("\n")
        );
    }
}
