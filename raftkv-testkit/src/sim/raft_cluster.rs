//! The Raft lab's tester on the simulator: a group of members with crash,
//! restart, connect and disconnect, and the `one`/`wait`/`check_one_leader`
//! helpers of the original tests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{sleep, Instant};

use super::invariants::InvariantChecker;
use super::member_storage::{MemStorage, MemberStorage};
use super::network::SimNetwork;
use super::recording_sm::{AppliedView, RecordingStateMachine};
use raftkv_core::raft::core::{RaftConfig, Role, Status};
use raftkv_core::raft::driver::{DriverConfig, Raft, RaftError, RaftHandle};
use raftkv_core::rng::DetRng;
use raftkv_core::types::{GroupId, LogIndex, NodeId, Term};

/// Settings of a simulated Raft group.
#[derive(Clone)]
pub struct RaftClusterConfig {
    /// Number of members.
    pub n: usize,
    /// Drop and delay messages.
    pub unreliable: bool,
    /// Snapshot every this many applied entries (0: never).
    pub snapshot_every: u64,
    /// Simulated fsync latency of every member's disk (in-memory storage only).
    pub disk_latency: Duration,
    /// Where members keep durable state; `None` is in-memory [`MemStorage`].
    pub storage: Option<Arc<dyn MemberStorage>>,
}

impl std::fmt::Debug for RaftClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftClusterConfig")
            .field("n", &self.n)
            .field("unreliable", &self.unreliable)
            .field("snapshot_every", &self.snapshot_every)
            .field("disk_latency", &self.disk_latency)
            .field("storage", &self.storage.as_ref().map(|_| "custom"))
            .finish()
    }
}

impl RaftClusterConfig {
    /// `n` members, reliable network, no snapshots.
    #[must_use]
    pub fn new(n: usize) -> Self {
        Self { n, unreliable: false, snapshot_every: 0, disk_latency: Duration::ZERO, storage: None }
    }
}

/// A simulated Raft group under test.
pub struct RaftCluster {
    cfg: RaftClusterConfig,
    seed: u64,
    /// The simulated network.
    pub net: SimNetwork,
    storage: Arc<dyn MemberStorage>,
    handles: Vec<Option<RaftHandle<LogIndex>>>,
    boots: Vec<u64>,
    view: AppliedView,
    checker: Arc<InvariantChecker>,
    /// The tester's own generator (values, victims, sleeps).
    pub rng: DetRng,
    started: Instant,
    next_start: usize,
}

impl std::fmt::Debug for RaftCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftCluster").field("cfg", &self.cfg).field("seed", &self.seed).finish_non_exhaustive()
    }
}

fn id(i: usize) -> NodeId {
    NodeId(i as u64 + 1)
}

impl RaftCluster {
    /// Start `cfg.n` connected members.
    pub async fn new(cfg: RaftClusterConfig, seed: u64) -> Self {
        let net = SimNetwork::new(seed);
        net.set_reliable(!cfg.unreliable);
        let storage = cfg.storage.clone().unwrap_or_else(|| Arc::new(MemStorage::with_write_latency(cfg.disk_latency)));
        let mut cluster = Self {
            handles: (0..cfg.n).map(|_| None).collect(),
            boots: vec![0; cfg.n],
            cfg,
            seed,
            net,
            storage,
            view: AppliedView::default(),
            checker: Arc::new(InvariantChecker::default()),
            rng: DetRng::new(seed ^ 0x5eed),
            started: Instant::now(),
            next_start: 0,
        };
        for i in 0..cluster.cfg.n {
            cluster.start1(i).await;
            cluster.connect(i);
        }
        cluster
    }

    /// Number of members.
    #[must_use]
    pub fn n(&self) -> usize {
        self.cfg.n
    }

    /// The seed this cluster runs with.
    #[must_use]
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Panic (with the seed) if an invariant or apply check failed.
    pub fn assert_ok(&self) {
        let mut errors = self.view.errors();
        errors.extend(self.checker.violations());
        assert!(errors.is_empty(), "seed {}: invariant violations: {errors:#?}", self.seed);
    }

    /// Crash member `i`: it stops at once; only what its disk made durable survives.
    pub fn crash1(&mut self, i: usize) {
        self.net.kill(id(i));
        if let Some(h) = self.handles[i].take() {
            h.abort();
        }
        self.storage.crash(i);
    }

    /// (Re)start member `i` from its durable state. It stays disconnected until [`RaftCluster::connect`].
    pub async fn start1(&mut self, i: usize) {
        self.crash1(i);
        self.boots[i] += 1;
        let transport = self.net.boot(id(i));
        let voters = (0..self.cfg.n).map(id).collect();
        let mut rcfg = RaftConfig::new(GroupId(1), id(i), voters);
        rcfg.seed = self.seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9) ^ (self.boots[i] << 40);
        rcfg.heartbeat_ticks = 10;
        rcfg.election_ticks = 30;
        let driver = DriverConfig {
            tick: Duration::from_millis(10),
            snapshot_every_entries: self.cfg.snapshot_every,
            snapshot_chunk_bytes: 256,
            observer: Some(self.checker.clone()),
            ..DriverConfig::default()
        };
        let (log_store, snapshot_store) = match self.storage.open(i).await {
            Ok(stores) => stores,
            Err(e) => panic!("seed {}: member {i} cannot open its storage: {e}", self.seed),
        };
        let sm = RecordingStateMachine::new(i, self.view.clone());
        let started = Raft::start(rcfg, driver, log_store, snapshot_store, Arc::new(transport), sm).await;
        match started {
            Ok(handle) => {
                self.net.attach(id(i), Arc::new(handle.clone()));
                self.handles[i] = Some(handle);
            }
            Err(e) => panic!("seed {}: member {i} failed to restart: {e}", self.seed),
        }
    }

    /// Connect member `i` to every other connected member.
    pub fn connect(&self, i: usize) {
        self.net.connect(id(i));
    }

    /// Cut every link of member `i`.
    pub fn disconnect(&self, i: usize) {
        self.net.disconnect(id(i));
    }

    /// Whether member `i` is connected.
    #[must_use]
    pub fn connected(&self, i: usize) -> bool {
        self.net.is_connected(id(i))
    }

    /// Whether member `i` is running.
    #[must_use]
    pub fn alive(&self, i: usize) -> bool {
        self.handles[i].is_some()
    }

    /// Status of member `i` if it runs.
    pub async fn status(&self, i: usize) -> Option<Status> {
        let h = self.handles[i].as_ref()?;
        h.status().await.ok()
    }

    /// Counters and histograms of member `i` if it runs.
    pub fn metrics(&self, i: usize) -> Option<&raftkv_core::metrics::RaftMetrics> {
        self.handles[i].as_ref().map(RaftHandle::metrics)
    }

    /// The lab's `Start`: append `command` on member `i` if it leads.
    pub async fn start(&self, i: usize, command: Bytes) -> Option<(LogIndex, Term)> {
        let h = self.handles[i].as_ref()?;
        h.start(command).await.ok()
    }

    /// Propose through member `i` and wait for the result (leader only).
    pub async fn propose(&self, i: usize, command: Bytes) -> Option<LogIndex> {
        let h = self.handles[i].as_ref()?;
        h.propose(command).await.ok()
    }

    /// Propose through member `i` and wait for the result, with its error.
    ///
    /// # Errors
    /// The member's refusal ([`RaftError::Stopped`] when it does not run).
    pub async fn try_propose(&self, i: usize, command: Bytes) -> Result<LogIndex, RaftError> {
        let h = self.handles[i].as_ref().ok_or(RaftError::Stopped)?;
        h.propose(command).await
    }

    /// Fill member `i`'s disk (every commit fails and changes nothing) or
    /// free it; survives crashes. Returns whether the storage can simulate it
    /// (in-memory storage only).
    pub fn set_disk_full(&self, i: usize, full: bool) -> bool {
        self.storage.set_full(i, full)
    }

    /// Linearizable read barrier on member `i`.
    pub async fn read_index(&self, i: usize) -> Option<LogIndex> {
        let h = self.handles[i].as_ref()?;
        h.read_index().await.ok()
    }

    /// Ask member `i` to transfer leadership to member `to`.
    pub async fn transfer_leader(&self, i: usize, to: usize) -> bool {
        match self.handles[i].as_ref() {
            Some(h) => h.transfer_leader(id(to)).await.is_ok(),
            None => false,
        }
    }

    /// Current (term, is_leader) of member `i`.
    pub async fn state(&self, i: usize) -> (Term, bool) {
        match self.status(i).await {
            Some(s) => (s.term, s.role == Role::Leader),
            None => (Term(0), false),
        }
    }

    /// The lab's `checkOneLeader`: a leader among connected members within ~5 s.
    pub async fn check_one_leader(&mut self) -> usize {
        for _ in 0..10 {
            let ms = self.rng.range_inclusive(450, 549);
            sleep(Duration::from_millis(ms)).await;
            let mut leaders: BTreeMap<Term, Vec<usize>> = BTreeMap::new();
            for i in 0..self.cfg.n {
                if self.connected(i) {
                    let (term, leader) = self.state(i).await;
                    if leader {
                        leaders.entry(term).or_default().push(i);
                    }
                }
            }
            for (term, ls) in &leaders {
                assert!(ls.len() <= 1, "seed {}: term {term} has {} leaders: {ls:?}", self.seed, ls.len());
            }
            if let Some((_, ls)) = leaders.iter().next_back() {
                self.assert_ok();
                return ls[0];
            }
        }
        panic!("seed {}: expected one leader, got none", self.seed);
    }

    /// The lab's `checkTerms`: every connected member agrees on the term.
    pub async fn check_terms(&self) -> Term {
        let mut term = None;
        for i in 0..self.cfg.n {
            if self.connected(i) {
                let (t, _) = self.state(i).await;
                match term {
                    None => term = Some(t),
                    Some(prev) => assert_eq!(prev, t, "seed {}: servers disagree on term", self.seed),
                }
            }
        }
        term.unwrap_or_default()
    }

    /// The lab's `checkNoLeader`: no connected member claims leadership.
    pub async fn check_no_leader(&self) {
        for i in 0..self.cfg.n {
            if self.connected(i) {
                let (_, leader) = self.state(i).await;
                assert!(!leader, "seed {}: expected no leader among connected servers, but {i} claims", self.seed);
            }
        }
    }

    /// How many members applied `index`, and the command there.
    #[must_use]
    pub fn n_committed(&self, index: LogIndex) -> (usize, Option<Bytes>) {
        let r = self.view.n_committed(index);
        self.assert_ok();
        r
    }

    /// The lab's `wait`: until at least `n` members applied `index` (or a term passed `start_term`).
    pub async fn wait(&self, index: LogIndex, n: usize, start_term: Option<Term>) -> Option<Bytes> {
        let mut to = Duration::from_millis(10);
        for _ in 0..30 {
            let (nd, _) = self.n_committed(index);
            if nd >= n {
                break;
            }
            sleep(to).await;
            if to < Duration::from_secs(1) {
                to *= 2;
            }
            if let Some(st) = start_term {
                for i in 0..self.cfg.n {
                    let (t, _) = self.state(i).await;
                    if t > st {
                        return None;
                    }
                }
            }
        }
        let (nd, cmd) = self.n_committed(index);
        assert!(nd >= n, "seed {}: only {nd} decided for index {index}; wanted {n}", self.seed);
        cmd
    }

    /// The lab's `one`: submit `command` until `expected` members applied it; returns its index.
    pub async fn one(&mut self, command: Bytes, expected: usize, retry: bool) -> LogIndex {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            let mut index = None;
            for _ in 0..self.cfg.n {
                self.next_start = (self.next_start + 1) % self.cfg.n;
                let s = self.next_start;
                if self.connected(s) {
                    if let Some((i, _)) = self.start(s, command.clone()).await {
                        index = Some(i);
                        break;
                    }
                }
            }
            if let Some(index) = index {
                let t1 = Instant::now();
                while t1.elapsed() < Duration::from_secs(2) {
                    let (nd, c) = self.n_committed(index);
                    if nd > 0 && nd >= expected && c.as_ref() == Some(&command) {
                        return index;
                    }
                    sleep(Duration::from_millis(20)).await;
                }
                assert!(retry, "seed {}: one({command:?}) failed to reach agreement", self.seed);
            } else {
                sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("seed {}: one({command:?}) failed to reach agreement in 10s", self.seed);
    }

    /// Bytes of durable raft state (log + hard state) of member `i`.
    #[must_use]
    pub fn log_size(&self, i: usize) -> u64 {
        self.storage.log_size(i)
    }

    /// Largest durable raft state over all members.
    #[must_use]
    pub fn max_log_size(&self) -> u64 {
        (0..self.cfg.n).map(|i| self.log_size(i)).max().unwrap_or(0)
    }

    /// Virtual time since the cluster started.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The lab's `cleanup`: stop every member and check invariants and the time limit.
    pub fn end(&mut self) {
        self.assert_ok();
        assert!(
            self.elapsed() <= super::MAX_VIRTUAL_TIME,
            "seed {}: test took {:?} of virtual time; limit is {:?}",
            self.seed,
            self.elapsed(),
            super::MAX_VIRTUAL_TIME
        );
        for i in 0..self.cfg.n {
            self.crash1(i);
        }
    }

    /// Invariant checker of this cluster.
    #[must_use]
    pub fn checker(&self) -> &InvariantChecker {
        &self.checker
    }
}
