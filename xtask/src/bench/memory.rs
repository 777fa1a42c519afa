//! `cargo xtask bench memory`: the resident memory of each ShardKV replica
//! after loading K keys of V bytes, against the raw size of the data.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::args::Flags;
use crate::bench::cluster::load::{self, Shape, System};
use crate::cluster::raftkv::{build_server, Backends, RaftKvCluster};

/// Arguments of `bench memory`.
pub struct MemoryBenchArgs {
    shape: Shape,
    writers: u64,
    settle: Duration,
    backends: Backends,
}

impl MemoryBenchArgs {
    pub fn parse(args: &[&str]) -> Result<Self> {
        let f =
            Flags::parse(args, &["--keys", "--value-bytes", "--writers", "--settle-secs", "--transport", "--storage"])?;
        let shape =
            Shape { keys: f.get("--keys")?.unwrap_or(1_000_000), value_bytes: f.get("--value-bytes")?.unwrap_or(256) };
        let writers = f.get("--writers")?.unwrap_or(256);
        let settle = Duration::from_secs_f64(f.get("--settle-secs")?.unwrap_or(10.0));
        let backends = Backends {
            transport: f.get("--transport")?.unwrap_or_else(|| "grpc".into()),
            storage: f.get("--storage")?.unwrap_or_else(|| "redb".into()),
        };
        backends.check()?;
        if shape.keys == 0 || writers == 0 {
            bail!("need at least one key and one writer");
        }
        Ok(Self { shape, writers, settle, backends })
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

fn replicas(cluster: &RaftKvCluster) -> Vec<(String, u64)> {
    cluster
        .processes()
        .into_iter()
        .filter(|(name, _)| name.starts_with("g1-"))
        .map(|(name, pid)| (name, crate::cluster::procs::rss_of(pid).unwrap_or(0)))
        .collect()
}

pub fn run(args: &MemoryBenchArgs) -> Result<()> {
    let binary = build_server(&args.backends)?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let mut cluster = RaftKvCluster::start(&binary, &args.backends, 1, &[]).await?;
        let raw = args.shape.keys * (8 + args.shape.value_bytes as u64);
        println!(
            "bench memory: {} (3 controllers + one 3-replica group), {} keys of 8 bytes with {}-byte values = {:.1} MiB of raw data, {} writers",
            cluster.name(),
            args.shape.keys,
            args.shape.value_bytes,
            mib(raw),
            args.writers
        );
        let idle = replicas(&cluster);
        let started = Instant::now();
        load::preload(&cluster, args.shape, args.writers).await?;
        let took = started.elapsed();
        println!("loaded in {:.1} s ({:.0} puts/s)", took.as_secs_f64(), args.shape.keys as f64 / took.as_secs_f64());
        let loaded = replicas(&cluster);
        tokio::time::sleep(args.settle).await;
        cluster.check_alive()?;
        let settled = replicas(&cluster);
        println!();
        println!(
            "| replica | RSS idle MiB | RSS after load MiB | RSS after {:.0} s MiB | × raw data (after {:.0} s) |",
            args.settle.as_secs_f64(),
            args.settle.as_secs_f64()
        );
        println!("|---------|-------------:|-------------------:|------------------:|--------------------------:|");
        let mut worst: f64 = 0.0;
        for ((name, i), ((_, l), (_, s))) in idle.iter().zip(loaded.iter().zip(&settled)) {
            let ratio = *s as f64 / raw as f64;
            worst = worst.max(ratio.max(*l as f64 / raw as f64));
            println!("| {name:<7} | {:>12.1} | {:>18.1} | {:>17.1} | {:>25.2} |", mib(*i), mib(*l), mib(*s), ratio);
        }
        println!();
        println!(
            "target: every replica's RSS ≤ 2× the raw data ({:.1} MiB): {} (worst {worst:.2}×)",
            mib(2 * raw),
            if worst <= 2.0 { "met" } else { "NOT met" }
        );
        anyhow::Ok(())
    })
}
