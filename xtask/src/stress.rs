//! `cargo xtask stress raft`: the nemesis scenario over many seeds, in parallel.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use anyhow::{bail, Result};
use raftkv_core::testkit::sim::{raft_nemesis, NemesisReport};

use crate::args::Flags;

/// Arguments of `stress raft`.
#[derive(Clone, Copy)]
pub struct StressArgs {
    seeds: u64,
    start: u64,
    threads: usize,
}

impl StressArgs {
    pub fn parse(args: &[&str]) -> Result<Self> {
        let flags = Flags::parse(args, &["--seeds", "--start", "--threads"])?;
        let Some(seeds) = flags.get("--seeds")? else { bail!("`stress raft` needs `--seeds N`") };
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let threads = flags.get("--threads")?.unwrap_or(cores).max(1);
        Ok(Self { seeds, start: flags.get("--start")?.unwrap_or(1), threads })
    }
}

#[derive(Default)]
struct Totals {
    acknowledged: u64,
    crashes: u64,
    partitions: u64,
    transfers: u64,
    checker_steps: u64,
    virtual_secs: f64,
}

impl Totals {
    fn add(&mut self, r: &NemesisReport) {
        self.acknowledged += r.acknowledged;
        self.crashes += r.crashes;
        self.partitions += r.partitions;
        self.transfers += r.transfers;
        self.checker_steps += r.checker_steps;
        self.virtual_secs += r.virtual_secs;
    }
}

pub fn run(args: &StressArgs) -> Result<()> {
    let StressArgs { seeds, start, threads } = *args;
    let end = start.checked_add(seeds).ok_or_else(|| anyhow::anyhow!("seed range overflows"))?;
    let threads = threads.min(usize::try_from(seeds).unwrap_or(usize::MAX)).max(1);
    println!("stress raft: seeds {start}..{end} on {threads} threads");
    let began = Instant::now();
    let next = Arc::new(AtomicU64::new(start));
    let (tx, rx) = mpsc::channel::<(u64, Result<NemesisReport, String>)>();
    let mut workers = Vec::with_capacity(threads);
    for t in 0..threads {
        let (next, tx) = (next.clone(), tx.clone());
        let worker = std::thread::Builder::new().name(format!("stress-{t}")).spawn(move || loop {
            let seed = next.fetch_add(1, Ordering::Relaxed);
            if seed >= end {
                break;
            }
            // Each run builds (and drops) its own simulated runtime.
            let outcome = raft_nemesis(seed);
            if tx.send((seed, outcome)).is_err() {
                break;
            }
        })?;
        workers.push(worker);
    }
    drop(tx);

    let mut totals = Totals::default();
    let mut failures: Vec<(u64, String)> = Vec::new();
    let mut done = 0u64;
    for (seed, outcome) in rx {
        done += 1;
        match outcome {
            Ok(r) => {
                totals.add(&r);
                println!(
                    "[{done:>4}/{seeds}] seed {seed}: ok ({} acked, {} crashes, {} partitions, {} transfers, {:.1}s virtual)",
                    r.acknowledged, r.crashes, r.partitions, r.transfers, r.virtual_secs
                );
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
    println!(
        "totals: {} ops acknowledged, {} crashes, {} partitions, {} transfers, {} checker steps, {:.0}s virtual in {wall:.1}s wall",
        totals.acknowledged,
        totals.crashes,
        totals.partitions,
        totals.transfers,
        totals.checker_steps,
        totals.virtual_secs
    );
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
