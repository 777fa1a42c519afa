//! `cargo xtask bench migration`: move one shard holding K keys of V bytes
//! from group 1 to group 2 while a closed-loop load runs on the other
//! shards; the time until the shard serves on group 2 (and until the old
//! copy is deleted), and the other shards' latency before and during it.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use raftkv_core::api::{shard_of, ServiceRequest, ServiceResponse, ShardState};
use raftkv_core::client::KvClerk;
use raftkv_core::{GroupId, ShardId};

use crate::args::Flags;
use crate::bench::cluster::load::{Shape, System, Workload};
use crate::bench::hist::{Histogram, Tally};
use crate::cluster::procs::cpu_of;
use crate::cluster::raftkv::{build_server, Backends, RaftKvCluster};
use crate::rng::Rng;

/// Shards of the cluster (the server's default).
const SHARDS: usize = 10;
/// Keys of the load on the other shards (8 bytes each, preloaded).
const LOAD_KEYS: u64 = 10_000;

/// Arguments of `bench migration`.
pub struct MigrationBenchArgs {
    shape: Shape,
    clients: usize,
    workload: Workload,
    writers: usize,
    warmup: Duration,
    baseline: Duration,
    backends: Backends,
}

impl MigrationBenchArgs {
    pub fn parse(args: &[&str]) -> Result<Self> {
        let f = Flags::parse(
            args,
            &[
                "--keys",
                "--value-bytes",
                "--clients",
                "--workload",
                "--writers",
                "--warmup-secs",
                "--baseline-secs",
                "--transport",
                "--storage",
            ],
        )?;
        let shape =
            Shape { keys: f.get("--keys")?.unwrap_or(400_000), value_bytes: f.get("--value-bytes")?.unwrap_or(256) };
        let workload = Workload::parse(&f.get::<String>("--workload")?.unwrap_or_else(|| "mixed".into()))?;
        let backends = Backends {
            transport: f.get("--transport")?.unwrap_or_else(|| "grpc".into()),
            storage: f.get("--storage")?.unwrap_or_else(|| "redb".into()),
        };
        backends.check()?;
        let args = Self {
            shape,
            clients: f.get("--clients")?.unwrap_or(16),
            workload,
            writers: f.get("--writers")?.unwrap_or(128),
            warmup: Duration::from_secs_f64(f.get("--warmup-secs")?.unwrap_or(2.0)),
            baseline: Duration::from_secs_f64(f.get("--baseline-secs")?.unwrap_or(5.0)),
            backends,
        };
        if args.shape.keys == 0 || args.clients == 0 || args.writers == 0 {
            bail!("need at least one key, one client and one writer");
        }
        Ok(args)
    }
}

const WARMUP: u8 = 0;
const BASELINE: u8 = 1;
const MIGRATING: u8 = 2;
const STOP: u8 = 3;

/// Keys `{prefix}{i:07}` that fall in `shard`, `n` of them.
fn keys_in(shard: ShardId, prefix: char, n: usize) -> Vec<Bytes> {
    (0u64..)
        .map(|i| format!("{prefix}{i:07}"))
        .filter(|k| shard_of(k.as_bytes(), SHARDS) == shard)
        .take(n)
        .map(Bytes::from)
        .collect()
}

/// Put every key (to `value`) with `writers` clerks.
async fn load_keys(cluster: &RaftKvCluster, keys: Arc<Vec<Bytes>>, writers: usize, value: Bytes) -> Result<()> {
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (mut clerk, keys, value) = (cluster.clerk(), keys.clone(), value.clone());
            tokio::spawn(async move {
                for key in keys.iter().skip(w).step_by(writers) {
                    clerk.put(key.clone(), value.clone()).await.with_context(|| format!("loading {key:?}"))?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await.context("load task")??;
    }
    Ok(())
}

/// Latency tallies of the load: per phase (without, during the migration),
/// per group serving the key (group 1, group 2).
type Tallies = [[Tally; 2]; 2];

/// One client of the load on the other shards; `on_g2[shard]`: whether
/// group 2 serves the shard.
async fn client_loop(
    mut clerk: KvClerk,
    (keys, on_g2): (Arc<Vec<Bytes>>, Arc<Vec<bool>>),
    workload: Workload,
    value: Bytes,
    seed: u64,
    phase: Arc<AtomicU8>,
) -> Tallies {
    let mut tallies = Tallies::default();
    let mut rng = Rng(seed | 1);
    loop {
        let p = phase.load(Ordering::Relaxed);
        if p == STOP {
            return tallies;
        }
        let x = rng.next();
        let key = keys[(x % keys.len() as u64) as usize].clone();
        let group = usize::from(on_g2.get(shard_of(&key, SHARDS).0 as usize).copied().unwrap_or(false));
        let put = workload.is_put(x);
        let t0 = Instant::now();
        let ok = if put { clerk.put(key, value.clone()).await.is_ok() } else { clerk.get(key).await.is_ok() };
        let same = phase.load(Ordering::Relaxed) == p;
        if let Some(i) = [BASELINE, MIGRATING].iter().position(|&m| m == p) {
            tallies[i][group].count(same, ok, t0);
        }
    }
}

/// The state of `shard` at each replica of `servers` that answered.
async fn shard_states(cluster: &RaftKvCluster, servers: &[String], shard: ShardId) -> Vec<Option<ShardState>> {
    let net = cluster.net();
    let mut out = Vec::new();
    for s in servers {
        if let Ok(Ok(ServiceResponse::Status(Ok(status)))) =
            tokio::time::timeout(Duration::from_secs(1), net.call_service(s, ServiceRequest::Status)).await
        {
            out.push(status.shards.iter().find(|st| st.shard == shard).map(|st| st.state));
        }
    }
    out
}

/// What one migration measured.
struct Measured {
    serving: Duration,
    settled: Duration,
}

/// Move `shard` to group 2 and wait until a replica of group 2 serves it,
/// then until it is settled there and gone from group 1.
async fn migrate(cluster: &RaftKvCluster, shard: ShardId) -> Result<Measured> {
    let (g1, g2) = (cluster.groups[0].clone(), cluster.groups[1].clone());
    let started = Instant::now();
    cluster.ctrl_clerk().move_shard(shard, GroupId(2)).await.context("Move")?;
    let limit = Duration::from_secs(120);
    let mut serving = None;
    loop {
        if started.elapsed() > limit {
            bail!("shard {shard} did not settle on group 2 within {limit:?}");
        }
        let on_g2 = shard_states(cluster, &g2, shard).await;
        if serving.is_none() && on_g2.iter().any(|s| matches!(s, Some(ShardState::Collecting | ShardState::Serving))) {
            serving = Some(started.elapsed());
        }
        if serving.is_some() && on_g2.iter().all(|s| *s == Some(ShardState::Serving)) && on_g2.len() == g2.len() {
            let on_g1 = shard_states(cluster, &g1, shard).await;
            if on_g1.len() == g1.len() && on_g1.iter().all(Option::is_none) {
                let settled = started.elapsed();
                return Ok(Measured { serving: serving.unwrap_or(settled), settled });
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Processes whose CPU time is reported: group 1, group 2, the
/// controllers, and this process (the load generator).
const CPU_ROLES: [&str; 4] = ["group 1", "group 2", "controllers", "load generator"];

/// CPU time so far of each of [`CPU_ROLES`].
fn cpu_by_role(procs: &[(String, u32)]) -> [Duration; 4] {
    let mut out = [Duration::ZERO; 4];
    for (name, pid) in procs {
        let role = if name.starts_with("g1-") {
            0
        } else if name.starts_with("g2-") {
            1
        } else {
            2
        };
        out[role] += cpu_of(*pid).unwrap_or_default();
    }
    out[3] = cpu_of(std::process::id()).unwrap_or_default();
    out
}

/// Cores kept busy between two [`cpu_by_role`] samples `secs` apart.
fn cores(from: &[Duration; 4], to: &[Duration; 4], secs: f64) -> [f64; 4] {
    std::array::from_fn(|i| to[i].saturating_sub(from[i]).as_secs_f64() / secs.max(1e-9))
}

fn row(name: &str, h: &Histogram, errors: u64, secs: f64) -> String {
    let ms = |q: f64| h.quantile(q) as f64 / 1e6;
    format!(
        "| {name:<26} | {:>9.1} | {:>8} | {:>6} | {:>8.2} | {:>8.2} | {:>8.2} | {:>8.2} |",
        secs,
        h.len(),
        errors,
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999)
    )
}

pub fn run(args: &MigrationBenchArgs) -> Result<()> {
    let binary = build_server(&args.backends)?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let mut cluster = RaftKvCluster::start(&binary, &args.backends, 2, &[]).await?;
        let config = cluster.ctrl_clerk().query(None).await.context("Query")?;
        let shard = (0..SHARDS)
            .map(|i| ShardId(i as u64))
            .find(|s| config.shards.get(s.0 as usize) == Some(&GroupId(1)))
            .context("group 1 owns no shard")?;
        let raw = args.shape.keys * (8 + args.shape.value_bytes as u64);
        println!(
            "bench migration: {}, 3 controllers + 2 groups × 3 replicas; shard {shard} of group 1 holds {} keys of 8 bytes with {}-byte values ({:.1} MB); {} clients, {} workload on the other shards",
            cluster.name(),
            args.shape.keys,
            args.shape.value_bytes,
            raw as f64 / 1e6,
            args.clients,
            args.workload.name()
        );
        let moving = Arc::new(keys_in(shard, 'm', usize::try_from(args.shape.keys)?));
        let value = args.shape.value(7);
        let t0 = Instant::now();
        load_keys(&cluster, moving.clone(), args.writers, value.clone()).await?;
        println!("loaded shard {shard} in {:.1} s", t0.elapsed().as_secs_f64());
        let others: Arc<Vec<Bytes>> =
            Arc::new((0..LOAD_KEYS).map(Shape::key).filter(|k| shard_of(&k[..], SHARDS) != shard).collect());
        load_keys(&cluster, others.clone(), args.writers, value.clone()).await?;

        let on_g2: Arc<Vec<bool>> = Arc::new(config.shards.iter().map(|&g| g == GroupId(2)).collect());
        let phase = Arc::new(AtomicU8::new(WARMUP));
        let clients: Vec<_> = (0..args.clients)
            .map(|i| {
                let seed = 0x9E37_79B9_7F4A_7C15_u64.wrapping_mul(i as u64 + 1);
                let client =
                    client_loop(cluster.clerk(), (others.clone(), on_g2.clone()), args.workload, value.clone(), seed, phase.clone());
                tokio::spawn(client)
            })
            .collect();
        tokio::time::sleep(args.warmup).await;
        let procs = cluster.processes();
        phase.store(BASELINE, Ordering::Relaxed);
        let cpu0 = cpu_by_role(&procs);
        tokio::time::sleep(args.baseline).await;
        phase.store(MIGRATING, Ordering::Relaxed);
        let cpu1 = cpu_by_role(&procs);
        let measured = migrate(&cluster, shard).await;
        phase.store(STOP, Ordering::Relaxed);
        let cpu2 = cpu_by_role(&procs);
        // [phase][all, group 1, group 2]
        let mut hist: [[Histogram; 3]; 2] = Default::default();
        let mut errors = [[0; 3]; 2];
        for c in clients {
            for (i, by_group) in c.await.context("load client")?.into_iter().enumerate() {
                for (g, t) in by_group.into_iter().enumerate() {
                    for j in [0, g + 1] {
                        hist[i][j].merge(&t.hist);
                        errors[i][j] += t.errors;
                    }
                }
            }
        }
        let measured = measured?;
        cluster.check_alive()?;

        // Every moved key reads back from its new group.
        let mut clerk = cluster.clerk();
        for key in moving.iter().step_by((moving.len() / 2000).max(1)) {
            let got = clerk.get(key.clone()).await.context("reading a moved key")?;
            if got.as_ref() != Some(&value) {
                bail!("moved key {key:?} reads {got:?} after the migration");
            }
        }
        let owner = cluster.ctrl_clerk().query(None).await?.shards[shard.0 as usize];
        if owner != GroupId(2) {
            bail!("shard {shard} is owned by {owner} after the move");
        }

        let serving = measured.serving.as_secs_f64();
        println!();
        println!(
            "shard {shard} ({:.1} MB, {} keys): serving on group 2 {serving:.2} s after the Move ({:.0} MB/s); settled (group 1's copy deleted) after {:.2} s; 2,000 moved keys read back",
            raw as f64 / 1e6,
            args.shape.keys,
            raw as f64 / 1e6 / serving,
            measured.settled.as_secs_f64()
        );
        println!();
        println!("| other shards               | seconds   | ops      | errors | p50 ms   | p90 ms   | p99 ms   | p99.9 ms |");
        println!("|----------------------------|----------:|---------:|-------:|---------:|---------:|---------:|---------:|");
        let secs = [args.baseline.as_secs_f64(), measured.settled.as_secs_f64()];
        for (j, on) in ["", ", group 1", ", group 2"].iter().enumerate() {
            for (i, when) in ["without migration", "during migration"].iter().enumerate() {
                println!("{}", row(&format!("{when}{on}"), &hist[i][j], errors[i][j], secs[i]));
            }
        }
        let busy = [cores(&cpu0, &cpu1, secs[0]), cores(&cpu1, &cpu2, secs[1])];
        println!();
        println!("| cores busy (of {}) | {} |", std::thread::available_parallelism().map_or(0, usize::from), CPU_ROLES.join(" | "));
        println!("|---|{}", "---:|".repeat(CPU_ROLES.len()));
        for (when, b) in ["without migration", "during migration"].iter().zip(busy) {
            println!("| {when} | {} |", b.map(|c| format!("{c:.2}")).join(" | "));
        }
        let (base, during) = (hist[0][0].quantile(0.99) as f64, hist[1][0].quantile(0.99) as f64);
        println!();
        println!(
            "targets: serving within 3 s: {} ({serving:.2} s); other shards' p99 ≤ 2× without migration: {} ({:.2}×)",
            if serving <= 3.0 { "met" } else { "NOT met" },
            if during <= 2.0 * base { "met" } else { "NOT met" },
            during / base.max(1.0)
        );
        anyhow::Ok(())
    })
}
