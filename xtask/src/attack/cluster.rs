//! The cluster an attack runs against: 3 controllers and 1 or 2 ShardKV
//! groups × 3 replicas as separate `raftkv-server` processes on loopback
//! (gRPC), with a cluster token unless the run asks for an open cluster.
//! What an attack needs of it: clerks (each on a network client of its own
//! when asked, so that its connections are new), every member's status, a
//! group's leader, a member's pid, and a member's restart on its data dir.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use raftkv_core::api::{shard_of, NodeStatus, ServiceClient, ServiceRequest, ServiceResponse};
use raftkv_core::client::{ClerkConfig, CtrlClerk, KvClerk};
use raftkv_core::raft::core::Role;
use raftkv_core::{ClientId, GroupId, ShardId};

use super::findings::Findings;
use crate::cluster::procs::{data_root, free_addrs, Proc};
use crate::cluster::raftkv::net_client;

/// Shards of the cluster (the server's default).
pub const SHARDS: usize = 10;

/// What every attack's servers are started with.
#[derive(Clone, Debug)]
pub struct Setup {
    pub binary: PathBuf,
    pub storage: String,
    /// Whether the cluster runs with a cluster token (else open: anyone is a member).
    pub token: bool,
    /// `RAFTKV_*` settings for every server, from the command line.
    pub env: Vec<(String, String)>,
}

/// One server process and how to start it again.
struct Member {
    name: String,
    addr: String,
    cmd_args: Vec<String>,
    /// `None` only between a kill and the restart.
    proc: Option<Proc>,
    starts: u32,
}

/// The running cluster; every process is killed when it is dropped.
pub struct Cluster {
    setup: Setup,
    env: Vec<(String, String)>,
    dir: Option<tempfile::TempDir>,
    pub ctrl_peers: Vec<String>,
    pub groups: BTreeMap<GroupId, Vec<String>>,
    members: Vec<Member>,
    /// The member whose output a failed attack prints.
    watched: Option<String>,
    svc: Arc<dyn ServiceClient>,
    next_client: AtomicU64,
}

fn clerk_config(deadline: Duration) -> ClerkConfig {
    ClerkConfig { retry_pause: Duration::from_millis(20), deadline: Some(deadline) }
}

impl Cluster {
    /// Start the controllers and `groups` groups with `setup` and `env` (on
    /// top of the run's), join every group and write one key of every shard.
    pub async fn start(setup: &Setup, groups: usize, env: &[(&str, &str)]) -> Result<Self> {
        let dir = data_root("attack-")?;
        let token = setup.token.then(|| {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            format!("attack-token-{}-{nanos:x}", std::process::id())
        });
        let mut all_env: Vec<(String, String)> =
            env.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect();
        if let Some(t) = &token {
            let file = dir.path().join("cluster-token");
            std::fs::write(&file, t).with_context(|| format!("writing {}", file.display()))?;
            all_env.push(("RAFTKV_NET__CLUSTER_TOKEN_FILE".into(), file.display().to_string()));
        }
        all_env.extend(setup.env.iter().cloned());
        let addrs = free_addrs(3 + 3 * groups)?;
        let (ctrl, kv) = addrs.split_at(3);
        let groups: BTreeMap<GroupId, Vec<String>> =
            kv.chunks(3).enumerate().map(|(g, a)| (GroupId(g as u64 + 1), a.to_vec())).collect();
        let mut specs: Vec<(String, String, Vec<String>)> = Vec::new();
        for (i, a) in ctrl.iter().enumerate() {
            let args = member_args("ctrler", a, ctrl, i + 1, &setup.storage);
            specs.push((format!("ctrl-{}", i + 1), a.clone(), args));
        }
        for (g, addrs) in &groups {
            for (i, a) in addrs.iter().enumerate() {
                let mut args = member_args("shardkv", a, addrs, i + 1, &setup.storage);
                args.extend(["--group".into(), g.0.to_string(), "--ctrl-peers".into(), ctrl.join(",")]);
                specs.push((format!("g{}-{}", g.0, i + 1), a.clone(), args));
            }
        }
        let mut members = Vec::new();
        for (name, addr, mut cmd_args) in specs {
            cmd_args.extend(["--data-dir".into(), dir.path().join(&name).display().to_string()]);
            let proc = spawn(&setup.binary, &name, &addr, &cmd_args, &all_env, dir.path())?;
            members.push(Member { name, addr, cmd_args, proc: Some(proc), starts: 1 });
        }
        for p in members.iter_mut().filter_map(|m| m.proc.as_mut()) {
            p.wait_listening(Duration::from_secs(30))?;
        }
        let cluster = Self {
            setup: setup.clone(),
            env: all_env,
            dir: Some(dir),
            ctrl_peers: ctrl.to_vec(),
            groups,
            members,
            watched: None,
            svc: net_client("grpc")?,
            next_client: AtomicU64::new(u64::from(std::process::id()) << 32),
        };
        cluster.ctrl_clerk(Duration::from_secs(30)).join(cluster.groups.clone()).await.context("joining the groups")?;
        let mut clerk = cluster.clerk(Duration::from_secs(30));
        for s in 0..SHARDS as u64 {
            clerk.put(key_in(ShardId(s), "warm-up", 0), Bytes::from_static(b"1")).await.context("a first write")?;
        }
        Ok(cluster)
    }

    /// Where the servers' output and data are.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new("."), |d| d.path())
    }

    /// Keep the servers' output and data after the run (a failed attack).
    pub fn keep_dir(&mut self) -> Option<PathBuf> {
        self.dir.take().map(tempfile::TempDir::keep)
    }

    fn client_id(&self) -> ClientId {
        ClientId(self.next_client.fetch_add(1, Ordering::Relaxed))
    }

    pub fn ctrl_clerk(&self, deadline: Duration) -> CtrlClerk {
        CtrlClerk::new(self.ctrl_peers.clone(), self.svc.clone(), self.client_id(), clerk_config(deadline))
    }

    /// A clerk on the shared network client.
    pub fn clerk(&self, deadline: Duration) -> KvClerk {
        self.clerk_on(self.svc.clone(), deadline)
    }

    /// A clerk on `net` (a fresh client: connections opened now).
    pub fn clerk_on(&self, net: Arc<dyn ServiceClient>, deadline: Duration) -> KvClerk {
        let ctrl = CtrlClerk::new(self.ctrl_peers.clone(), net.clone(), self.client_id(), clerk_config(deadline));
        KvClerk::new(ctrl, net, self.client_id(), clerk_config(deadline))
    }

    /// Member `addr`'s status, if it answers within 2 s.
    pub async fn status(&self, addr: &str) -> Option<NodeStatus> {
        let call = self.svc.call_service(addr, ServiceRequest::Status);
        match tokio::time::timeout(Duration::from_secs(2), call).await {
            Ok(Ok(ServiceResponse::Status(Ok(s)))) => Some(s),
            _ => None,
        }
    }

    /// Every member of `group`'s status, in member order (`None`: no answer).
    pub async fn group_status(&self, group: GroupId) -> Vec<(String, Option<NodeStatus>)> {
        let mut out = Vec::new();
        for addr in self.groups.get(&group).into_iter().flatten() {
            out.push((addr.clone(), self.status(addr).await));
        }
        out
    }

    /// The address of `group`'s leader (the one member that says it leads
    /// at the highest term), waiting up to `limit` for one.
    pub async fn leader(&self, group: GroupId, limit: Duration) -> Result<String> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let view = self.group_status(group).await;
            let leaders = leaders(&view);
            if let [(addr, _)] = leaders.as_slice() {
                return Ok(addr.clone());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("group {group} has no single leader after {limit:?}: {}", describe(&view));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The pid of the process listening on `addr`.
    pub fn pid(&self, addr: &str) -> Option<u32> {
        self.members.iter().find(|m| m.addr == addr).and_then(|m| m.proc.as_ref()).map(Proc::pid)
    }

    /// The name (`g1-2`, …) of the member at `addr`.
    pub fn name(&self, addr: &str) -> String {
        self.members.iter().find(|m| m.addr == addr).map_or_else(|| addr.to_string(), |m| m.name.clone())
    }

    /// The last lines of the output of the member at `addr`.
    pub fn log_tail(&self, addr: &str) -> String {
        let member = self.members.iter().find(|m| m.addr == addr);
        member.and_then(|m| m.proc.as_ref()).map(Proc::log_text).unwrap_or_default()
    }

    /// Kill the member at `addr` (SIGKILL) and start it again on its data
    /// dir (its output goes to `<name>.<start>.log`); wait until it listens.
    pub fn restart(&mut self, addr: &str) -> Result<()> {
        let dir = self.dir().to_path_buf();
        let Some(m) = self.members.iter_mut().find(|m| m.addr == addr) else { bail!("no member at {addr}") };
        m.starts += 1;
        let name = format!("{}.{}", m.name, m.starts);
        // Dropping the old process kills and reaps it; the port is free again then.
        drop(m.proc.take());
        let fresh = m.proc.insert(spawn(&self.setup.binary, &name, &m.addr, &m.cmd_args, &self.env, &dir)?);
        fresh.wait_listening(Duration::from_secs(30))
    }

    /// An error naming every server that exited, with its output.
    pub fn check_alive(&mut self) -> Result<()> {
        self.members.iter_mut().filter_map(|m| m.proc.as_mut()).try_for_each(Proc::check_alive)
    }

    /// Name the member whose output a failed attack prints.
    pub fn watch(&mut self, addr: &str) {
        self.watched = Some(addr.to_string());
    }

    /// The end of every attack: an error it ended with is a failed claim;
    /// every server must still run; if a claim failed, print the watched
    /// member's last output and keep the servers' output and data.
    pub fn conclude(&mut self, mut f: Findings, outcome: Result<()>) -> Findings {
        if let Err(e) = outcome {
            f.check(false, format!("the attack could not run to its end: {e:#}"));
        }
        let alive = self.check_alive();
        f.check(
            alive.is_ok(),
            format!("every server still runs{}", alive.err().map(|e| format!(": {e:#}")).unwrap_or_default()),
        );
        if !f.failures().is_empty() {
            if let Some(addr) = &self.watched {
                f.note(format!("{}'s last output:\n{}", self.name(addr), self.log_tail(addr)));
            }
            if let Some(dir) = self.keep_dir() {
                f.note(format!("servers' output and data kept in {}", dir.display()));
            }
        }
        f
    }
}

fn member_args(role: &str, listen: &str, peers: &[String], me: usize, storage: &str) -> Vec<String> {
    [role, "--listen", listen, "--peers", &peers.join(","), "--me", &me.to_string()]
        .into_iter()
        .chain(["--transport", "grpc", "--storage", storage, "--log", "warn"])
        .map(String::from)
        .collect()
}

fn spawn(binary: &Path, name: &str, addr: &str, args: &[String], env: &[(String, String)], dir: &Path) -> Result<Proc> {
    let mut cmd = Command::new(binary);
    cmd.args(args).envs(env.iter().map(|(k, v)| (k, v)));
    Proc::spawn(name, addr, cmd, dir)
}

/// The members of `view` that say they lead, at the highest such term.
pub fn leaders(view: &[(String, Option<NodeStatus>)]) -> Vec<(String, u64)> {
    let said: Vec<(String, u64)> = view
        .iter()
        .filter_map(|(a, s)| s.as_ref().filter(|s| s.raft.role == Role::Leader).map(|s| (a.clone(), s.raft.term.0)))
        .collect();
    let top = said.iter().map(|(_, t)| *t).max();
    said.into_iter().filter(|(_, t)| Some(*t) == top).collect()
}

/// A group's statuses in words: each member's role and term.
pub fn describe(view: &[(String, Option<NodeStatus>)]) -> String {
    let words: Vec<String> = view
        .iter()
        .map(|(a, s)| match s {
            Some(s) => format!("{a} {:?} term {}", s.raft.role, s.raft.term.0),
            None => format!("{a} no answer"),
        })
        .collect();
    words.join(", ")
}

/// The `n`th key named `prefix-…` that falls in `shard`.
pub fn key_in(shard: ShardId, prefix: &str, n: usize) -> Bytes {
    let key = (0u64..)
        .map(|i| format!("{prefix}-{i}"))
        .filter(|k| shard_of(k.as_bytes(), SHARDS) == shard)
        .nth(n)
        .unwrap_or_default();
    Bytes::from(key)
}
