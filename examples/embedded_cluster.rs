//! A whole RaftKV cluster embedded in one process through the server crate's
//! library: the `dev` role's [`DevCluster`] (three controllers, two ShardKV
//! groups of three replicas) on free localhost ports with its data in a
//! temporary directory, then a client — the core's clerks over the same
//! transport — doing Put, Get, Append and Delete on keys of both groups and
//! a Query of the controller's configuration, and finally a shutdown.
//!
//! The configuration is built in code ([`Config`] literal + `validate`); a
//! program that wants the binary's layering (defaults < `raftkv.toml` <
//! `RAFTKV_*` < flags) calls [`Config::load`] instead.
//!
//! Run with `cargo run -p raftkv-examples --example embedded_cluster`; exits
//! non-zero if the cluster does not start or answers anything unexpected.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use raftkv_core::api::{shard_of, ShardConfig};
use raftkv_core::client::{ClerkConfig, CtrlClerk, KvClerk};
use raftkv_core::raft::core::Role as RaftRole;
use raftkv_core::{Bytes, ClientId, ConfigNum, GroupId};
use raftkv_server::backend::Net;
use raftkv_server::config::{Config, DevSettings, Role, StorageKind, TransportKind};
use raftkv_server::dev::DevCluster;
use raftkv_server::node::CTRL_GROUP;
use raftkv_server::setup::net_config;

/// Controllers + groups × replicas: the ports the default dev cluster takes.
const NODES: u16 = 3 + 2 * 3;
/// Attempts at starting the cluster on a fresh block of ports.
const START_ATTEMPTS: u64 = 5;

/// The first of `count` consecutive ports that are free right now, below
/// Linux's ephemeral range (so outgoing connections do not take them).
/// `DevCluster` computes every address from `dev.base_port` before it
/// listens, so it cannot be given port 0.
fn free_ports(count: u16, attempt: u64) -> Result<u16> {
    let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let seed = u64::from(std::process::id()).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(clock);
    for probe in 0..200u64 {
        let offset = seed.wrapping_add((attempt * 200 + probe) * 7919) % 12_000;
        let base = 20_000 + u16::try_from(offset).context("port offset")?;
        let held: Vec<TcpListener> =
            (0..count).map_while(|i| TcpListener::bind(("127.0.0.1", base + i)).ok()).collect();
        if held.len() == usize::from(count) {
            return Ok(base);
        }
    }
    bail!("found no {count} consecutive free ports on 127.0.0.1")
}

/// The configuration of a dev cluster from `base_port`, keeping its data in
/// `data_dir`, on gRPC and redb (the features this example enables).
fn dev_config(data_dir: &Path, base_port: u16) -> Result<Config> {
    let (transport, storage) = (TransportKind::Grpc, StorageKind::Redb);
    let cfg = Config {
        role: Role::Dev,
        data_dir: data_dir.to_path_buf(),
        transport,
        storage,
        dev: DevSettings { host: "127.0.0.1".into(), base_port, ..DevSettings::default() },
        ..Config::default()
    };
    cfg.validate()?;
    Ok(cfg)
}

/// Start the cluster; if its ports were taken meanwhile, try another block
/// (and another data directory, as a failed start may leave members open).
async fn start_cluster(root: &Path) -> Result<(DevCluster, Config)> {
    let mut last = None;
    for attempt in 0..START_ATTEMPTS {
        let cfg = dev_config(&root.join(format!("attempt-{attempt}")), free_ports(NODES, attempt)?)?;
        match DevCluster::start(&cfg).await {
            Ok(cluster) => return Ok((cluster, cfg)),
            Err(e) => {
                eprintln!("   starting on port {} failed ({e:#}); trying other ports", cfg.dev.base_port);
                last = Some(e);
            }
        }
    }
    Err(last.map_or_else(|| anyhow::anyhow!("the cluster never started"), |e| e.context("starting the dev cluster")))
}

/// A key whose shard `config` assigns to `group`.
fn key_of(config: &ShardConfig, group: GroupId) -> Result<String> {
    (0..10_000)
        .map(|i| format!("user:{i}"))
        .find(|k| config.shards.get(shard_of(k.as_bytes(), config.shards.len()).0 as usize) == Some(&group))
        .with_context(|| format!("no shard of configuration {} is assigned to group {group}", config.num))
}

async fn get(kv: &mut KvClerk, key: &str) -> Result<Option<String>> {
    let value = kv.get(Bytes::from(key.to_string())).await.with_context(|| format!("Get {key}"))?;
    Ok(value.map(|v| String::from_utf8_lossy(&v).into_owned()))
}

async fn expect(kv: &mut KvClerk, key: &str, want: Option<&str>) -> Result<()> {
    let got = get(kv, key).await?;
    ensure!(got.as_deref() == want, "Get {key}: expected {want:?}, got {got:?}");
    println!("   Get {key} -> {}", got.as_deref().unwrap_or("(missing)"));
    Ok(())
}

fn describe(config: &ShardConfig) -> String {
    let shards: Vec<String> = config.shards.iter().map(ToString::to_string).collect();
    let groups: Vec<String> = config.groups.iter().map(|(g, s)| format!("group {g}: {}", s.join(","))).collect();
    format!("config #{}: shards -> groups [{}]; {}", config.num, shards.join(" "), groups.join("; "))
}

#[tokio::main]
async fn main() -> Result<()> {
    let started = Instant::now();
    // Warnings and errors of the cluster go to stderr.
    let filter = tracing_subscriber::EnvFilter::try_new("warn").context("log filter")?;
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init().ok();
    let dir = tempfile::tempdir().context("creating a temporary data directory")?;

    println!("1. Start a dev cluster in this process");
    let (cluster, cfg) = start_cluster(dir.path()).await?;
    println!("   {:?} over {:?}, data in {}", cfg.storage, cfg.transport, cfg.data_dir.display());
    println!("   controllers: {}", cluster.ctrl_peers.join(","));
    for (g, servers) in &cluster.groups {
        println!("   group {g}:     {}", servers.join(","));
    }
    println!("   started in {} ms", started.elapsed().as_millis());

    // The client side: the same transport's connection pool, and the core's
    // clerks (which retry with the same request id, follow leader hints and
    // route each key by its shard).
    let net = Net::new(cfg.transport, net_config(&cfg)?)?;
    let clerk_cfg = ClerkConfig { retry_pause: Duration::from_millis(50), deadline: Some(Duration::from_secs(15)) };
    let client = |n: u64| ClientId(u64::from(std::process::id()) << 8 | n);
    let mut ctrl = CtrlClerk::new(cluster.ctrl_peers.clone(), net.services(), client(1), clerk_cfg.clone());

    println!("2. Query the controller");
    let config = ctrl.query(None).await.context("Query")?;
    println!("   {}", describe(&config));
    ensure!(config.groups.len() == 2, "expected both groups to have joined, got {}", describe(&config));
    ensure!(
        config.shards.iter().all(|g| config.groups.contains_key(g)),
        "a shard is not assigned to a joined group: {}",
        describe(&config)
    );
    let first = ctrl.query(Some(ConfigNum(1))).await.context("Query 1")?;
    println!("   {}", describe(&first));

    println!("3. Put, Get, Append and Delete on keys of both groups");
    let kv_ctrl = CtrlClerk::new(cluster.ctrl_peers.clone(), net.services(), client(2), clerk_cfg.clone());
    let mut kv = KvClerk::new(kv_ctrl, net.services(), client(3), clerk_cfg);
    for group in config.groups.keys().copied() {
        let key = key_of(&config, group)?;
        let shard = shard_of(key.as_bytes(), config.shards.len());
        println!("   {key} is in shard {shard}, served by group {group}");
        kv.put(key.clone(), "hello").await.with_context(|| format!("Put {key}"))?;
        println!("   Put {key} hello");
        expect(&mut kv, &key, Some("hello")).await?;
        kv.append(key.clone(), ", world").await.with_context(|| format!("Append {key}"))?;
        println!("   Append {key} \", world\"");
        expect(&mut kv, &key, Some("hello, world")).await?;
        kv.delete(key.clone()).await.with_context(|| format!("Delete {key}"))?;
        println!("   Delete {key}");
        expect(&mut kv, &key, None).await?;
    }

    println!("4. Every node's view");
    for node in cluster.nodes() {
        let status = node.status().await.with_context(|| format!("status of {}", node.addr()))?;
        let role = match status.raft.role {
            RaftRole::Leader => "leader",
            RaftRole::Follower => "follower",
            RaftRole::PreCandidate | RaftRole::Candidate => "candidate",
        };
        let group =
            if status.group == CTRL_GROUP { "controller".to_string() } else { format!("group {}", status.group) };
        println!(
            "   {:<16} {group:<10} {role:<9} term {} applied {}",
            node.addr(),
            status.raft.term,
            status.raft.applied
        );
    }

    println!("5. Shut down");
    let cut = cluster.shutdown(Duration::from_secs(2)).await;
    println!("   stopped ({cut} requests cut short); finished in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
