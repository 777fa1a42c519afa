//! `raftkv-server`: run one controller or ShardKV member, or (`dev`) a whole
//! cluster in one process.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use raftkv_core::GroupId;
use raftkv_server::admin::AdminServer;
use raftkv_server::backend::Net;
use raftkv_server::config::{Config, Role};
use raftkv_server::datadir::open_storage;
use raftkv_server::dev::DevCluster;
use raftkv_server::node::{resolve, Kind, Node, NodeProbe, NodeSpec};
use raftkv_server::setup::net_config;
use raftkv_server::telemetry::Telemetry;
use serde::Serialize;

/// mimalloc: the request path allocates small buffers from many threads,
/// where glibc's allocator cost about a tenth of the server's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Command-line flags; each overrides the same key of the file and environment.
#[derive(Debug, Parser, Serialize)]
#[command(
    name = "raftkv-server",
    version,
    about = "A RaftKV node: a shard controller member, a ShardKV member, or a whole dev cluster"
)]
struct Args {
    /// What to run.
    #[arg(value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<RoleArg>,
    /// Configuration file (default: ./raftkv.toml if present).
    #[arg(long)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// The cluster's name, recorded in every data dir it creates (default raftkv; give each cluster its own).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<String>,
    /// Address to listen on (host:port).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<String>,
    /// Directory of the durable state.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
    /// Transport: grpc or http.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    transport: Option<String>,
    /// Storage: redb, sqlite or mem.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    storage: Option<String>,
    /// The controller's addresses, comma-separated.
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    ctrl_peers: Option<Vec<String>>,
    /// This node's group (role shardkv).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<u64>,
    /// This node's group's servers, in order, comma-separated.
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    peers: Option<Vec<String>>,
    /// This node's position in --peers, from 1.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    me: Option<usize>,
    /// Admin HTTP address (/metrics, /health, …).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    admin_listen: Option<String>,
    /// Shards in the cluster (fixed when it is created).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    shards: Option<usize>,
    /// OTLP (gRPC) endpoint to export traces to, e.g. http://127.0.0.1:4317.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    otlp_endpoint: Option<String>,
    /// Log filter.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    log: Option<String>,
    /// The dev role's settings.
    #[command(flatten)]
    dev: DevFlags,
}

/// Flags of the `dev` role (keys `dev.*`).
#[derive(Debug, clap::Args, Serialize)]
struct DevFlags {
    /// dev: first port (controllers, then each group's replicas).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    base_port: Option<u16>,
    /// dev: do not join the groups (to replay a session from `Join 1` on).
    #[arg(long)]
    #[serde(skip)]
    no_join: bool,
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    join: Option<bool>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum RoleArg {
    Ctrler,
    Shardkv,
    Dev,
}

/// The stop signals, caught from the moment this is made (before `ready`
/// is printed, so a supervisor's SIGTERM right after it stops the node cleanly).
struct StopSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn catch() -> Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                term: signal(SignalKind::terminate()).context("SIGTERM handler")?,
                int: signal(SignalKind::interrupt()).context("SIGINT handler")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn wait(&mut self) -> Result<()> {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c().await.context("Ctrl-C handler")?;
        Ok(())
    }
}

/// Say loudly when peer traffic is not authenticated.
fn warn_if_open(cfg: &Config) {
    if cfg.net.tls.is_none() && cfg.net.cluster_token_file.is_none() {
        eprintln!(
            "warning: peer authentication is off (no net.tls, no net.cluster_token_file): any host that can reach \
             this node's port can act as a member of its group; see \"Security\" in the README"
        );
    }
}

fn report_cut(cut: usize) {
    if cut == 0 {
        eprintln!("stopped cleanly");
    } else {
        eprintln!("stopped; {cut} requests were still running after the grace period (their clients retry elsewhere)");
    }
}

/// Start the admin endpoint if `admin_listen` is set, and print its address.
async fn start_admin(cfg: &Config, nodes: Vec<NodeProbe>) -> Result<Option<AdminServer>> {
    if cfg.admin_listen.is_empty() {
        return Ok(None);
    }
    let admin = AdminServer::start(resolve(&cfg.admin_listen).await?, nodes).await?;
    println!("admin: http://{} (/metrics /health /livez /readyz /status)", admin.addr());
    Ok(Some(admin))
}

async fn stop_admin(admin: Option<AdminServer>) {
    if let Some(admin) = admin {
        admin.stop().await;
    }
}

async fn run(cfg: Config) -> Result<()> {
    let mut signals = StopSignals::catch()?;
    raftkv_server::setup::raise_descriptor_limit();
    warn_if_open(&cfg);
    match cfg.role {
        Role::Dev => {
            let cluster = DevCluster::start(&cfg).await?;
            println!(
                "dev cluster: transport {:?}, storage {:?}, data in {}",
                cfg.transport,
                cfg.storage,
                cfg.data_dir.display()
            );
            for (i, a) in cluster.ctrl_peers.iter().enumerate() {
                println!("ctrler-{i}: {a}");
            }
            for (g, servers) in &cluster.groups {
                println!("group {g}: {}", servers.join(","));
            }
            println!("ctrl-peers: {}", cluster.ctrl_peers.join(","));
            let admin = start_admin(&cfg, cluster.nodes().iter().map(Node::probe).collect()).await?;
            println!("ready");
            signals.wait().await?;
            let grace = Duration::from_millis(cfg.shutdown_grace_ms);
            eprintln!("shutting down: finishing requests in flight (at most {grace:?})");
            let cut = cluster.shutdown(grace).await;
            stop_admin(admin).await;
            report_cut(cut);
        }
        Role::Ctrler | Role::Shardkv => {
            let storage = open_storage(&cfg).await?;
            let net = Net::new(cfg.transport, net_config(&cfg)?)?;
            let kind = if cfg.role == Role::Ctrler {
                Kind::Ctrler
            } else {
                Kind::Shardkv {
                    group: GroupId(cfg.group),
                    ctrl_peers: cfg.ctrl_peers.clone(),
                    pull_chunk_bytes: cfg.pull_chunk_bytes,
                }
            };
            let spec = NodeSpec {
                kind,
                peers: cfg.peers.clone(),
                me: cfg.me,
                listen: resolve(&cfg.listen).await?,
                shards: cfg.shards,
                raft: cfg.raft.clone(),
            };
            let node = Node::start(spec, &storage, &net).await?;
            println!("{:?} {} of group {} listening on {}", cfg.role, cfg.me, node.group(), node.addr());
            let admin = start_admin(&cfg, vec![node.probe()]).await?;
            println!("ready");
            let group = node.group();
            tokio::select! {
                signal = signals.wait() => signal?,
                () = node.stopped() => {
                    node.shutdown().await;
                    stop_admin(admin).await;
                    let (role, me) = (cfg.role, cfg.me);
                    anyhow::bail!("{role:?} {me} of group {group} stopped: its Raft member failed (the error is logged above)");
                }
            }
            let grace = Duration::from_millis(cfg.shutdown_grace_ms);
            eprintln!("shutting down: handing off leadership, finishing requests in flight (at most {grace:?})");
            node.hand_off_leadership(grace).await;
            let cut = node.drain(grace).await;
            node.shutdown().await;
            stop_admin(admin).await;
            report_cut(cut);
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let mut args = Args::parse();
    if args.dev.no_join {
        args.dev.join = Some(false);
    }
    let file = args.config.clone();
    let config = match Config::load(file.as_deref(), &args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("raftkv-server: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("raftkv-server: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let telemetry =
        match runtime.block_on(async { Telemetry::init(&config.log, &config.otlp_endpoint, &config.trace_filter) }) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("raftkv-server: {e:#}");
                return std::process::ExitCode::from(2);
            }
        };
    let outcome = runtime.block_on(run(config));
    runtime.block_on(async { telemetry.shutdown() });
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raftkv-server: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
