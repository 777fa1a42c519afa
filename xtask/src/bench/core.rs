//! `cargo xtask bench core`: closed-loop proposal throughput and latency of a
//! 3-member group in one process.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use async_trait::async_trait;
use bytes::Bytes;
use raftkv_core::raft::core::{RaftConfig, Role};
use raftkv_core::raft::driver::{DriverConfig, Raft, RaftHandle};
use raftkv_core::state_machine::{Committed, SnapshotImage, StateMachine, StateMachineError};
use raftkv_core::storage::{MemDisk, SnapshotReader};
use raftkv_core::transport::LocalTransport;
use raftkv_core::{GroupId, NodeId};

use crate::args::Flags;
use crate::bench::hist::{Histogram, Tally};

const MEMBERS: u64 = 3;
const WORKER_THREADS: usize = 2;

/// Arguments of `bench core`.
pub struct BenchArgs {
    duration: Duration,
    warmup: Duration,
    proposers: Vec<usize>,
    sizes: Vec<usize>,
}

impl BenchArgs {
    pub fn parse(args: &[&str]) -> Result<Self> {
        let flags = Flags::parse(args, &["--duration-secs", "--warmup-secs", "--proposers", "--sizes"])?;
        let duration = Duration::from_secs_f64(flags.get("--duration-secs")?.unwrap_or(5.0));
        let warmup = Duration::from_secs_f64(flags.get("--warmup-secs")?.unwrap_or(1.0));
        let proposers = flags.list("--proposers")?.unwrap_or_else(|| vec![1, 16, 64, 256]);
        let sizes = flags.list("--sizes")?.unwrap_or_else(|| vec![0, 256]);
        if duration.is_zero() || proposers.is_empty() || sizes.is_empty() || proposers.contains(&0) {
            bail!("need a positive duration, and non-empty lists of positive proposer counts and sizes");
        }
        Ok(Self { duration, warmup, proposers, sizes })
    }
}

/// The trivial state machine: counts applied commands; its snapshot is 8 bytes.
struct Counter(u64);

#[async_trait]
impl StateMachine for Counter {
    type Response = u64;

    async fn apply(&mut self, batch: Vec<Committed>) -> Result<Vec<u64>, StateMachineError> {
        Ok(batch
            .iter()
            .map(|_| {
                self.0 += 1;
                self.0
            })
            .collect())
    }

    async fn snapshot(&mut self) -> Result<Box<dyn SnapshotImage>, StateMachineError> {
        Ok(Box::new(Bytes::copy_from_slice(&self.0.to_le_bytes())))
    }

    async fn restore(&mut self, input: &mut dyn SnapshotReader) -> Result<(), StateMachineError> {
        let mut data = Vec::with_capacity(8);
        while let Some(chunk) = input.next_chunk(8).await? {
            data.extend_from_slice(&chunk);
        }
        let bytes: [u8; 8] = data
            .as_slice()
            .try_into()
            .map_err(|_| StateMachineError::MalformedSnapshot(format!("{} bytes, expected 8", data.len())))?;
        self.0 = u64::from_le_bytes(bytes);
        Ok(())
    }
}

struct Group {
    handles: Vec<RaftHandle<u64>>,
}

impl Group {
    async fn start() -> Result<Self> {
        let transport = LocalTransport::new();
        let voters: Vec<NodeId> = (1..=MEMBERS).map(NodeId).collect();
        let mut handles = Vec::new();
        for &id in &voters {
            let disk = MemDisk::new();
            let cfg = RaftConfig::new(GroupId(1), id, voters.clone());
            let driver = DriverConfig { snapshot_every_entries: 100_000, ..DriverConfig::default() };
            let handle = Raft::start(
                cfg,
                driver,
                Arc::new(disk.log_store()),
                Arc::new(disk.snapshot_store()),
                Arc::new(transport.clone()),
                Counter(0),
            )
            .await
            .with_context(|| format!("start member {id}"))?;
            transport.register(id, Arc::new(handle.clone()));
            handles.push(handle);
        }
        Ok(Self { handles })
    }

    async fn leader(&self) -> Result<RaftHandle<u64>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            for h in &self.handles {
                if h.status().await.map(|s| s.role == Role::Leader).unwrap_or(false) {
                    // Make sure it can commit in its term before measuring.
                    if h.propose(Bytes::new()).await.is_ok() {
                        return Ok(h.clone());
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(anyhow!("no leader elected within 10 s"))
    }

    async fn shutdown(self) {
        for h in &self.handles {
            h.shutdown().await;
        }
    }
}

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

struct Row {
    size: usize,
    proposers: usize,
    ops_per_sec: f64,
    /// Process CPU time (all threads) per acknowledged proposal, if known.
    cpu_us_per_op: Option<f64>,
    hist: Histogram,
    errors: u64,
    leader_changes: bool,
}

async fn proposer(leader: RaftHandle<u64>, command: Bytes, phase: Arc<AtomicU8>) -> (Histogram, u64) {
    let mut tally = Tally::default();
    loop {
        let p = phase.load(Ordering::Relaxed);
        if p == STOP {
            break;
        }
        let t0 = Instant::now();
        let ok = leader.propose(command.clone()).await.is_ok();
        tally.count(p == MEASURE && phase.load(Ordering::Relaxed) == MEASURE, ok, t0);
        if !ok {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    (tally.hist, tally.errors)
}

async fn bench_row(size: usize, proposers: usize, warmup: Duration, duration: Duration) -> Result<Row> {
    let group = Group::start().await?;
    let leader = group.leader().await?;
    let term0 = leader.status().await?.term;
    let command = Bytes::from(vec![0xA5u8; size]);
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let tasks: Vec<_> =
        (0..proposers).map(|_| tokio::spawn(proposer(leader.clone(), command.clone(), phase.clone()))).collect();
    tokio::time::sleep(warmup).await;
    let commit0 = leader.status().await?.commit;
    let cpu0 = process_cpu_time();
    phase.store(MEASURE, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(duration).await;
    phase.store(STOP, Ordering::Relaxed);
    let measured = t0.elapsed();
    let cpu = process_cpu_time().zip(cpu0).map(|(b, a)| b.saturating_sub(a));
    let mut hist = Histogram::default();
    let mut errors = 0;
    for t in tasks {
        let (h, e) = t.await.context("proposer task")?;
        hist.merge(&h);
        errors += e;
    }
    let status = leader.status().await?;
    let leader_changes = status.term != term0 || status.role != Role::Leader;
    // Sanity: every acknowledged proposal is a committed entry.
    let committed = status.commit.0.saturating_sub(commit0.0);
    if !leader_changes && committed < hist.len() {
        bail!("{} proposals acknowledged but the commit index advanced only {committed}", hist.len());
    }
    group.shutdown().await;
    let ops_per_sec = hist.len() as f64 / measured.as_secs_f64();
    let cpu_us_per_op = cpu.filter(|_| hist.len() > 0).map(|c| c.as_secs_f64() * 1e6 / hist.len() as f64);
    Ok(Row { size, proposers, ops_per_sec, cpu_us_per_op, hist, errors, leader_changes })
}

/// User + system CPU time of this process so far; `None` off Linux.
fn process_cpu_time() -> Option<Duration> {
    crate::cluster::procs::cpu_of(std::process::id())
}

pub fn run(args: &BenchArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(WORKER_THREADS).enable_all().build()?;
    println!(
        "bench core: {MEMBERS} members, MemDisk (no latency), LocalTransport, counter SM, {WORKER_THREADS} worker threads; \
         warm-up {:.1}s, measure {:.1}s per row",
        args.warmup.as_secs_f64(),
        args.duration.as_secs_f64()
    );
    println!();
    println!("| cmd bytes | proposers |       ops/s | p50 µs | p99 µs |  max µs | CPU µs/op | errors |");
    println!("|----------:|----------:|------------:|-------:|-------:|--------:|----------:|-------:|");
    for &size in &args.sizes {
        for &proposers in &args.proposers {
            let row = rt.block_on(bench_row(size, proposers, args.warmup, args.duration))?;
            let us = |ns: u64| ns as f64 / 1000.0;
            println!(
                "| {:>9} | {:>9} | {:>11.0} | {:>6.1} | {:>6.1} | {:>7.0} | {:>9} | {:>6} |{}",
                row.size,
                row.proposers,
                row.ops_per_sec,
                us(row.hist.quantile(0.50)),
                us(row.hist.quantile(0.99)),
                us(row.hist.max()),
                row.cpu_us_per_op.map_or_else(|| "-".to_string(), |c| format!("{c:.2}")),
                row.errors,
                if row.leader_changes { " (leader changed)" } else { "" }
            );
        }
    }
    Ok(())
}
