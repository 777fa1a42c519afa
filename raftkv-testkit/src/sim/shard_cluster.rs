//! The tester of the course's labs 4 and 5 on the simulator: a shard
//! controller group and ShardKV groups (or one group with a fixed
//! configuration, for the key-value lab), clerks on their own endpoints,
//! crashes and restarts that keep only durable state, partitions, and a
//! recorder of client operations for the linearizability checker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::member_storage::{MemStorage, MemberStorage};
use super::network::SimNetwork;
use crate::linearizability::{KvInput, Recorder};
use raftkv_core::api::{ServiceClient, ShardConfig};
use raftkv_core::client::{ClerkConfig, CtrlClerk, KvClerk};
use raftkv_core::ctrler::{CtrlReply, CtrlService, CtrlStateMachine, DEFAULT_SHARDS};
use raftkv_core::raft::core::{RaftConfig, Role};
use raftkv_core::raft::driver::{DriverConfig, Raft, RaftHandle};
use raftkv_core::rng::DetRng;
use raftkv_core::shardkv::{ConfigSource, KvLimits, ShardKvOptions, ShardKvServer};
use raftkv_core::types::{ClientId, ConfigNum, GroupId, NodeId};

/// Virtual time of one durable write unless configured otherwise: it gives
/// every operation a cost in virtual time, so closed-loop clients advance the
/// clock as real ones would.
pub const DISK_LATENCY: Duration = Duration::from_millis(2);

/// The controller's Raft group id.
pub const CTRL_GROUP: GroupId = GroupId(0);

/// Settings of a simulated sharded cluster.
#[derive(Clone, Debug)]
pub struct ShardClusterConfig {
    /// Controller servers; 0: no controller, one group with a fixed configuration.
    pub ctrlers: usize,
    /// ShardKV groups (group `g` has id `100 + g`).
    pub groups: usize,
    /// Servers per group.
    pub group_size: usize,
    /// Drop and delay messages.
    pub unreliable: bool,
    /// Snapshot once the log holds this many bytes (the course's
    /// `maxraftstate`); 0: never.
    pub maxraftstate: u64,
    /// Shards.
    pub n_shards: usize,
    /// Virtual time every durable write takes (an fsync).
    pub disk_latency: Duration,
}

impl ShardClusterConfig {
    /// The shardkv lab's setup: 3 controllers, `groups` groups of 3.
    #[must_use]
    pub fn sharded(groups: usize, unreliable: bool, maxraftstate: u64) -> Self {
        Self {
            ctrlers: 3,
            groups,
            group_size: 3,
            unreliable,
            maxraftstate,
            n_shards: DEFAULT_SHARDS,
            disk_latency: DISK_LATENCY,
        }
    }

    /// The key-value lab's setup: one group of `servers`, no controller.
    #[must_use]
    pub fn kv(servers: usize, unreliable: bool, maxraftstate: u64) -> Self {
        Self {
            ctrlers: 0,
            groups: 1,
            group_size: servers,
            unreliable,
            maxraftstate,
            n_shards: DEFAULT_SHARDS,
            disk_latency: DISK_LATENCY,
        }
    }

    /// The controller lab's setup: 3 controllers and no groups.
    #[must_use]
    pub fn ctrler_only() -> Self {
        Self {
            ctrlers: 3,
            groups: 0,
            group_size: 3,
            unreliable: false,
            maxraftstate: 0,
            n_shards: DEFAULT_SHARDS,
            disk_latency: DISK_LATENCY,
        }
    }
}

struct CtrlNode {
    raft: RaftHandle<CtrlReply>,
}

/// A simulated cluster under test.
pub struct ShardCluster {
    cfg: ShardClusterConfig,
    seed: u64,
    /// The simulated network.
    pub net: SimNetwork,
    storage: Arc<MemStorage>,
    ctrlers: Vec<Option<CtrlNode>>,
    shadow: Vec<CtrlNode>,
    servers: Vec<Vec<Option<ShardKvServer>>>,
    boots: BTreeMap<NodeId, u64>,
    next_client: u64,
    /// The tester's own generator.
    pub rng: DetRng,
    admin: CtrlClerk,
    /// Every client operation, for the linearizability checker.
    pub recorder: Recorder,
}

impl std::fmt::Debug for ShardCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardCluster").field("cfg", &self.cfg).field("seed", &self.seed).finish_non_exhaustive()
    }
}

/// Group `g`'s id.
#[must_use]
pub fn gid(g: usize) -> GroupId {
    GroupId(100 + g as u64)
}

fn ctrl_node(i: usize) -> NodeId {
    NodeId(1 + i as u64)
}

fn kv_node(g: usize, i: usize) -> NodeId {
    NodeId(1000 + 100 * g as u64 + i as u64)
}

/// Address of controller `i`.
#[must_use]
pub fn ctrl_name(i: usize) -> String {
    format!("ctrler-{i}")
}

/// Address of server `i` of group `g`.
#[must_use]
pub fn server_name(g: usize, i: usize) -> String {
    format!("server-{}-{i}", gid(g).0)
}

fn raft_config(group: GroupId, me: NodeId, voters: Vec<NodeId>, seed: u64, boot: u64) -> RaftConfig {
    let mut rcfg = RaftConfig::new(group, me, voters);
    rcfg.seed = seed ^ me.0.wrapping_mul(0x9E37_79B9) ^ (boot << 40);
    rcfg.heartbeat_ticks = 10;
    rcfg.election_ticks = 30;
    rcfg
}

impl ShardCluster {
    /// Start every controller and server (connected) of `cfg`.
    pub async fn new(cfg: ShardClusterConfig, seed: u64) -> Self {
        let net = SimNetwork::new(seed);
        net.set_reliable(!cfg.unreliable);
        net.set_long_delays(false);
        let placeholder = net.service_client(NodeId(999_999));
        let storage = Arc::new(MemStorage::with_write_latency(cfg.disk_latency));
        let mut cluster = Self {
            ctrlers: (0..cfg.ctrlers).map(|_| None).collect(),
            shadow: Vec::new(),
            servers: (0..cfg.groups).map(|_| (0..cfg.group_size).map(|_| None).collect()).collect(),
            cfg,
            seed,
            net,
            storage,
            boots: BTreeMap::new(),
            next_client: 1,
            rng: DetRng::new(seed ^ 0x5eed_5eed),
            admin: CtrlClerk::new(Vec::new(), Arc::new(placeholder), ClientId(0), ClerkConfig::default()),
            recorder: Recorder::new(),
        };
        for i in 0..cluster.cfg.ctrlers {
            cluster.start_ctrler(i).await;
        }
        for g in 0..cluster.cfg.groups {
            for i in 0..cluster.cfg.group_size {
                cluster.start_server(g, i).await;
            }
        }
        cluster.admin = cluster.ctrl_clerk();
        cluster
    }

    /// The seed.
    #[must_use]
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Settings.
    #[must_use]
    pub fn config(&self) -> &ShardClusterConfig {
        &self.cfg
    }

    fn driver(&self) -> DriverConfig {
        DriverConfig {
            tick: Duration::from_millis(10),
            snapshot_every_entries: 0,
            snapshot_log_bytes: self.cfg.maxraftstate,
            snapshot_chunk_bytes: 4096,
            ..DriverConfig::default()
        }
    }

    fn boot(&mut self, node: NodeId) -> u64 {
        let b = self.boots.entry(node).or_insert(0);
        *b += 1;
        *b
    }

    /// Addresses of every controller.
    #[must_use]
    pub fn ctrl_names(&self) -> Vec<String> {
        (0..self.cfg.ctrlers).map(ctrl_name).collect()
    }

    /// Addresses of group `g`'s servers.
    #[must_use]
    pub fn group_names(&self, g: usize) -> Vec<String> {
        (0..self.cfg.group_size).map(|i| server_name(g, i)).collect()
    }

    /// Start (or restart from its durable state) controller `i`, connected.
    pub async fn start_ctrler(&mut self, i: usize) {
        self.shutdown_ctrler(i);
        let voters: Vec<NodeId> = (0..self.cfg.ctrlers).map(ctrl_node).collect();
        let node = self.spawn_ctrler(ctrl_node(i), &ctrl_name(i), voters).await;
        self.ctrlers[i] = Some(node);
    }

    async fn spawn_ctrler(&mut self, node: NodeId, name: &str, voters: Vec<NodeId>) -> CtrlNode {
        let boot = self.boot(node);
        let transport = self.net.boot(node);
        let (log, snapshots) = match self.storage.open(node.0 as usize).await {
            Ok(s) => s,
            Err(e) => panic!("seed {}: controller {name} cannot open its storage: {e}", self.seed),
        };
        let (sm, state) = CtrlStateMachine::new(self.cfg.n_shards);
        let rcfg = raft_config(CTRL_GROUP, node, voters.clone(), self.seed, boot);
        let raft = match Raft::start(rcfg, self.driver(), log, snapshots, Arc::new(transport), sm).await {
            Ok(r) => r,
            Err(e) => panic!("seed {}: controller {name} failed to start: {e}", self.seed),
        };
        let service = CtrlService::new(CTRL_GROUP, raft.clone(), state, voters, Duration::from_millis(500));
        self.net.attach(node, Arc::new(raft.clone()));
        self.net.attach_service(node, name, Arc::new(service));
        self.net.connect(node);
        CtrlNode { raft }
    }

    /// Start a second, independent controller group (3 servers) and return
    /// its addresses: a controller that knows nothing of the real one.
    pub async fn start_shadow_ctrler(&mut self) -> Vec<String> {
        let nodes: Vec<NodeId> = (0..3).map(|i| NodeId(500 + i)).collect();
        let names: Vec<String> = (0..3).map(|i| format!("shadow-ctrler-{i}")).collect();
        for (node, name) in nodes.iter().zip(&names) {
            let c = self.spawn_ctrler(*node, name, nodes.clone()).await;
            self.shadow.push(c);
        }
        names
    }

    /// A KV clerk (recorded) that learns configurations from the controller at `ctrlers`.
    pub fn recorded_clerk_using(&mut self, ctrlers: &[String]) -> RecordedClerk {
        let id = self.next_client;
        let mut reach = ctrlers.to_vec();
        for g in 0..self.cfg.groups {
            reach.extend(self.group_names(g));
        }
        let (client, net) = self.new_client(&reach);
        let ctrl = CtrlClerk::new(ctrlers.to_vec(), net.clone(), client, ClerkConfig::default());
        let inner = KvClerk::new(ctrl, net, client, ClerkConfig::default());
        RecordedClerk { inner, recorder: self.recorder.clone(), id }
    }

    /// A controller clerk of the controller at `ctrlers`.
    pub fn ctrl_clerk_using(&mut self, ctrlers: &[String]) -> CtrlClerk {
        let (client, net) = self.new_client(ctrlers);
        CtrlClerk::new(ctrlers.to_vec(), net, client, ClerkConfig::default())
    }

    /// Crash controller `i`.
    pub fn shutdown_ctrler(&mut self, i: usize) {
        let node = ctrl_node(i);
        self.net.kill(node);
        if let Some(c) = self.ctrlers[i].take() {
            c.raft.abort();
        }
        self.storage.crash(node.0 as usize);
    }

    /// Start (or restart from its durable state) server `i` of group `g`, connected.
    pub async fn start_server(&mut self, g: usize, i: usize) {
        self.shutdown_server(g, i);
        let node = kv_node(g, i);
        let boot = self.boot(node);
        let transport = self.net.boot(node);
        let net: Arc<dyn ServiceClient> = Arc::new(self.net.service_client(node));
        let members: Vec<NodeId> = (0..self.cfg.group_size).map(|j| kv_node(g, j)).collect();
        let (log, snapshots) = match self.storage.open(node.0 as usize).await {
            Ok(s) => s,
            Err(e) => panic!("seed {}: server {g}/{i} cannot open its storage: {e}", self.seed),
        };
        let source = if self.cfg.ctrlers == 0 {
            ConfigSource::Static(self.static_config())
        } else {
            ConfigSource::Controller(self.ctrl_names())
        };
        let opts = ShardKvOptions {
            raft: raft_config(gid(g), node, members.clone(), self.seed, boot),
            driver: self.driver(),
            n_shards: self.cfg.n_shards,
            members,
            source,
            poll_interval: Duration::from_millis(100),
            commit_timeout: Duration::from_millis(500),
            call_timeout: Duration::from_millis(500),
            limits: KvLimits::default(),
            // Small runs, so the tests' shards move in several of them.
            pull_chunk_bytes: 1 << 10,
        };
        let server = match ShardKvServer::start(opts, log, snapshots, Arc::new(transport), net).await {
            Ok(s) => s,
            Err(e) => panic!("seed {}: server {g}/{i} failed to start: {e}", self.seed),
        };
        self.net.attach(node, Arc::new(server.raft().clone()));
        self.net.attach_service(node, &server_name(g, i), server.service());
        self.net.connect(node);
        self.servers[g][i] = Some(server);
    }

    /// Crash server `i` of group `g`: only its durable state survives.
    pub fn shutdown_server(&mut self, g: usize, i: usize) {
        let node = kv_node(g, i);
        self.net.kill(node);
        if let Some(s) = self.servers[g][i].take() {
            s.abort();
        }
        self.storage.crash(node.0 as usize);
    }

    /// Crash every server of group `g`.
    pub fn shutdown_group(&mut self, g: usize) {
        for i in 0..self.cfg.group_size {
            self.shutdown_server(g, i);
        }
    }

    /// Restart every server of group `g`.
    pub async fn start_group(&mut self, g: usize) {
        for i in 0..self.cfg.group_size {
            self.start_server(g, i).await;
        }
    }

    /// The fixed configuration of a controller-less cluster: every shard to group 0.
    #[must_use]
    pub fn static_config(&self) -> ShardConfig {
        ShardConfig {
            num: ConfigNum(1),
            shards: vec![gid(0); self.cfg.n_shards],
            groups: BTreeMap::from([(gid(0), self.group_names(0))]),
        }
    }

    fn new_client(&mut self, reach: &[String]) -> (ClientId, Arc<dyn ServiceClient>) {
        let n = self.next_client;
        self.next_client += 1;
        let node = NodeId(1_000_000 + n);
        self.net.set_reach(node, reach);
        let client = ClientId(self.seed.rotate_left(17) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        (client, Arc::new(self.net.service_client(node)))
    }

    /// A controller clerk on its own endpoint.
    pub fn ctrl_clerk(&mut self) -> CtrlClerk {
        let names = self.ctrl_names();
        let (client, net) = self.new_client(&names);
        CtrlClerk::new(names, net, client, ClerkConfig::default())
    }

    /// A KV clerk reaching the controller and every server.
    pub fn kv_clerk(&mut self) -> KvClerk {
        let mut reach = self.ctrl_names();
        for g in 0..self.cfg.groups {
            reach.extend(self.group_names(g));
        }
        self.kv_clerk_reaching(&reach)
    }

    /// A KV clerk that reaches only `reach` (server addresses).
    pub fn kv_clerk_reaching(&mut self, reach: &[String]) -> KvClerk {
        let (client, net) = self.new_client(reach);
        if self.cfg.ctrlers == 0 {
            return KvClerk::with_config(self.static_config(), net, client, ClerkConfig::default());
        }
        let ctrl = CtrlClerk::new(self.ctrl_names(), net.clone(), client, ClerkConfig::default());
        KvClerk::new(ctrl, net, client, ClerkConfig::default())
    }

    /// A KV clerk whose operations are recorded for the linearizability checker.
    pub fn recorded_clerk(&mut self) -> RecordedClerk {
        let id = self.next_client;
        RecordedClerk { inner: self.kv_clerk(), recorder: self.recorder.clone(), id }
    }

    /// A recorded KV clerk that reaches only `reach`.
    pub fn recorded_clerk_reaching(&mut self, reach: &[String]) -> RecordedClerk {
        let id = self.next_client;
        RecordedClerk { inner: self.kv_clerk_reaching(reach), recorder: self.recorder.clone(), id }
    }

    /// Join groups `gs` (by index) in one call.
    pub async fn join(&mut self, gs: &[usize]) {
        let groups = gs.iter().map(|&g| (gid(g), self.group_names(g))).collect();
        let seed = self.seed;
        if let Err(e) = self.admin.join(groups).await {
            panic!("seed {seed}: join {gs:?} failed: {e}");
        }
    }

    /// Leave groups `gs` (by index) in one call.
    pub async fn leave(&mut self, gs: &[usize]) {
        let groups = gs.iter().map(|&g| gid(g)).collect();
        let seed = self.seed;
        if let Err(e) = self.admin.leave(groups).await {
            panic!("seed {seed}: leave {gs:?} failed: {e}");
        }
    }

    /// Give `shard` to group `g` (by index).
    pub async fn move_shard(&mut self, shard: usize, g: usize) {
        let seed = self.seed;
        if let Err(e) = self.admin.move_shard(raftkv_core::types::ShardId(shard as u64), gid(g)).await {
            panic!("seed {seed}: move {shard} to {g} failed: {e}");
        }
    }

    /// Configuration `num`.
    pub async fn query_num(&mut self, num: ConfigNum) -> ShardConfig {
        let seed = self.seed;
        match self.admin.query(Some(num)).await {
            Ok(c) => c,
            Err(e) => panic!("seed {seed}: query {num} failed: {e}"),
        }
    }

    /// Put server `i` of group `g` on `side` of a partition (`None`: cut off).
    pub fn set_side(&self, g: usize, i: usize, side: Option<u32>) {
        self.net.set_side(kv_node(g, i), side);
    }

    /// The latest configuration.
    pub async fn query(&mut self) -> ShardConfig {
        let seed = self.seed;
        match self.admin.query(None).await {
            Ok(c) => c,
            Err(e) => panic!("seed {seed}: query failed: {e}"),
        }
    }

    /// Put the servers of group 0 `a` on one side of a partition and `b`
    /// on the other (clerks are not affected).
    pub fn partition(&self, a: &[usize], b: &[usize]) {
        for &i in a {
            self.net.set_side(kv_node(0, i), Some(0));
        }
        for &i in b {
            self.net.set_side(kv_node(0, i), Some(1));
        }
    }

    /// A task that keeps splitting group 0's servers at random into two
    /// sides (either may be empty), holding each split 1 s + up to 200 ms.
    pub fn partitioner(&mut self) -> Partitioner {
        Partitioner {
            net: self.net.clone(),
            nodes: (0..self.cfg.group_size).map(|i| kv_node(0, i)).collect(),
            rng: self.rng.fork(),
        }
    }

    /// Make the clerk `clerk` reach exactly `servers`.
    pub fn set_reach(&self, clerk: &RecordedClerk, servers: &[String]) {
        self.net.set_reach(clerk.node(), servers);
    }

    /// Heal every partition.
    pub fn connect_all(&self) {
        for g in 0..self.cfg.groups {
            for i in 0..self.cfg.group_size {
                if self.servers[g][i].is_some() {
                    self.net.connect(kv_node(g, i));
                }
            }
        }
        for i in 0..self.cfg.ctrlers {
            if self.ctrlers[i].is_some() {
                self.net.connect(ctrl_node(i));
            }
        }
    }

    /// Bytes of durable Raft state of server `i` of group `g`.
    #[must_use]
    pub fn raft_state_size(&self, g: usize, i: usize) -> u64 {
        self.storage.log_size(kv_node(g, i).0 as usize)
    }

    /// Bytes of the latest snapshot of server `i` of group `g`.
    #[must_use]
    pub fn snapshot_size(&self, g: usize, i: usize) -> u64 {
        self.storage.snapshot_size(kv_node(g, i).0 as usize)
    }

    /// Largest Raft state of any server.
    #[must_use]
    pub fn max_raft_state(&self) -> u64 {
        (0..self.cfg.groups)
            .flat_map(|g| (0..self.cfg.group_size).map(move |i| (g, i)))
            .map(|(g, i)| self.raft_state_size(g, i))
            .max()
            .unwrap_or(0)
    }

    /// The controller that leads, if any.
    pub async fn ctrl_leader(&self) -> Option<usize> {
        for (i, c) in self.ctrlers.iter().enumerate() {
            if let Some(c) = c {
                if c.raft.status().await.is_ok_and(|s| s.role == Role::Leader) {
                    return Some(i);
                }
            }
        }
        None
    }

    /// The server of group `g` that leads, if any.
    pub async fn group_leader(&self, g: usize) -> Option<usize> {
        for (i, s) in self.servers[g].iter().enumerate() {
            if let Some(s) = s {
                if s.raft().status().await.is_ok_and(|st| st.role == Role::Leader) {
                    return Some(i);
                }
            }
        }
        None
    }

    /// Server `i` of group `g`, if running.
    #[must_use]
    pub fn server(&self, g: usize, i: usize) -> Option<&ShardKvServer> {
        self.servers[g][i].as_ref()
    }

    /// Crash everything (end of a test).
    pub fn shutdown(&mut self) {
        for g in 0..self.cfg.groups {
            self.shutdown_group(g);
        }
        for i in 0..self.cfg.ctrlers {
            self.shutdown_ctrler(i);
        }
        for c in self.shadow.drain(..) {
            c.raft.abort();
        }
    }
}

/// A KV clerk whose every operation is recorded (call, return, value).
pub struct RecordedClerk {
    inner: KvClerk,
    recorder: Recorder,
    id: u64,
}

impl std::fmt::Debug for RecordedClerk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordedClerk").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Splits group 0's servers at random, again and again (see [`ShardCluster::partitioner`]).
pub struct Partitioner {
    net: SimNetwork,
    nodes: Vec<NodeId>,
    rng: DetRng,
}

impl std::fmt::Debug for Partitioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partitioner").field("nodes", &self.nodes).finish_non_exhaustive()
    }
}

impl Partitioner {
    /// Split until `stop` is set.
    pub async fn run(mut self, stop: Arc<std::sync::atomic::AtomicBool>) {
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            for &n in &self.nodes {
                self.net.set_side(n, Some(u32::from(self.rng.chance(1, 2))));
            }
            let hold = 1000 + self.rng.range_inclusive(0, 199);
            tokio::time::sleep(Duration::from_millis(hold)).await;
        }
    }
}

fn text(b: Option<Bytes>) -> String {
    b.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

impl RecordedClerk {
    /// The clerk's endpoint in the simulated network.
    #[must_use]
    pub fn node(&self) -> NodeId {
        NodeId(1_000_000 + self.id)
    }

    /// Get, as a string (a missing key reads as "").
    pub async fn get(&mut self, key: &str) -> String {
        let op = self.recorder.call(self.id, Bytes::from(key.to_string()), KvInput::Get);
        match self.inner.get(key.to_string()).await {
            Ok(v) => {
                self.recorder.returned(op, v.clone());
                text(v)
            }
            Err(e) => panic!("get {key}: {e}"),
        }
    }

    /// Put.
    pub async fn put(&mut self, key: &str, value: &str) {
        let v = Bytes::from(value.to_string());
        let op = self.recorder.call(self.id, Bytes::from(key.to_string()), KvInput::Put(v.clone()));
        match self.inner.put(key.to_string(), v).await {
            Ok(()) => self.recorder.returned(op, None),
            Err(e) => panic!("put {key}: {e}"),
        }
    }

    /// Delete.
    pub async fn delete(&mut self, key: &str) {
        let op = self.recorder.call(self.id, Bytes::from(key.to_string()), KvInput::Delete);
        match self.inner.delete(key.to_string()).await {
            Ok(()) => self.recorder.returned(op, None),
            Err(e) => panic!("delete {key}: {e}"),
        }
    }

    /// Append.
    pub async fn append(&mut self, key: &str, value: &str) {
        let v = Bytes::from(value.to_string());
        let op = self.recorder.call(self.id, Bytes::from(key.to_string()), KvInput::Append(v.clone()));
        match self.inner.append(key.to_string(), v).await {
            Ok(()) => self.recorder.returned(op, None),
            Err(e) => panic!("append {key}: {e}"),
        }
    }
}
