//! etcd under test: Debian's `etcd-server` (installed if missing), 3 members
//! on loopback with their default durability (every WAL write fsynced),
//! driven through the `etcd-client` crate; gets are linearizable (etcd's
//! default, a ReadIndex round), the same guarantee RaftKV gives.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{Client, KvClient};

use super::load::{Session, System};
use crate::cluster::procs::{data_root, free_addrs, Proc};

/// Which etcd members the sessions talk to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoints {
    /// Only the leader (no forwarding hop: etcd's best case, and what the
    /// RaftKV clerk does).
    Leader,
    /// All three, balanced by the client.
    All,
}

/// The running etcd cluster.
pub struct EtcdCluster {
    pub procs: Vec<Proc>,
    client: Client,
    _dir: tempfile::TempDir,
}

async fn connect(endpoints: &[String]) -> Result<Client> {
    let urls: Vec<String> = endpoints.iter().map(|a| format!("http://{a}")).collect();
    Client::connect(urls, None).await.context("connecting to etcd")
}

impl EtcdCluster {
    /// Start 3 members and wait for a leader.
    pub async fn start(endpoints: Endpoints) -> Result<Self> {
        let dir = data_root("bench-etcd-")?;
        let addrs = free_addrs(6)?;
        let (client_addrs, peer_addrs) = addrs.split_at(3);
        let initial: Vec<String> =
            peer_addrs.iter().enumerate().map(|(i, a)| format!("m{}=http://{a}", i + 1)).collect();
        let mut procs = Vec::new();
        for i in 0..3 {
            let name = format!("m{}", i + 1);
            let mut cmd = Command::new("etcd");
            cmd.args(["--name", &name])
                .args(["--data-dir", &dir.path().join(&name).display().to_string()])
                .args(["--listen-client-urls", &format!("http://{}", client_addrs[i])])
                .args(["--advertise-client-urls", &format!("http://{}", client_addrs[i])])
                .args(["--listen-peer-urls", &format!("http://{}", peer_addrs[i])])
                .args(["--initial-advertise-peer-urls", &format!("http://{}", peer_addrs[i])])
                .args(["--initial-cluster", &initial.join(",")])
                .args(["--initial-cluster-state", "new", "--initial-cluster-token", "raftkv-bench"])
                .args(["--logger", "zap", "--log-level", "warn"]);
            procs.push(Proc::spawn(&format!("etcd-{name}"), &client_addrs[i], cmd, dir.path())?);
        }
        for p in &mut procs {
            p.wait_listening(Duration::from_secs(30))?;
        }
        let leader = wait_for_leader(client_addrs).await?;
        let chosen: Vec<String> = match endpoints {
            Endpoints::Leader => vec![leader],
            Endpoints::All => client_addrs.to_vec(),
        };
        let client = connect(&chosen).await?;
        Ok(Self { procs, client, _dir: dir })
    }
}

/// The client address of the member that is leader, once one is.
async fn wait_for_leader(addrs: &[String]) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for a in addrs {
            if let Ok(mut c) = connect(std::slice::from_ref(a)).await {
                if let Ok(s) = c.status().await {
                    if s.leader() != 0 && s.header().map(|h| h.member_id()) == Some(s.leader()) {
                        return Ok(a.clone());
                    }
                }
            }
        }
        if Instant::now() >= deadline {
            bail!("etcd elected no leader within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct EtcdSession(KvClient);

#[async_trait]
impl Session for EtcdSession {
    async fn put(&mut self, key: Bytes, value: Bytes) -> Result<()> {
        self.0.put(key.to_vec(), value.to_vec(), None).await.map(|_| ()).map_err(|e| anyhow!("etcd put: {e}"))
    }

    async fn get(&mut self, key: Bytes) -> Result<bool> {
        let r = self.0.get(key.to_vec(), None).await.map_err(|e| anyhow!("etcd get: {e}"))?;
        Ok(!r.kvs().is_empty())
    }
}

#[async_trait]
impl System for EtcdCluster {
    fn name(&self) -> &str {
        "etcd 3.4"
    }

    async fn session(&self) -> Result<Box<dyn Session>> {
        Ok(Box::new(EtcdSession(self.client.kv_client())))
    }

    fn processes(&self) -> Vec<(String, u32)> {
        self.procs.iter().map(|p| (p.name.clone(), p.pid())).collect()
    }
}

/// `etcd --version`'s first line.
pub fn version() -> String {
    Command::new("etcd")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "etcd (version unknown)".into())
}
