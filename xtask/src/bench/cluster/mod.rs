//! `cargo xtask bench cluster`: RaftKV as real processes on loopback under a
//! closed-loop load, optionally side by side with a 3-member etcd.

#[cfg(feature = "etcd")]
mod etcd;
pub mod load;
mod report;

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};

use self::load::{Row, Shape, System, Workload};
use crate::args::Flags;
use crate::cluster::raftkv::{Backends, RaftKvCluster};

/// Arguments of `bench cluster`.
pub struct ClusterBenchArgs {
    raw: Vec<String>,
    clients: Vec<usize>,
    workloads: Vec<Workload>,
    warmup: Duration,
    duration: Duration,
    backends: Backends,
    against_etcd: bool,
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    etcd_all_endpoints: bool,
    shape: Shape,
    server_binary: Option<std::path::PathBuf>,
}

const FLAGS: &[&str] = &[
    "--clients",
    "--workloads",
    "--warmup-secs",
    "--duration-secs",
    "--transport",
    "--storage",
    "--against",
    "--etcd-endpoints",
    "--keys",
    "--value-bytes",
    "--server-binary",
];

impl ClusterBenchArgs {
    pub fn parse(args: &[&str]) -> Result<Self> {
        let f = Flags::parse(args, FLAGS)?;
        let clients = f.list("--clients")?.unwrap_or_else(|| vec![1, 16, 64, 256]);
        let workloads = f
            .list::<String>("--workloads")?
            .unwrap_or_else(|| vec!["put".into(), "get".into(), "mixed".into()])
            .iter()
            .map(|w| Workload::parse(w))
            .collect::<Result<Vec<_>>>()?;
        let warmup = Duration::from_secs_f64(f.get("--warmup-secs")?.unwrap_or(2.0));
        let duration = Duration::from_secs_f64(f.get("--duration-secs")?.unwrap_or(10.0));
        let backends = Backends {
            transport: f.get("--transport")?.unwrap_or_else(|| "grpc".into()),
            storage: f.get("--storage")?.unwrap_or_else(|| "redb".into()),
        };
        backends.check()?;
        let against_etcd = match f.get::<String>("--against")?.as_deref() {
            None => false,
            Some("etcd") => true,
            Some(other) => bail!("cannot benchmark against `{other}`; the only other system is etcd"),
        };
        let etcd_all_endpoints = match f.get::<String>("--etcd-endpoints")?.as_deref() {
            None | Some("leader") => false,
            Some("all") => true,
            Some(other) => bail!("`--etcd-endpoints` is leader or all, not `{other}`"),
        };
        let shape =
            Shape { keys: f.get("--keys")?.unwrap_or(10_000), value_bytes: f.get("--value-bytes")?.unwrap_or(256) };
        if clients.is_empty() || clients.contains(&0) || workloads.is_empty() || duration.is_zero() || shape.keys == 0 {
            bail!("need positive client counts, at least one workload, a positive duration and at least one key");
        }
        Ok(Self {
            raw: args.iter().map(|s| (*s).to_string()).collect(),
            clients,
            workloads,
            warmup,
            duration,
            backends,
            against_etcd,
            etcd_all_endpoints,
            shape,
            server_binary: f.get("--server-binary")?,
        })
    }
}

/// One system's rows, in (workload, clients) order.
pub struct Results {
    pub name: String,
    pub rows: Vec<(Workload, usize, Row)>,
    pub rss: Vec<(String, u64)>,
}

impl Results {
    pub fn row(&self, w: Workload, clients: usize) -> Option<&Row> {
        self.rows.iter().find(|(rw, c, _)| *rw == w && *c == clients).map(|(_, _, r)| r)
    }
}

/// Preload, then every row of `args` against `system`.
async fn measure(system: &dyn System, args: &ClusterBenchArgs) -> Result<Results> {
    println!("{}: preloading {} keys of {} bytes …", system.name(), args.shape.keys, args.shape.value_bytes);
    load::preload(system, args.shape, 64).await?;
    let mut rows = Vec::new();
    for &w in &args.workloads {
        for &c in &args.clients {
            let row = load::run_row(system, w, args.shape, c, args.warmup, args.duration).await?;
            println!(
                "  {:<6} {:>4} clients: {:>9.0} ops/s  p50 {:>8.0} µs  p99 {:>8.0} µs  errors {}",
                w.name(),
                c,
                row.ops_per_sec,
                row.us(0.50),
                row.us(0.99),
                row.errors
            );
            rows.push((w, c, row));
        }
    }
    let rss = system
        .processes()
        .into_iter()
        .map(|(name, pid)| (name, crate::cluster::procs::rss_of(pid).unwrap_or(0)))
        .collect();
    Ok(Results { name: system.name().to_string(), rows, rss })
}

/// Install the Debian packages that provide `binaries` if any is missing.
/// Install each package whose program (or, given as an absolute path, file) is missing.
fn ensure_installed(packages: &[(&str, &str)]) -> Result<()> {
    let present =
        |what: &str| if what.starts_with('/') { std::path::Path::new(what).exists() } else { which(what).is_some() };
    let missing: Vec<&str> = packages.iter().filter(|(what, _)| !present(what)).map(|(_, package)| *package).collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("installing {} (apt-get) …", missing.join(" "));
    let mut cmd = Command::new("apt-get");
    cmd.args(["install", "-y", "--no-install-recommends"]).args(&missing).env("DEBIAN_FRONTEND", "noninteractive");
    let out = crate::process::capture(&mut cmd, None, Duration::from_secs(15 * 60))?;
    if !out.success() {
        bail!("could not install {}: {}", missing.join(" "), out.describe());
    }
    Ok(())
}

fn which(bin: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| std::path::Path::new(d).join(bin)).find(|p| p.is_file())
}

pub fn run(args: &ClusterBenchArgs) -> Result<()> {
    if args.against_etcd {
        ensure_installed(&[
            ("etcd", "etcd-server"),
            ("protoc", "protobuf-compiler"),
            // etcd-client's protos import the well-known types.
            ("/usr/include/google/protobuf/descriptor.proto", "libprotobuf-dev"),
        ])?;
        if !cfg!(feature = "etcd") {
            // The etcd client needs protoc to build; only this run pays for it.
            println!("rebuilding xtask with its `etcd` feature (the etcd-client crate) …");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            // A target dir of its own: the etcd client's dependencies change
            // the features of shared ones, which would rebuild them every time.
            let root = crate::docker::build::workspace_root()?;
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| root.join("target"), std::path::PathBuf::from)
                .join("bench-etcd");
            let status = Command::new(cargo)
                .args(["run", "--quiet", "--release", "-p", "xtask", "--features", "etcd"])
                .arg("--target-dir")
                .arg(&target)
                .args(["--", "bench", "cluster"])
                .args(&args.raw)
                .status()?;
            if !status.success() {
                bail!("bench cluster (with etcd) failed: {status}");
            }
            return Ok(());
        }
    }
    let binary = match &args.server_binary {
        Some(path) => path.clone(),
        None => crate::cluster::raftkv::build_server(&args.backends)?,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    report::header(args);
    let ours = rt.block_on(async {
        let mut cluster = RaftKvCluster::start(&binary, &args.backends, 1, &[]).await?;
        let results = measure(&cluster, args).await?;
        cluster.check_alive()?;
        anyhow::Ok(results)
    })?;
    let theirs = if args.against_etcd { Some(rt.block_on(run_etcd(args))?) } else { None };
    report::print(args, &ours, theirs.as_ref());
    Ok(())
}

#[cfg(feature = "etcd")]
async fn run_etcd(args: &ClusterBenchArgs) -> Result<Results> {
    let endpoints = if args.etcd_all_endpoints { etcd::Endpoints::All } else { etcd::Endpoints::Leader };
    println!("{} ({endpoints:?} endpoints)", etcd::version());
    let mut cluster = etcd::EtcdCluster::start(endpoints).await?;
    let results = measure(&cluster, args).await?;
    for p in &mut cluster.procs {
        p.check_alive()?;
    }
    Ok(results)
}

#[cfg(not(feature = "etcd"))]
async fn run_etcd(_: &ClusterBenchArgs) -> Result<Results> {
    bail!("xtask was built without its `etcd` feature")
}
