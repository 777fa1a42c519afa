//! The cluster under chaos: 3 controllers and 2 groups × 3 replicas, one
//! per namespace; clerks for the clients; finding a group's leader; the
//! probe that tells when every shard serves again; applying and healing
//! one fault.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use raftkv_core::api::{shard_of, ServiceClient, ServiceRequest, ServiceResponse};
use raftkv_core::client::{ClerkConfig, CtrlClerk, KvClerk};
use raftkv_core::raft::core::Role as RaftRole;
use raftkv_core::{ClientId, GroupId, ShardId};

use super::delay::Delayer;
use super::nemesis::{Fault, Partition, Target};
use super::net::Net;
use super::nodes::{Node, Role};

/// Shards of the cluster (the server's default).
pub const SHARDS: usize = 10;
/// The service port of every node (each has its own address).
const PORT: u16 = 7000;

/// What a fault left to undo.
pub enum Applied {
    Killed(usize),
    Paused(usize),
    Network,
    Delayed(Delayer),
    /// Nothing could be done (say, no leader to hit); nothing to heal.
    Nothing,
}

pub struct Cluster {
    pub nodes: Mutex<Vec<Node>>,
    pub roles: Vec<Role>,
    pub addrs: Vec<String>,
    pub net: Net,
    pub ctrl_peers: Vec<String>,
    pub groups: BTreeMap<GroupId, Vec<String>>,
    svc: Arc<dyn ServiceClient>,
    next_client: AtomicU64,
    pub storage: String,
}

fn clerk_config(deadline: Duration) -> ClerkConfig {
    ClerkConfig { retry_pause: Duration::from_millis(20), deadline: Some(deadline) }
}

impl Cluster {
    /// Make the namespaces and start every node.
    pub fn start(binary: &Path, transport: &str, storage: &str, dir: &Path) -> Result<Self> {
        let mut roles = vec![Role::Ctrl; 3];
        roles.extend([Role::Kv(1); 3]);
        roles.extend([Role::Kv(2); 3]);
        let net = Net::create(roles.len())?;
        let addrs: Vec<String> = net.hosts.iter().map(|h| format!("{}:{PORT}", h.ip)).collect();
        let members = |r: Role| -> Vec<String> {
            (0..roles.len()).filter(|&i| roles[i] == r).map(|i| addrs[i].clone()).collect()
        };
        let ctrl_peers = members(Role::Ctrl);
        let groups: BTreeMap<GroupId, Vec<String>> =
            [1, 2].into_iter().map(|g| (GroupId(g), members(Role::Kv(g)))).collect();
        let mut nodes = Vec::new();
        let mut seen: BTreeMap<Role, u64> = BTreeMap::new();
        for (i, &role) in roles.iter().enumerate() {
            let me = {
                let n = seen.entry(role).or_default();
                *n += 1;
                *n
            };
            let (name, peers, mut args) = match role {
                Role::Ctrl => (format!("ctrl-{me}"), ctrl_peers.clone(), vec!["ctrler".to_string()]),
                Role::Kv(g) => (
                    format!("g{g}-{me}"),
                    members(role),
                    vec![
                        "shardkv".into(),
                        "--group".into(),
                        g.to_string(),
                        "--ctrl-peers".into(),
                        ctrl_peers.join(","),
                    ],
                ),
            };
            args.extend(
                [
                    "--listen",
                    &addrs[i],
                    "--peers",
                    &peers.join(","),
                    "--me",
                    &me.to_string(),
                    "--transport",
                    transport,
                    "--storage",
                    storage,
                    "--log",
                    "warn",
                ]
                .map(String::from),
            );
            nodes.push(Node::new(name, role, me, net.hosts[i].netns.clone(), binary, args, dir));
        }
        for n in &mut nodes {
            n.start()?;
        }
        let svc = crate::cluster::raftkv::net_client(transport)?;
        let cluster = Self {
            nodes: Mutex::new(nodes),
            roles,
            addrs,
            net,
            ctrl_peers,
            groups,
            svc,
            next_client: AtomicU64::new(u64::from(std::process::id()) << 32),
            storage: storage.to_string(),
        };
        for i in 0..cluster.addrs.len() {
            cluster.wait_listening(i, Duration::from_secs(30))?;
        }
        Ok(cluster)
    }

    pub fn nodes(&self) -> MutexGuard<'_, Vec<Node>> {
        self.nodes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait_listening(&self, i: usize, limit: Duration) -> Result<()> {
        let waited =
            crate::cluster::procs::wait_until_listening(&self.addrs[i], limit, || self.nodes()[i].check_alive());
        waited.with_context(|| self.nodes()[i].name.clone())
    }

    fn client_id(&self) -> ClientId {
        ClientId(self.next_client.fetch_add(1, Ordering::Relaxed))
    }

    pub fn ctrl_clerk(&self, deadline: Duration) -> CtrlClerk {
        CtrlClerk::new(self.ctrl_peers.clone(), self.svc.clone(), self.client_id(), clerk_config(deadline))
    }

    pub fn clerk(&self, deadline: Duration) -> KvClerk {
        KvClerk::new(self.ctrl_clerk(deadline), self.svc.clone(), self.client_id(), clerk_config(deadline))
    }

    /// The node leading `role`'s group now (the highest term among those
    /// that say they lead), if any answers.
    pub async fn leader(&self, role: Role) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for i in (0..self.roles.len()).filter(|&i| self.roles[i] == role) {
            let call = self.svc.call_service(&self.addrs[i], ServiceRequest::Status);
            if let Ok(Ok(ServiceResponse::Status(Ok(s)))) = tokio::time::timeout(Duration::from_secs(1), call).await {
                if s.raft.role == RaftRole::Leader && best.is_none_or(|(t, _)| s.raft.term.0 > t) {
                    best = Some((s.raft.term.0, i));
                }
            }
        }
        best.map(|(_, i)| i)
    }

    async fn resolve(&self, t: Target) -> Option<usize> {
        match t {
            Target::Node(i) => Some(i),
            Target::Leader(role) => self.leader(role).await,
        }
    }

    /// Inject `fault`; what it did, in words, and what to heal.
    pub async fn apply(&self, fault: &Fault, seed: u64) -> Result<(String, Applied)> {
        let name = |i: usize| self.nodes()[i].name.clone();
        Ok(match fault {
            Fault::Kill(t) | Fault::Pause(t) => {
                let Some(i) = self.resolve(*t).await else {
                    return Ok(("no leader answered; skipped".into(), Applied::Nothing));
                };
                if matches!(fault, Fault::Kill(_)) {
                    tokio::task::block_in_place(|| self.nodes()[i].kill())?;
                    (format!("killed {}", name(i)), Applied::Killed(i))
                } else {
                    tokio::task::block_in_place(|| self.nodes()[i].pause())?;
                    (format!("paused {}", name(i)), Applied::Paused(i))
                }
            }
            Fault::Partition(p) => {
                let everyone: Vec<usize> = (0..self.roles.len()).collect();
                let what = match p {
                    Partition::IsolateLeader(role) => {
                        let Some(l) = self.leader(*role).await else {
                            return Ok(("no leader answered; skipped".into(), Applied::Nothing));
                        };
                        tokio::task::block_in_place(|| self.net.cut(&[l], &everyone))?;
                        format!("isolated {}", name(l))
                    }
                    Partition::Split(side) => {
                        let rest: Vec<usize> = everyone.iter().copied().filter(|i| !side.contains(i)).collect();
                        tokio::task::block_in_place(|| self.net.cut(side, &rest))?;
                        format!("split {:?} from the rest", side.iter().map(|&i| name(i)).collect::<Vec<_>>())
                    }
                    Partition::Bridge(chain) => {
                        for (a, &x) in chain.iter().enumerate() {
                            for &y in chain.iter().skip(a + 2) {
                                tokio::task::block_in_place(|| self.net.cut(&[x], &[y]))?;
                            }
                        }
                        format!("bridge {}", chain.iter().map(|&i| name(i)).collect::<Vec<_>>().join(" – "))
                    }
                };
                (what, Applied::Network)
            }
            Fault::Loss(p) => {
                tokio::task::block_in_place(|| self.net.lose(*p))?;
                (format!("dropping {:.0} % of packets", p * 100.0), Applied::Network)
            }
            Fault::Delay(d) => {
                let delayer = Delayer::start(*d, seed)?;
                tokio::task::block_in_place(|| self.net.delay())?;
                (format!("delaying packets {}–{} ms", d.base_ms, d.base_ms + d.jitter_ms), Applied::Delayed(delayer))
            }
        })
    }

    /// Undo what [`Self::apply`] did.
    pub fn heal(&self, applied: Applied) -> Result<()> {
        match applied {
            Applied::Killed(i) => {
                self.nodes()[i].start()?;
                self.wait_listening(i, Duration::from_secs(30))
            }
            Applied::Paused(i) => self.nodes()[i].resume(),
            Applied::Network => self.net.heal(),
            Applied::Delayed(d) => {
                self.net.heal()?;
                let packets = d.stop()?;
                println!("    (the delay fault held {packets} packets)");
                Ok(())
            }
            Applied::Nothing => Ok(()),
        }
    }

    /// Heal everything: every node running and resumed, the network whole.
    /// Names nodes that had exited by themselves (crashes).
    pub fn heal_all(&self) -> Result<Vec<String>> {
        self.net.heal()?;
        let mut crashed = Vec::new();
        for i in 0..self.roles.len() {
            let restart = {
                let mut nodes = self.nodes();
                nodes[i].resume()?;
                if let Err(e) = nodes[i].check_alive() {
                    crashed.push(e.to_string());
                }
                !nodes[i].running()
            };
            if restart {
                self.nodes()[i].start()?;
                self.wait_listening(i, Duration::from_secs(30))?;
            }
        }
        Ok(crashed)
    }

    /// Time until a write and a read of every shard succeed, each through
    /// a new clerk, and any read that did not return the value just written
    /// (a consistency violation); an error if some shard does not serve
    /// within `limit`.
    pub async fn probe(&self, limit: Duration) -> Result<(Duration, Vec<String>)> {
        let started = Instant::now();
        let tasks: Vec<_> = (0..SHARDS as u64)
            .map(|s| {
                let key = (0u64..)
                    .map(|i| format!("probe-{i}"))
                    .find(|k| shard_of(k.as_bytes(), SHARDS) == ShardId(s))
                    .unwrap_or_default();
                let mut clerk = self.clerk(limit);
                let value = Bytes::from(format!("{}.{s}", self.next_client.fetch_add(1, Ordering::Relaxed)));
                tokio::spawn(async move {
                    clerk.put(key.clone(), value.clone()).await.with_context(|| format!("writing {key}"))?;
                    let got = clerk.get(key.clone()).await.with_context(|| format!("reading {key}"))?;
                    anyhow::Ok(
                        (got.as_ref() != Some(&value))
                            .then(|| format!("probe: {key} read {got:?} right after the same clerk wrote {value:?}")),
                    )
                })
            })
            .collect();
        let mut violations = Vec::new();
        for t in tasks {
            violations.extend(t.await.context("a probe task")??);
        }
        Ok((started.elapsed(), violations))
    }
}
