//! The simulated network: the labrpc fault model on virtual time.
//!
//! Every call is counted (RPCs and bytes), may fail if the link is down or a
//! side is dead (after a delay), may be delayed, dropped (request or reply)
//! or delayed a long time (reordering), all drawn from one seeded generator.
//!
//! An endpoint serves Raft RPCs (its [`RaftRpcHandler`]), service RPCs (its
//! [`ServiceHandler`], found by the name it is registered under), or both.
//! Servers reach each other across partition sides; a client endpoint
//! instead reaches exactly the servers it was given
//! ([`SimNetwork::set_reach`]), whatever the partitions, as the course's
//! clerks do.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use raftkv_core::api::{ServiceClient, ServiceHandler, ServiceRequest, ServiceResponse};
use raftkv_core::raft::driver::RaftRpcHandler;
use raftkv_core::raft::{RaftRequest, RaftResponse};
use raftkv_core::rng::DetRng;
use raftkv_core::transport::{CallFuture, Transport, TransportError};
use raftkv_core::types::NodeId;

/// Side of a partition a node is on; `None` is disconnected from everyone.
type Side = Option<u32>;

struct Endpoint {
    incarnation: u64,
    handler: Option<Arc<dyn RaftRpcHandler>>,
    service: Option<Arc<dyn ServiceHandler>>,
    side: Side,
    /// A client endpoint: the servers it reaches (partitions do not apply).
    reach: Option<BTreeSet<NodeId>>,
    rpcs_served: u64,
}

impl Endpoint {
    fn new() -> Self {
        Self { incarnation: 0, handler: None, service: None, side: None, reach: None, rpcs_served: 0 }
    }
}

/// What a reachable endpoint serves.
struct Served {
    incarnation: u64,
    raft: Option<Arc<dyn RaftRpcHandler>>,
    service: Option<Arc<dyn ServiceHandler>>,
}

struct NetState {
    rng: DetRng,
    reliable: bool,
    long_delays: bool,
    long_reordering: bool,
    nodes: BTreeMap<NodeId, Endpoint>,
    names: BTreeMap<String, NodeId>,
    total_rpcs: u64,
    total_bytes: u64,
    /// Running hash of every delivery decision, to prove a seed replays exactly.
    trace: u64,
}

/// A seeded, fault-injecting network shared by the members of a simulation.
#[derive(Clone)]
pub struct SimNetwork {
    state: Arc<Mutex<NetState>>,
}

impl std::fmt::Debug for SimNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNetwork").finish_non_exhaustive()
    }
}

fn mix(trace: u64, v: u64) -> u64 {
    (trace ^ v).wrapping_mul(0x0100_0000_01B3).rotate_left(17)
}

impl SimNetwork {
    /// A reliable network with long delays for dead calls (the Raft lab's setting).
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            state: Arc::new(Mutex::new(NetState {
                rng: DetRng::new(seed),
                reliable: true,
                long_delays: true,
                long_reordering: false,
                nodes: BTreeMap::new(),
                names: BTreeMap::new(),
                total_rpcs: 0,
                total_bytes: 0,
                trace: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, NetState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Drop and delay messages (unreliable) or not.
    pub fn set_reliable(&self, reliable: bool) {
        self.lock().reliable = reliable;
    }

    /// Calls to dead or disconnected nodes fail after up to 7 s (true) or 100 ms (false).
    pub fn set_long_delays(&self, on: bool) {
        self.lock().long_delays = on;
    }

    /// Delay two thirds of replies by 200..2200 ms.
    pub fn set_long_reordering(&self, on: bool) {
        self.lock().long_reordering = on;
    }

    /// Start a new incarnation of `node` (boot or restart): returns the
    /// transport it must use. The node is disconnected and serves nothing
    /// until [`SimNetwork::attach`] and [`SimNetwork::connect`].
    pub fn boot(&self, node: NodeId) -> SimTransport {
        let mut st = self.lock();
        let ep = st.nodes.entry(node).or_insert_with(Endpoint::new);
        ep.incarnation += 1;
        ep.handler = None;
        ep.service = None;
        ep.side = None;
        ep.rpcs_served = 0;
        SimTransport { net: self.clone(), node, incarnation: ep.incarnation }
    }

    /// Serve `node`'s incoming calls with `handler`.
    pub fn attach(&self, node: NodeId, handler: Arc<dyn RaftRpcHandler>) {
        if let Some(ep) = self.lock().nodes.get_mut(&node) {
            ep.handler = Some(handler);
        }
    }

    /// Serve `node`'s incoming service calls with `handler`, and make it
    /// reachable as `name` (a server address in configurations).
    pub fn attach_service(&self, node: NodeId, name: &str, handler: Arc<dyn ServiceHandler>) {
        let mut st = self.lock();
        st.names.insert(name.to_string(), node);
        if let Some(ep) = st.nodes.get_mut(&node) {
            ep.service = Some(handler);
        }
    }

    /// Make `node` a client endpoint that reaches exactly `servers` (by
    /// name), whatever the partitions; unknown names are ignored until
    /// registered.
    pub fn set_reach(&self, node: NodeId, servers: &[String]) {
        let mut st = self.lock();
        let reach: BTreeSet<NodeId> = servers.iter().filter_map(|n| st.names.get(n).copied()).collect();
        let ep = st.nodes.entry(node).or_insert_with(Endpoint::new);
        ep.reach = Some(reach);
    }

    /// Let `node` reach exactly the nodes `nodes`, whatever it serves (a
    /// client, or a forger of Raft requests).
    pub fn set_reach_nodes(&self, node: NodeId, nodes: &[NodeId]) {
        let mut st = self.lock();
        let ep = st.nodes.entry(node).or_insert_with(Endpoint::new);
        ep.reach = Some(nodes.iter().copied().collect());
    }

    /// A client of service RPCs sending from `node` (as booted last).
    #[must_use]
    pub fn service_client(&self, node: NodeId) -> SimServiceClient {
        let mut st = self.lock();
        let ep = st.nodes.entry(node).or_insert_with(Endpoint::new);
        if ep.incarnation == 0 {
            ep.incarnation = 1;
        }
        SimServiceClient { net: self.clone(), node, incarnation: ep.incarnation }
    }

    /// Remove the server of `node` (crash): in-flight calls to and from it fail.
    pub fn kill(&self, node: NodeId) {
        let mut st = self.lock();
        if let Some(ep) = st.nodes.get_mut(&node) {
            ep.incarnation += 1;
            ep.handler = None;
            ep.service = None;
            ep.side = None;
        }
    }

    /// Connect `node` to every other connected node (side 0).
    pub fn connect(&self, node: NodeId) {
        self.set_side(node, Some(0));
    }

    /// Cut every link of `node`, both ways.
    pub fn disconnect(&self, node: NodeId) {
        self.set_side(node, None);
    }

    /// Put `node` on `side` of a partition: it reaches only nodes on the same side.
    pub fn set_side(&self, node: NodeId, side: Option<u32>) {
        let mut st = self.lock();
        if let Some(ep) = st.nodes.get_mut(&node) {
            ep.side = side;
        }
    }

    /// Whether `node` is connected to anyone.
    #[must_use]
    pub fn is_connected(&self, node: NodeId) -> bool {
        self.lock().nodes.get(&node).is_some_and(|ep| ep.side.is_some())
    }

    /// RPCs submitted so far.
    #[must_use]
    pub fn total_rpcs(&self) -> u64 {
        self.lock().total_rpcs
    }

    /// Bytes of requests submitted plus replies delivered so far.
    #[must_use]
    pub fn total_bytes(&self) -> u64 {
        self.lock().total_bytes
    }

    /// RPCs `node`'s current server has handled.
    #[must_use]
    pub fn rpcs_served(&self, node: NodeId) -> u64 {
        self.lock().nodes.get(&node).map_or(0, |ep| ep.rpcs_served)
    }

    /// Hash of every delivery decision so far: equal seeds give equal traces.
    #[must_use]
    pub fn trace(&self) -> u64 {
        self.lock().trace
    }

    /// Draw from the network's generator (for test schedules that must replay too).
    pub fn random(&self, n: usize) -> usize {
        self.lock().rng.below(n)
    }

    fn link_up(st: &NetState, from: NodeId, from_incarnation: u64, to: NodeId) -> Option<Served> {
        let a = st.nodes.get(&from)?;
        let b = st.nodes.get(&to)?;
        if a.incarnation != from_incarnation {
            return None;
        }
        match &a.reach {
            Some(reach) => {
                if !reach.contains(&to) {
                    return None;
                }
            }
            None => {
                let serving = a.handler.is_some() || a.service.is_some();
                if !serving || a.side.is_none() || a.side != b.side {
                    return None;
                }
            }
        }
        if b.handler.is_none() && b.service.is_none() {
            return None;
        }
        Some(Served { incarnation: b.incarnation, raft: b.handler.clone(), service: b.service.clone() })
    }

    /// Deliver one call under the fault model: `run` is given what the
    /// target serves and returns the handler's answer (`None`: the target
    /// does not serve this kind of call, as if it were down).
    async fn deliver<T, Fut>(
        &self,
        from: NodeId,
        from_incarnation: u64,
        to: NodeId,
        request_bytes: u64,
        run: impl FnOnce(&Served) -> Option<Fut>,
        reply_bytes: impl FnOnce(&T) -> u64,
    ) -> Result<T, TransportError>
    where
        Fut: std::future::Future<Output = Option<T>>,
    {
        let (target, pre_delay, drop_request) = {
            let mut st = self.lock();
            st.total_rpcs += 1;
            st.total_bytes += request_bytes;
            let target = Self::link_up(&st, from, from_incarnation, to);
            let (delay, drop) = if target.is_none() {
                let max = if st.long_delays { 6999 } else { 99 };
                (st.rng.range_inclusive(0, max), false)
            } else if !st.reliable {
                (st.rng.range_inclusive(0, 26), st.rng.chance(1, 10))
            } else {
                (0, false)
            };
            st.trace = mix(st.trace, (from.0 << 48) ^ (to.0 << 32) ^ (delay << 1) ^ u64::from(drop));
            (target, delay, drop)
        };
        if pre_delay > 0 {
            tokio::time::sleep(Duration::from_millis(pre_delay)).await;
        }
        let down = || TransportError::unreachable(to, "simulated network");
        let Some(target) = target else { return Err(down()) };
        if drop_request {
            return Err(down());
        }
        let to_incarnation = target.incarnation;
        let Some(answer) = run(&target) else { return Err(down()) };
        drop(target);
        {
            let mut st = self.lock();
            if let Some(ep) = st.nodes.get_mut(&to) {
                if ep.incarnation == to_incarnation {
                    ep.rpcs_served += 1;
                }
            }
        }
        let response = answer.await.ok_or_else(|| TransportError::unreachable(to, "the member has stopped"))?;
        let reorder_delay = {
            let mut st = self.lock();
            let still_up =
                Self::link_up(&st, from, from_incarnation, to).is_some_and(|s| s.incarnation == to_incarnation);
            let drop_reply = !st.reliable && st.rng.chance(1, 10);
            let delay = if st.long_reordering && st.rng.chance(600, 900) {
                let skew = st.rng.range_inclusive(0, 1999);
                200 + st.rng.range_inclusive(0, skew)
            } else {
                0
            };
            st.trace = mix(st.trace, u64::from(still_up) ^ (u64::from(drop_reply) << 1) ^ (delay << 2));
            if !still_up || drop_reply {
                return Err(down());
            }
            delay
        };
        if reorder_delay > 0 {
            tokio::time::sleep(Duration::from_millis(reorder_delay)).await;
        }
        self.lock().total_bytes += reply_bytes(&response);
        Ok(response)
    }

    async fn call(
        &self,
        from: NodeId,
        from_incarnation: u64,
        to: NodeId,
        request: RaftRequest,
    ) -> Result<RaftResponse, TransportError> {
        let size = request.encoded_len() as u64;
        self.deliver(
            from,
            from_incarnation,
            to,
            size,
            |served| {
                served.raft.as_ref().map(|h| {
                    let answer = h.submit(from, request);
                    async move { answer.await.ok() }
                })
            },
            |r: &RaftResponse| r.encoded_len() as u64,
        )
        .await
    }

    async fn call_service(
        &self,
        from: NodeId,
        from_incarnation: u64,
        addr: &str,
        request: ServiceRequest,
    ) -> Result<ServiceResponse, TransportError> {
        let to = self.lock().names.get(addr).copied();
        let Some(to) = to else {
            return Err(TransportError::unreachable(
                raftkv_core::transport::Peer::addr(addr),
                "no server of that name",
            ));
        };
        let size = service_request_bytes(&request);
        self.deliver(
            from,
            from_incarnation,
            to,
            size,
            |served| {
                served.service.clone().map(|h| async move {
                    let response = h.handle(request).await;
                    Some(response)
                })
            },
            service_response_bytes,
        )
        .await
    }
}

/// Rough encoded size of a service request (for the byte counters).
fn service_request_bytes(r: &ServiceRequest) -> u64 {
    use raftkv_core::api::KvOp;
    16 + match r {
        ServiceRequest::Kv(k) => match &k.op {
            KvOp::Get { key } | KvOp::Delete { key } => key.len(),
            KvOp::Put { key, value } | KvOp::Append { key, value } => key.len() + value.len(),
        },
        ServiceRequest::Ctrl(_) | ServiceRequest::Status => 16,
        ServiceRequest::PullShards(p) => p.shards.len() * 2,
        ServiceRequest::DeleteShards(d) => d.shards.len() * 2,
    } as u64
}

/// Rough encoded size of a service response.
fn service_response_bytes(r: &ServiceResponse) -> u64 {
    16 + match r {
        ServiceResponse::Kv(Ok(Some(v))) => v.len(),
        ServiceResponse::PullShards(Ok(shards)) => shards
            .iter()
            .map(|s| s.entries.iter().map(|(k, v)| k.len() + v.len() + 4).sum::<usize>() + s.dedup.len() * 12)
            .sum(),
        ServiceResponse::Ctrl(Ok(Some(c))) => {
            c.shards.len() * 2 + c.groups.values().map(|s| s.iter().map(String::len).sum::<usize>()).sum::<usize>()
        }
        _ => 8,
    } as u64
}

/// The [`Transport`] of one member incarnation on a [`SimNetwork`].
#[derive(Clone, Debug)]
pub struct SimTransport {
    net: SimNetwork,
    node: NodeId,
    incarnation: u64,
}

#[async_trait]
impl Transport for SimTransport {
    fn call(&self, from: NodeId, to: NodeId, request: RaftRequest) -> CallFuture {
        debug_assert_eq!(from, self.node);
        let (net, node, incarnation) = (self.net.clone(), self.node, self.incarnation);
        Box::pin(async move { net.call(node, incarnation, to, request).await })
    }
}

/// Service RPCs sent from one endpoint of a [`SimNetwork`] (a client, or a
/// server's own calls to other groups).
#[derive(Clone, Debug)]
pub struct SimServiceClient {
    net: SimNetwork,
    node: NodeId,
    incarnation: u64,
}

#[async_trait]
impl ServiceClient for SimServiceClient {
    async fn call_service(&self, addr: &str, request: ServiceRequest) -> Result<ServiceResponse, TransportError> {
        self.net.call_service(self.node, self.incarnation, addr, request).await
    }
}
