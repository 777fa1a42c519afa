//! `cargo xtask stress raft|shardkv`: a randomized nemesis scenario over
//! many seeds, in parallel; every failure names its seed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use anyhow::{bail, Result};
use raftkv_testkit::sim::{raft_nemesis, shard_nemesis};

use crate::args::Flags;

/// One seed's result: a one-line summary and named counters, or the failure.
type Outcome = Result<(String, Vec<(&'static str, f64)>), String>;

/// Which scenario to stress.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// One Raft group (`raft_nemesis`).
    Raft,
    /// The sharded store (`shard_nemesis`).
    ShardKv,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Self::Raft => "raft",
            Self::ShardKv => "shardkv",
        }
    }

    /// Run one seed: a one-line summary and counters to total, or the failure.
    fn run(self, seed: u64) -> Outcome {
        match self {
            Self::Raft => raft_nemesis(seed).map(|r| {
                let line = format!(
                    "{} acked, {} crashes, {} partitions, {} transfers, {:.1}s virtual",
                    r.acknowledged, r.crashes, r.partitions, r.transfers, r.virtual_secs
                );
                let counters = vec![
                    ("ops acknowledged", r.acknowledged as f64),
                    ("crashes", r.crashes as f64),
                    ("partitions", r.partitions as f64),
                    ("transfers", r.transfers as f64),
                    ("checker steps", r.checker_steps as f64),
                    ("s virtual", r.virtual_secs),
                ];
                (line, counters)
            }),
            Self::ShardKv => shard_nemesis(seed).map(|r| {
                let line = format!(
                    "{} ops, {} configs, {} reconfigurations, {} crashes, {} partitions, {}, {:.1}s virtual",
                    r.operations,
                    r.configs,
                    r.reconfigurations,
                    r.crashes,
                    r.partitions,
                    if r.decided { "linearizable" } else { "linearizability undecided" },
                    r.virtual_secs
                );
                let counters = vec![
                    ("ops", r.operations as f64),
                    ("configs", r.configs as f64),
                    ("reconfigurations", r.reconfigurations as f64),
                    ("crashes", r.crashes as f64),
                    ("partitions", r.partitions as f64),
                    ("histories decided", f64::from(u8::from(r.decided))),
                    ("s virtual", r.virtual_secs),
                ];
                (line, counters)
            }),
        }
    }
}

/// Arguments of `stress`.
#[derive(Clone, Copy)]
pub struct StressArgs {
    target: Target,
    seeds: u64,
    start: u64,
    threads: usize,
}

impl StressArgs {
    pub fn parse(target: Target, args: &[&str]) -> Result<Self> {
        let flags = Flags::parse(args, &["--seeds", "--start", "--threads"])?;
        let Some(seeds) = flags.get("--seeds")? else { bail!("`stress {}` needs `--seeds N`", target.name()) };
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let threads = flags.get("--threads")?.unwrap_or(cores).max(1);
        Ok(Self { target, seeds, start: flags.get("--start")?.unwrap_or(1), threads })
    }
}

pub fn run(args: &StressArgs) -> Result<()> {
    let StressArgs { target, seeds, start, threads } = *args;
    let end = start.checked_add(seeds).ok_or_else(|| anyhow::anyhow!("seed range overflows"))?;
    let threads = threads.min(usize::try_from(seeds).unwrap_or(usize::MAX)).max(1);
    println!("stress {}: seeds {start}..{end} on {threads} threads", target.name());
    let began = Instant::now();
    let next = Arc::new(AtomicU64::new(start));
    let (tx, rx) = mpsc::channel::<(u64, Outcome)>();
    let mut workers = Vec::with_capacity(threads);
    for t in 0..threads {
        let (next, tx) = (next.clone(), tx.clone());
        let worker = std::thread::Builder::new().name(format!("stress-{t}")).spawn(move || loop {
            let seed = next.fetch_add(1, Ordering::Relaxed);
            if seed >= end {
                break;
            }
            // Each run builds (and drops) its own simulated runtime.
            if tx.send((seed, target.run(seed))).is_err() {
                break;
            }
        })?;
        workers.push(worker);
    }
    drop(tx);

    let mut totals: BTreeMap<&'static str, f64> = BTreeMap::new();
    let mut order: Vec<&'static str> = Vec::new();
    let mut failures: Vec<(u64, String)> = Vec::new();
    let mut done = 0u64;
    for (seed, outcome) in rx {
        done += 1;
        match outcome {
            Ok((line, counters)) => {
                for (name, v) in counters {
                    if !totals.contains_key(name) {
                        order.push(name);
                    }
                    *totals.entry(name).or_default() += v;
                }
                println!("[{done:>4}/{seeds}] seed {seed}: ok ({line})");
            }
            Err(e) => {
                println!("[{done:>4}/{seeds}] seed {seed}: FAILED: {}", first_line(&e));
                failures.push((seed, e));
            }
        }
    }
    for w in workers {
        if w.join().is_err() {
            failures.push((u64::MAX, "a stress worker thread panicked".into()));
        }
    }

    let wall = began.elapsed().as_secs_f64();
    println!();
    let parts: Vec<String> = order.iter().map(|n| format!("{:.0} {n}", totals[n])).collect();
    println!("totals: {} in {wall:.1}s wall", parts.join(", "));
    println!("{seeds} seeds, {} failures", failures.len());
    if failures.is_empty() {
        return Ok(());
    }
    failures.sort_by_key(|(s, _)| *s);
    for (_, e) in &failures {
        // Messages start with "seed <seed>: ".
        println!("  {e}");
    }
    let list: Vec<String> = failures.iter().map(|(s, _)| s.to_string()).collect();
    bail!("{} of {seeds} seeds failed: {}", failures.len(), list.join(" "))
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}
