//! A randomized fault scenario ("nemesis") for a simulated 5-member Raft group.
//!
//! [`raft_nemesis`] runs one seed: three client loops propose unique commands
//! while a nemesis loop disconnects, partitions, crashes and restarts members,
//! makes the network unreliable, reorders replies, fills and frees disks,
//! forges Raft requests with the largest term from an outsider and transfers
//! leadership for 30 s of virtual time. Afterwards it heals everything and checks that
//! the group recovers, that every acknowledged command is committed where its
//! proposer was told, that no command was committed twice, and that the
//! invariant checker saw no violation.
//!
//! Every choice comes from the seed, so a failing seed replays exactly.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::RwLock;
use tokio::time::{sleep, timeout, Instant};

use super::forgery::forgeries;
use super::{cmd, cmd_value, RaftCluster, RaftClusterConfig};
use raftkv_core::raft::core::{Role, Status};
use raftkv_core::rng::DetRng;
use raftkv_core::transport::Transport;
use raftkv_core::types::{LogIndex, NodeId, Term};

/// Members of the simulated group.
const MEMBERS: usize = 5;
/// Most members crashed at the same time (a majority always can come back).
const MAX_CRASHED: usize = 2;
/// Virtual time during which clients run and faults are injected.
const NEMESIS_TIME: Duration = Duration::from_secs(30);
/// How long a client waits for one `start` or `propose`.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// High bits of the final command (clients use `(client + 1) << 40`).
const FINAL_TAG: u64 = 0xFFFF << 40;

/// What one [`raft_nemesis`] run did. Equal seeds give equal reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NemesisReport {
    /// The seed.
    pub seed: u64,
    /// Snapshot interval of the members (entries; 0: never).
    pub snapshot_every: u64,
    /// Simulated fsync latency of every disk.
    pub disk_latency: Duration,
    /// `propose` calls made by clients.
    pub proposed: u64,
    /// Proposals acknowledged as applied (each checked after healing).
    pub acknowledged: u64,
    /// `start` calls accepted by a member that believed it led.
    pub started: u64,
    /// Members crashed (including immediate crash-restarts).
    pub crashes: u64,
    /// Members restarted from their durable state.
    pub restarts: u64,
    /// Single-member disconnects.
    pub disconnects: u64,
    /// Partitions of the group into sides.
    pub partitions: u64,
    /// Leadership transfers requested.
    pub transfers: u64,
    /// Leadership transfers the leader accepted.
    pub transfers_accepted: u64,
    /// Switches between a reliable and an unreliable network.
    pub unreliable_toggles: u64,
    /// Switches of long reply reordering.
    pub reorder_toggles: u64,
    /// Disks filled (every write fails until freed; freed when healing).
    pub disk_fills: u64,
    /// Raft requests forged by an outsider (heartbeat, append, vote,
    /// timeout-now with the largest term).
    pub forgeries: u64,
    /// Steps the invariant checker observed.
    pub checker_steps: u64,
    /// Index of the command committed on all members after healing.
    pub final_index: LogIndex,
    /// Virtual seconds the scenario took.
    pub virtual_secs: f64,
    /// [`SimNetwork::trace`](super::SimNetwork::trace) at the end.
    pub trace: u64,
    /// Status of every member at the end, in member order.
    pub final_status: Vec<Status>,
}

/// Run the nemesis scenario for `seed` on the deterministic simulator.
///
/// # Errors
/// A message naming the seed if the scenario failed: an invariant violation,
/// an acknowledged command missing or changed, a duplicated command, no
/// recovery after healing, or the virtual time limit.
pub fn raft_nemesis(seed: u64) -> Result<NemesisReport, String> {
    super::run_seed("raft_nemesis", seed, scenario)
}

fn node(i: usize) -> NodeId {
    NodeId(i as u64 + 1)
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// State shared by the client and nemesis loops (all on one thread).
struct Shared {
    cluster: RwLock<RaftCluster>,
    report: RefCell<NemesisReport>,
    /// Acknowledged proposals: command value and the index it was applied at.
    acked: RefCell<Vec<(u64, LogIndex)>>,
    deadline: Instant,
}

impl Shared {
    fn count(&self, f: impl FnOnce(&mut NemesisReport)) {
        f(&mut self.report.borrow_mut());
    }
}

/// The running member that claims leadership in the highest term, if any.
async fn find_leader(cluster: &RaftCluster) -> Option<usize> {
    let mut best: Option<(Term, usize)> = None;
    for i in 0..cluster.n() {
        if let Some(st) = cluster.status(i).await {
            if st.role == Role::Leader && best.is_none_or(|(t, _)| st.term > t) {
                best = Some((st.term, i));
            }
        }
    }
    best.map(|(_, i)| i)
}

async fn scenario(seed: u64) -> NemesisReport {
    let mut setup = DetRng::new(seed ^ 0x006e_656d_6573_6973);
    let mut ccfg = RaftClusterConfig::new(MEMBERS);
    ccfg.snapshot_every = if setup.chance(1, 2) { 7 } else { 0 };
    ccfg.disk_latency = Duration::from_micros(setup.range_inclusive(0, 2000));
    let report = NemesisReport {
        seed,
        snapshot_every: ccfg.snapshot_every,
        disk_latency: ccfg.disk_latency,
        ..NemesisReport::default()
    };

    let mut cluster = RaftCluster::new(ccfg, seed).await;
    cluster.check_one_leader().await;
    let client_rngs = [cluster.rng.fork(), cluster.rng.fork(), cluster.rng.fork()];
    let nemesis_rng = cluster.rng.fork();
    let shared = Shared {
        cluster: RwLock::new(cluster),
        report: RefCell::new(report),
        acked: RefCell::new(Vec::new()),
        deadline: Instant::now() + NEMESIS_TIME,
    };
    let [r0, r1, r2] = client_rngs;
    futures::join!(
        client(&shared, 0, r0),
        client(&shared, 1, r1),
        client(&shared, 2, r2),
        nemesis(&shared, nemesis_rng)
    );

    let Shared { cluster, report, acked, .. } = shared;
    let mut cluster = cluster.into_inner();
    let mut report = report.into_inner();
    let acked = acked.into_inner();
    heal(&mut cluster).await;
    let healed = AssertUnwindSafe(async {
        cluster.check_one_leader().await;
        cluster.one(cmd(FINAL_TAG | 1), MEMBERS, true).await
    })
    .catch_unwind()
    .await;
    let final_index = match healed {
        Ok(index) => index,
        Err(payload) => {
            let state = describe(&cluster).await;
            panic!("{} after healing; {state}", crate::panic_message(payload.as_ref()));
        }
    };
    report.final_index = final_index;
    verify(&cluster, &acked, final_index);
    cluster.assert_ok();

    for i in 0..MEMBERS {
        match cluster.status(i).await {
            Some(st) => report.final_status.push(st),
            None => panic!("seed {seed}: member {i} is not running after healing"),
        }
    }
    report.acknowledged = acked.len() as u64;
    report.checker_steps = cluster.checker().steps();
    report.virtual_secs = cluster.elapsed().as_secs_f64();
    report.trace = cluster.net.trace();
    cluster.end();
    report
}

/// One line per member: what it believes, for failure messages.
async fn describe(cluster: &RaftCluster) -> String {
    let mut out = format!("virtual time {:.1}s; members:", cluster.elapsed().as_secs_f64());
    for i in 0..cluster.n() {
        let line = match cluster.status(i).await {
            Some(s) => {
                let followers: Vec<String> = s
                    .followers
                    .iter()
                    .map(|f| format!("{}:match={},next={},{:?}", f.id, f.match_index, f.next_index, f.state))
                    .collect();
                format!(
                    "{:?} term={} leader={:?} commit={} applied={} last={} snapshot={} followers=[{}]",
                    s.role,
                    s.term,
                    s.leader.map(|l| l.0),
                    s.commit,
                    s.applied,
                    s.last_index,
                    s.snapshot_index,
                    followers.join(" ")
                )
            }
            None => "not running".to_string(),
        };
        out.push_str(&format!("\n  member {i} (node {}): {line}", node(i)));
    }
    out
}

/// Reliable network, no reordering, every member running and connected.
async fn heal(cluster: &mut RaftCluster) {
    for i in 0..cluster.n() {
        cluster.set_disk_full(i, false);
    }
    cluster.net.set_reliable(true);
    cluster.net.set_long_reordering(false);
    for i in 0..cluster.n() {
        if !cluster.alive(i) {
            cluster.start1(i).await;
        }
        cluster.connect(i);
    }
}

/// Every acknowledged command sits, on every member, at the index its proposer
/// was given; no client command was committed at two indices.
fn verify(cluster: &RaftCluster, acked: &[(u64, LogIndex)], final_index: LogIndex) {
    let seed = cluster.seed();
    let mut problems = Vec::new();
    for &(value, index) in acked {
        let (n, got) = cluster.n_committed(index);
        let got = got.as_ref().and_then(cmd_value);
        if got != Some(value) {
            problems
                .push(format!("acknowledged command {value:#x} at index {index}, but index {index} holds {got:#x?}"));
        } else if n != cluster.n() {
            problems.push(format!("acknowledged command {value:#x} at index {index} applied by only {n} members"));
        }
    }
    let mut seen: BTreeMap<u64, LogIndex> = BTreeMap::new();
    for index in 1..=final_index.0 {
        let index = LogIndex(index);
        if let (_, Some(c)) = cluster.n_committed(index) {
            let Some(value) = cmd_value(&c) else {
                problems.push(format!("index {index} holds a malformed command {c:?}"));
                continue;
            };
            // `one` resubmits the final command on retry, so only client commands must be unique.
            if value & FINAL_TAG == FINAL_TAG {
                continue;
            }
            if let Some(first) = seen.insert(value, index) {
                problems.push(format!("command {value:#x} committed twice: at index {first} and {index}"));
            }
        }
    }
    if !problems.is_empty() {
        let shown: Vec<_> = problems.iter().take(20).collect();
        panic!("seed {seed}: {} committed-command problems (first {}): {shown:#?}", problems.len(), shown.len());
    }
}

/// Propose unique commands until the deadline: a quarter through `start` on a
/// random member (fire and forget), the rest through `propose` on the leader.
async fn client(sh: &Shared, id: u64, mut rng: DetRng) {
    let mut seq = 0u64;
    let mut leader: Option<usize> = None;
    while Instant::now() < sh.deadline {
        seq += 1;
        let value = ((id + 1) << 40) | seq;
        if rng.chance(1, 4) {
            let i = rng.below(MEMBERS);
            let cluster = sh.cluster.read().await;
            if let Ok(Some(_)) = timeout(CALL_TIMEOUT, cluster.start(i, cmd(value))).await {
                sh.count(|r| r.started += 1);
            }
        } else {
            let cluster = sh.cluster.read().await;
            let target = match leader {
                Some(l) => l,
                None => match find_leader(&cluster).await {
                    Some(l) => l,
                    None => rng.below(MEMBERS),
                },
            };
            sh.count(|r| r.proposed += 1);
            match timeout(CALL_TIMEOUT, cluster.propose(target, cmd(value))).await {
                Ok(Some(index)) => {
                    sh.acked.borrow_mut().push((value, index));
                    leader = Some(target);
                }
                _ => leader = None,
            }
        }
        sleep(ms(rng.range_inclusive(5, 50))).await;
    }
}

/// Inject a random fault every 0.05–1 s until the deadline.
async fn nemesis(sh: &Shared, mut rng: DetRng) {
    let mut unreliable = false;
    let mut reordering = false;
    let mut full = [false; MEMBERS];
    let outsider = NodeId(99);
    let forger = {
        let cluster = sh.cluster.read().await;
        let forger = cluster.net.boot(outsider);
        cluster.net.set_reach_nodes(outsider, &(0..MEMBERS).map(node).collect::<Vec<_>>());
        forger
    };
    loop {
        sleep(ms(rng.range_inclusive(50, 1000))).await;
        if Instant::now() >= sh.deadline {
            break;
        }
        match rng.below(100) {
            0..=14 => {
                let cluster = sh.cluster.read().await;
                let i = rng.below(MEMBERS);
                if cluster.connected(i) {
                    cluster.disconnect(i);
                    sh.count(|r| r.disconnects += 1);
                }
            }
            15..=29 => {
                let cluster = sh.cluster.read().await;
                let i = rng.below(MEMBERS);
                if cluster.alive(i) {
                    cluster.connect(i);
                }
            }
            30..=42 => {
                // Two or three sides; often a majority/minority split.
                let cluster = sh.cluster.read().await;
                let sides = if rng.chance(1, 4) { 3 } else { 2 };
                for i in 0..MEMBERS {
                    if cluster.alive(i) {
                        cluster.net.set_side(node(i), Some(rng.below(sides) as u32));
                    }
                }
                sh.count(|r| r.partitions += 1);
            }
            43..=50 => {
                let cluster = sh.cluster.read().await;
                for i in (0..MEMBERS).filter(|&i| cluster.alive(i)) {
                    cluster.connect(i);
                }
            }
            51..=64 => {
                let mut cluster = sh.cluster.write().await;
                let crashed = (0..MEMBERS).filter(|&i| !cluster.alive(i)).count();
                let i = rng.below(MEMBERS);
                if crashed < MAX_CRASHED && cluster.alive(i) {
                    cluster.crash1(i);
                    sh.count(|r| r.crashes += 1);
                }
            }
            65..=76 => {
                // Restart a crashed member, or crash and restart a running one at once.
                let mut cluster = sh.cluster.write().await;
                let down: Vec<usize> = (0..MEMBERS).filter(|&i| !cluster.alive(i)).collect();
                let i = if down.is_empty() {
                    sh.count(|r| r.crashes += 1);
                    rng.below(MEMBERS)
                } else {
                    down[rng.below(down.len())]
                };
                // A member does not start on a full disk (it writes as it
                // starts): its operator frees space first.
                if full[i] {
                    full[i] = false;
                    cluster.set_disk_full(i, false);
                }
                cluster.start1(i).await;
                cluster.connect(i);
                sh.count(|r| r.restarts += 1);
            }
            77..=83 => {
                unreliable = !unreliable;
                sh.cluster.read().await.net.set_reliable(!unreliable);
                sh.count(|r| r.unreliable_toggles += 1);
            }
            84..=89 => {
                reordering = !reordering;
                sh.cluster.read().await.net.set_long_reordering(reordering);
                sh.count(|r| r.reorder_toggles += 1);
            }
            95..=96 => {
                // An outsider's requests with the largest term: no member may take them.
                let to = node(rng.below(MEMBERS));
                for request in forgeries(outsider) {
                    sh.count(|r| r.forgeries += 1);
                    let _ = timeout(CALL_TIMEOUT, forger.call(outsider, to, request)).await;
                }
            }
            90..=94 => {
                // Fill a disk (its member refuses writes and retries them) or free one.
                let i = rng.below(MEMBERS);
                full[i] = !full[i];
                if sh.cluster.read().await.set_disk_full(i, full[i]) && full[i] {
                    sh.count(|r| r.disk_fills += 1);
                }
            }
            _ => {
                let cluster = sh.cluster.read().await;
                if let Some(leader) = find_leader(&cluster).await {
                    let to = (leader + 1 + rng.below(MEMBERS - 1)) % MEMBERS;
                    sh.count(|r| r.transfers += 1);
                    if cluster.transfer_leader(leader, to).await {
                        sh.count(|r| r.transfers_accepted += 1);
                    }
                }
            }
        }
    }
}
