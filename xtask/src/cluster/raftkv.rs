//! RaftKV under test: a 3-member controller group and 3-replica ShardKV
//! groups as real `raftkv-server` processes on loopback; sessions are
//! [`KvClerk`]s sharing one network client (one connection per server).

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use async_trait::async_trait;
use bytes::Bytes;
use raftkv_core::api::ServiceClient;
use raftkv_core::client::{ClerkConfig, CtrlClerk, KvClerk};
use raftkv_core::{ClientId, GroupId};
use raftkv_wire::net::NetConfig;

use super::procs::{data_root, free_addrs, Proc};
use crate::bench::cluster::load::{Session, System};
use crate::process;

/// Which backends the servers use.
#[derive(Clone, Debug)]
pub struct Backends {
    pub transport: String,
    pub storage: String,
}

impl Backends {
    pub fn check(&self) -> Result<()> {
        if !matches!(self.transport.as_str(), "grpc" | "http") {
            bail!("unknown transport `{}`; the transports are grpc and http", self.transport);
        }
        if !matches!(self.storage.as_str(), "redb" | "sqlite" | "mem") {
            bail!("unknown storage `{}`; the storages are redb, sqlite and mem", self.storage);
        }
        Ok(())
    }

    pub fn label(&self) -> String {
        format!("raftkv ({}+{})", self.transport, self.storage)
    }
}

/// Build `raftkv-server` (release) with exactly the chosen backends; its path.
pub fn build_server(b: &Backends) -> Result<PathBuf> {
    let root = crate::docker::build::workspace_root()?;
    // A target dir of its own: xtask's dependencies are built with other
    // features, and sharing one dir would rebuild both every time.
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from).join("bench-server");
    build_server_in(b, &root, &target)
}

/// Build `raftkv-server` of the workspace at `root` into `target`; its path.
pub fn build_server_in(b: &Backends, root: &std::path::Path, target: &std::path::Path) -> Result<PathBuf> {
    let features = format!("{},{}", b.transport, b.storage);
    println!("building raftkv-server (release, features {features}) from {} …", root.display());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root).args(["build", "--release", "-p", "raftkv-server", "--bin", "raftkv-server"]).args([
        "--no-default-features",
        "--features",
        &features,
    ]);
    cmd.arg("--target-dir").arg(target);
    let out = process::capture(&mut cmd, None, Duration::from_secs(60 * 60))?;
    if !out.success() {
        bail!("building raftkv-server failed: {}", out.describe());
    }
    Ok(target.join("release").join("raftkv-server"))
}

/// The running cluster.
pub struct RaftKvCluster {
    label: String,
    ctrl_peers: Vec<String>,
    net: Arc<dyn ServiceClient>,
    next_client: AtomicU64,
    /// The ShardKV replicas (group by group), then the controllers.
    pub procs: Vec<Proc>,
    /// Each group's replicas' addresses, from group 1.
    pub groups: Vec<Vec<String>>,
    _dir: tempfile::TempDir,
}

pub fn net_client(transport: &str) -> Result<Arc<dyn ServiceClient>> {
    let cfg = NetConfig::default();
    Ok(match transport {
        "http" => Arc::new(raftkv_transport_http::HttpClient::new(cfg)?),
        _ => Arc::new(raftkv_transport_grpc::GrpcClient::new(cfg)?),
    })
}

fn clerk_config() -> ClerkConfig {
    ClerkConfig { retry_pause: Duration::from_millis(20), deadline: Some(Duration::from_secs(15)) }
}

impl RaftKvCluster {
    /// Start the controllers and `groups` groups' replicas with `binary`,
    /// join the groups, and wait until the cluster serves a write.
    pub async fn start(binary: &std::path::Path, b: &Backends, groups: usize, extra: &[String]) -> Result<Self> {
        let dir = data_root("bench-raftkv-")?;
        let addrs = free_addrs(3 + 6 * groups)?;
        let (ctrl, rest) = addrs.split_at(3);
        let (kv_all, admin_all) = rest.split_at(3 * groups);
        let common = |role: &str, me: usize, listen: &str, peers: &[String], data: &str| {
            let mut cmd = Command::new(binary);
            cmd.args([role, "--listen", listen, "--peers", &peers.join(","), "--me", &me.to_string()])
                .args(["--data-dir", data, "--transport", &b.transport, "--storage", &b.storage, "--log", "warn"])
                .args(extra);
            cmd
        };
        let mut procs = Vec::new();
        let kv_groups: Vec<Vec<String>> = kv_all.chunks(3).map(<[String]>::to_vec).collect();
        for (g, (kv, admin)) in kv_groups.iter().zip(admin_all.chunks(3)).enumerate() {
            let gid = (g + 1).to_string();
            for (i, a) in kv.iter().enumerate() {
                let name = format!("g{gid}-{}", i + 1);
                let data = dir.path().join(&name);
                let mut cmd = common("shardkv", i + 1, a, kv, &data.display().to_string());
                cmd.args(["--group", &gid, "--ctrl-peers", &ctrl.join(","), "--admin-listen", &admin[i]]);
                procs.push(Proc::spawn(&name, a, cmd, dir.path())?);
            }
        }
        for (i, a) in ctrl.iter().enumerate() {
            let data = dir.path().join(format!("ctrler-{}", i + 1));
            let cmd = common("ctrler", i + 1, a, ctrl, &data.display().to_string());
            procs.push(Proc::spawn(&format!("ctrler-{}", i + 1), a, cmd, dir.path())?);
        }
        for p in &mut procs {
            p.wait_listening(Duration::from_secs(30))?;
        }
        println!("replicas' admin endpoints (/metrics, /status): {}", admin_all.join(", "));
        let net = net_client(&b.transport)?;
        let cluster = Self {
            label: b.label(),
            ctrl_peers: ctrl.to_vec(),
            net,
            next_client: AtomicU64::new(u64::from(std::process::id()) << 32),
            procs,
            groups: kv_groups,
            _dir: dir,
        };
        let mut ctrl_clerk = cluster.ctrl_clerk();
        let joins = cluster.groups.iter().enumerate().map(|(g, kv)| (GroupId(g as u64 + 1), kv.clone())).collect();
        ctrl_clerk.join(joins).await.context("joining the groups")?;
        let mut probe = cluster.clerk();
        probe.put(Bytes::from_static(b"bench-probe"), Bytes::from_static(b"1")).await.context("first write")?;
        Ok(cluster)
    }

    fn client_id(&self) -> ClientId {
        ClientId(self.next_client.fetch_add(1, Ordering::Relaxed))
    }

    pub fn ctrl_clerk(&self) -> CtrlClerk {
        CtrlClerk::new(self.ctrl_peers.clone(), self.net.clone(), self.client_id(), clerk_config())
    }

    /// The network client the sessions share.
    pub fn net(&self) -> Arc<dyn ServiceClient> {
        self.net.clone()
    }

    pub fn clerk(&self) -> KvClerk {
        KvClerk::new(self.ctrl_clerk(), self.net.clone(), self.client_id(), clerk_config())
    }

    /// Fail if a server died.
    pub fn check_alive(&mut self) -> Result<()> {
        self.procs.iter_mut().try_for_each(Proc::check_alive)
    }
}

struct ClerkSession(KvClerk);

#[async_trait]
impl Session for ClerkSession {
    async fn put(&mut self, key: Bytes, value: Bytes) -> Result<()> {
        Ok(self.0.put(key, value).await?)
    }

    async fn get(&mut self, key: Bytes) -> Result<bool> {
        Ok(self.0.get(key).await?.is_some())
    }
}

#[async_trait]
impl System for RaftKvCluster {
    fn name(&self) -> &str {
        &self.label
    }

    async fn session(&self) -> Result<Box<dyn Session>> {
        Ok(Box::new(ClerkSession(self.clerk())))
    }

    fn processes(&self) -> Vec<(String, u32)> {
        self.procs.iter().map(|p| (p.name.clone(), p.pid())).collect()
    }
}
