//! The closed-loop load generator: N sessions, each sending its next request
//! when the last is answered, over a key space of fixed-size keys.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use async_trait::async_trait;
use bytes::Bytes;

use crate::bench::hist::{Histogram, Tally};
use crate::rng::Rng;

/// One client's connection state (its client id, sequence numbers, channel).
#[async_trait]
pub trait Session: Send {
    /// Set `key` to `value`, durably and linearizably.
    async fn put(&mut self, key: Bytes, value: Bytes) -> Result<()>;
    /// A linearizable read of `key`; whether it was found.
    async fn get(&mut self, key: Bytes) -> Result<bool>;
}

/// A system under test: hands out sessions.
#[async_trait]
pub trait System: Send + Sync {
    /// Its name in the tables.
    fn name(&self) -> &str;
    /// A new session (a new client).
    async fn session(&self) -> Result<Box<dyn Session>>;
    /// Each server process: its name and pid.
    fn processes(&self) -> Vec<(String, u32)>;
}

/// CPU time of each of `procs` (and, last, of this process) so far.
fn cpu_times(procs: &[(String, u32)]) -> Vec<Duration> {
    procs
        .iter()
        .map(|(_, pid)| *pid)
        .chain([std::process::id()])
        .map(|pid| crate::cluster::procs::cpu_of(pid).unwrap_or_default())
        .collect()
}

/// What the sessions send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Only puts.
    Put,
    /// Only linearizable gets.
    Get,
    /// 90 % gets, 10 % puts.
    Mixed,
}

impl Workload {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "put" => Ok(Self::Put),
            "get" => Ok(Self::Get),
            "mixed" => Ok(Self::Mixed),
            other => anyhow::bail!("unknown workload `{other}`; the workloads are put, get and mixed"),
        }
    }

    /// Whether the operation drawn as `r` is a put.
    pub fn is_put(self, r: u64) -> bool {
        match self {
            Self::Put => true,
            Self::Get => false,
            Self::Mixed => (r >> 40).is_multiple_of(10),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Put => "put",
            Self::Get => "get",
            Self::Mixed => "mixed",
        }
    }
}

/// The key space and value size.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Distinct keys (8 bytes each: zero-padded decimal).
    pub keys: u64,
    /// Bytes per value.
    pub value_bytes: usize,
}

impl Shape {
    /// Key number `i` as 8 bytes.
    pub fn key(i: u64) -> Bytes {
        Bytes::from(format!("{i:08}"))
    }

    pub fn value(self, salt: u64) -> Bytes {
        let mut v = vec![b'v'; self.value_bytes];
        for (b, d) in v.iter_mut().zip(format!("{salt:016x}").bytes()) {
            *b = d;
        }
        Bytes::from(v)
    }
}

/// One measured row.
pub struct Row {
    pub ops_per_sec: f64,
    pub hist: Histogram,
    pub errors: u64,
    /// CPU time per operation (µs) of each server process, by name.
    pub server_cpu_us: Vec<(String, f64)>,
    /// CPU time per operation (µs) of the load generator (this process).
    pub client_cpu_us: f64,
}

impl Row {
    /// Quantile `q` in microseconds.
    pub fn us(&self, q: f64) -> f64 {
        self.hist.quantile(q) as f64 / 1000.0
    }
}

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

async fn session_loop(
    mut session: Box<dyn Session>,
    workload: Workload,
    shape: Shape,
    seed: u64,
    phase: Arc<AtomicU8>,
) -> (Histogram, u64) {
    let mut rng = Rng(seed | 1);
    let value = shape.value(seed);
    let mut tally = Tally::default();
    loop {
        let p = phase.load(Ordering::Relaxed);
        if p == STOP {
            break;
        }
        let r = rng.next();
        let key = Shape::key(r % shape.keys);
        let put = workload.is_put(r);
        let t0 = Instant::now();
        let ok = if put { session.put(key, value.clone()).await.is_ok() } else { session.get(key).await.is_ok() };
        tally.count(p == MEASURE && phase.load(Ordering::Relaxed) == MEASURE, ok, t0);
        if !ok {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    (tally.hist, tally.errors)
}

/// Run `clients` sessions of `workload` against `system`: warm up, then measure.
pub async fn run_row(
    system: &dyn System,
    workload: Workload,
    shape: Shape,
    clients: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<Row> {
    let mut sessions = Vec::with_capacity(clients);
    for _ in 0..clients {
        sessions.push(system.session().await?);
    }
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let tasks: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let seed = 0x9E37_79B9_7F4A_7C15_u64.wrapping_mul(i as u64 + 1);
            tokio::spawn(session_loop(s, workload, shape, seed, phase.clone()))
        })
        .collect();
    tokio::time::sleep(warmup).await;
    let procs = system.processes();
    let cpu0 = cpu_times(&procs);
    phase.store(MEASURE, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(duration).await;
    phase.store(STOP, Ordering::Relaxed);
    let measured = t0.elapsed();
    let cpu: Vec<Duration> = cpu_times(&procs).into_iter().zip(cpu0).map(|(b, a)| b.saturating_sub(a)).collect();
    let mut hist = Histogram::default();
    let mut errors = 0;
    for t in tasks {
        let (h, e) = t.await.context("session task")?;
        hist.merge(&h);
        errors += e;
    }
    let ops_per_sec = hist.len() as f64 / measured.as_secs_f64();
    let per_op = |d: &Duration| d.as_secs_f64() * 1e6 / hist.len().max(1) as f64;
    let server_cpu_us = procs.iter().zip(&cpu).map(|((name, _), d)| (name.clone(), per_op(d))).collect();
    let client_cpu_us = cpu.last().map_or(0.0, per_op);
    Ok(Row { ops_per_sec, hist, errors, server_cpu_us, client_cpu_us })
}

/// Write every key once (so gets find them), with `writers` sessions.
pub async fn preload(system: &dyn System, shape: Shape, writers: u64) -> Result<()> {
    let mut tasks = Vec::new();
    for w in 0..writers {
        let mut session = system.session().await?;
        let value = shape.value(w);
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < shape.keys {
                session.put(Shape::key(i), value.clone()).await.with_context(|| format!("preloading key {i}"))?;
                i += writers;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await.context("preload task")??;
    }
    Ok(())
}
