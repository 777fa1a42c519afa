#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Deterministic tests of the sans-IO core.
//!
//! A tiny synchronous network ([`Net`]) wires `RaftCore`s together: every
//! `Ready` is executed at once (its `write` applied to an in-memory store,
//! `persisted` called, messages queued), queued requests are handled one at a
//! time — the receiver's `Ready` is made durable before its response is fed
//! back to the sender — until nothing moves. Links can be cut, and requests
//! dropped or held back by predicate. No tokio, no sleeps: time is `tick()`.
//!
//! This module holds that harness; the tests are in one module per topic.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;

use super::{
    ChunkVerdict, NotReady, ProgressState, RaftConfig, RaftCore, ReadState, Ready, RecoveredState, Role,
    SnapshotSendOutcome, MAX_ADOPTED_TERM, MAX_TERM_STEP,
};
use crate::raft::{
    AppendEntriesRequest, AppendEntriesResponse, Entry, EntryPayload, HardState, HeartbeatRequest,
    InstallSnapshotRequest, RaftRequest, RaftResponse, SnapshotMeta, VoteRequest, VoteResponse,
};
use crate::storage::LogWrite;
use crate::types::{GroupId, LogIndex, NodeId, Term};

const HEARTBEAT_TICKS: u32 = 1;
const ELECTION_TICKS: u32 = 10;

// ---------------------------------------------------------------------------
// Small constructors
// ---------------------------------------------------------------------------

fn nid(n: u64) -> NodeId {
    NodeId(n)
}

fn config(me: u64, voters: u64, seed: u64) -> RaftConfig {
    let mut cfg = RaftConfig::new(GroupId(7), NodeId(me), (1..=voters).map(NodeId).collect());
    cfg.heartbeat_ticks = HEARTBEAT_TICKS;
    cfg.election_ticks = ELECTION_TICKS;
    cfg.seed = seed.wrapping_mul(1_000).wrapping_add(me);
    cfg
}

fn blank(index: u64, term: u64) -> Entry {
    Entry { term: Term(term), index: LogIndex(index), payload: EntryPayload::Blank }
}

fn command(index: u64, term: u64, data: &'static str) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        payload: EntryPayload::Command(Bytes::from_static(data.as_bytes())),
    }
}

/// Blank entries at indices `1..` with the given terms.
fn log_of_terms(terms: &[u64]) -> Vec<Entry> {
    terms.iter().enumerate().map(|(i, &t)| blank(i as u64 + 1, t)).collect()
}

fn recovered(term: u64, commit: u64, entries: Vec<Entry>) -> RecoveredState {
    RecoveredState {
        hard_state: HardState { term: Term(term), vote: None, commit: LogIndex(commit) },
        snapshot: SnapshotMeta::default(),
        entries,
    }
}

fn bytes(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn append_request(term: u64, leader: u64, prev: u64, prev_term: u64, entries: Vec<Entry>, commit: u64) -> RaftRequest {
    RaftRequest::AppendEntries(AppendEntriesRequest {
        term: Term(term),
        leader: NodeId(leader),
        prev_log_index: LogIndex(prev),
        prev_log_term: Term(prev_term),
        entries,
        leader_commit: LogIndex(commit),
        read_seq: 0,
    })
}

fn heartbeat_request(term: u64, leader: u64, commit: u64) -> RaftRequest {
    RaftRequest::Heartbeat(HeartbeatRequest {
        term: Term(term),
        leader: NodeId(leader),
        commit: LogIndex(commit),
        read_seq: 0,
    })
}

fn vote_request(
    term: u64,
    candidate: u64,
    last_index: u64,
    last_term: u64,
    pre_vote: bool,
    transfer: bool,
) -> RaftRequest {
    RaftRequest::Vote(VoteRequest {
        term: Term(term),
        candidate: NodeId(candidate),
        last_log_index: LogIndex(last_index),
        last_log_term: Term(last_term),
        pre_vote,
        transfer,
    })
}

fn as_vote(resp: RaftResponse) -> VoteResponse {
    match resp {
        RaftResponse::Vote(v) => v,
        other => panic!("expected a vote response, got {other:?}"),
    }
}

fn as_append(resp: RaftResponse) -> AppendEntriesResponse {
    match resp {
        RaftResponse::AppendEntries(a) => a,
        other => panic!("expected an append response, got {other:?}"),
    }
}

fn indices(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.index.0).collect()
}

fn payloads(entries: &[Entry]) -> Vec<EntryPayload> {
    entries.iter().map(|e| e.payload.clone()).collect()
}

fn is_append(req: &RaftRequest) -> bool {
    matches!(req, RaftRequest::AppendEntries(_))
}

fn is_heartbeat(req: &RaftRequest) -> bool {
    matches!(req, RaftRequest::Heartbeat(_))
}

fn is_timeout_now(req: &RaftRequest) -> bool {
    matches!(req, RaftRequest::TimeoutNow(_))
}

// ---------------------------------------------------------------------------
// Simulated durable store
// ---------------------------------------------------------------------------

/// The durable copy of one member's log, fed from `Ready::write` / `purge_through`.
#[derive(Debug, Default)]
struct Store {
    entries: BTreeMap<u64, Entry>,
    hard_state: HardState,
    /// Everything up to here was purged (covered by a snapshot).
    purged_through: u64,
}

impl Store {
    fn last_index(&self) -> u64 {
        self.entries.keys().next_back().copied().unwrap_or(self.purged_through)
    }

    fn write(&mut self, node: NodeId, w: &LogWrite) {
        if let Some(t) = w.truncate_after {
            self.entries.retain(|&i, _| i <= t.0);
        }
        for (e, expected) in w.entries.iter().zip(self.last_index() + 1..) {
            assert_eq!(e.index.0, expected, "node {node}: a log write must continue the stored log without gaps");
            self.entries.insert(e.index.0, e.clone());
        }
        if let Some(hs) = w.hard_state {
            self.hard_state = hs;
        }
    }

    fn purge(&mut self, through: LogIndex) {
        self.entries.retain(|&i, _| i > through.0);
        self.purged_through = self.purged_through.max(through.0);
    }

    fn terms(&self) -> Vec<(u64, u64)> {
        self.entries.values().map(|e| (e.index.0, e.term.0)).collect()
    }
}

// ---------------------------------------------------------------------------
// The synchronous network
// ---------------------------------------------------------------------------

type Msg = (NodeId, NodeId, RaftRequest);
type Filter = Box<dyn Fn(NodeId, NodeId, &RaftRequest) -> bool>;

/// One member plus everything the "driver" did for it.
struct Node {
    core: RaftCore,
    store: Store,
    /// Entries handed out in `Ready::committed`, in order.
    applied: Vec<Entry>,
    /// Index the simulated state machine is at (snapshot restores move it).
    applied_index: LogIndex,
    read_states: Vec<ReadState>,
    failed_reads: Vec<u64>,
    send_snapshots: Vec<NodeId>,
    restored: Vec<SnapshotMeta>,
    truncations: Vec<LogIndex>,
    purges: Vec<LogIndex>,
    /// When set, `persist_upto` is not reported until [`Net::persist`].
    hold_persist: bool,
    unreported_persist: Option<LogIndex>,
}

/// A `TimeoutNow` leaving a leader, with the leader's view of the target at that moment.
#[derive(Debug)]
struct TimeoutNowSent {
    to: NodeId,
    target_match: LogIndex,
    leader_last: LogIndex,
}

#[derive(Debug, Clone)]
enum Event {
    /// A request handed to the network (before any filtering).
    Request(NodeId, NodeId, RaftRequest),
    /// A response delivered back: (responder, requester, response).
    Response(NodeId, NodeId, RaftResponse),
}

struct Net {
    nodes: BTreeMap<NodeId, Node>,
    queue: VecDeque<Msg>,
    held: VecDeque<Msg>,
    /// Directed links that lose everything (requests and responses).
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Requests matching this are lost.
    drop_if: Option<Filter>,
    /// Requests matching this are parked in `held` until released.
    hold_if: Option<Filter>,
    trace: Vec<Event>,
    /// Election safety: the leader seen for each term.
    leaders_by_term: BTreeMap<Term, NodeId>,
    timeout_nows: Vec<TimeoutNowSent>,
}

impl Net {
    fn new(n: u64, seed: u64) -> Self {
        Self::build(n, seed, |_| {}, |_| RecoveredState::default())
    }

    fn build(n: u64, seed: u64, tweak: impl Fn(&mut RaftConfig), recover: impl Fn(u64) -> RecoveredState) -> Self {
        let mut nodes = BTreeMap::new();
        for me in 1..=n {
            let mut cfg = config(me, n, seed);
            tweak(&mut cfg);
            let rec = recover(me);
            let store = Store {
                entries: rec.entries.iter().map(|e| (e.index.0, e.clone())).collect(),
                hard_state: rec.hard_state,
                purged_through: rec.snapshot.last_index.0,
            };
            let applied_index = rec.snapshot.last_index;
            let core = RaftCore::new(cfg, rec).expect("valid test config");
            nodes.insert(
                NodeId(me),
                Node {
                    core,
                    store,
                    applied: Vec::new(),
                    applied_index,
                    read_states: Vec::new(),
                    failed_reads: Vec::new(),
                    send_snapshots: Vec::new(),
                    restored: Vec::new(),
                    truncations: Vec::new(),
                    purges: Vec::new(),
                    hold_persist: false,
                    unreported_persist: None,
                },
            );
        }
        Self {
            nodes,
            queue: VecDeque::new(),
            held: VecDeque::new(),
            cut: BTreeSet::new(),
            drop_if: None,
            hold_if: None,
            trace: Vec::new(),
            leaders_by_term: BTreeMap::new(),
            timeout_nows: Vec::new(),
        }
    }

    fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    fn node(&self, n: u64) -> &Node {
        self.nodes.get(&NodeId(n)).expect("known node")
    }

    fn node_mut(&mut self, n: u64) -> &mut Node {
        self.nodes.get_mut(&NodeId(n)).expect("known node")
    }

    fn core(&self, n: u64) -> &RaftCore {
        &self.node(n).core
    }

    fn core_mut(&mut self, n: u64) -> &mut RaftCore {
        &mut self.node_mut(n).core
    }

    // --- partitions -------------------------------------------------------

    fn block(&mut self, from: u64, to: u64) {
        self.cut.insert((NodeId(from), NodeId(to)));
    }

    fn isolate(&mut self, n: u64) {
        for other in self.ids() {
            if other != NodeId(n) {
                self.cut.insert((NodeId(n), other));
                self.cut.insert((other, NodeId(n)));
            }
        }
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    // --- driving ----------------------------------------------------------

    fn take_ready(&mut self, n: u64) -> Ready {
        self.core_mut(n).ready()
    }

    /// Execute a `Ready` as a well-behaved driver would. Returns whether it had work.
    fn process(&mut self, me: NodeId, rd: Ready) -> bool {
        let busy = !rd.is_empty() || rd.persist_upto.is_some();
        let node = self.nodes.get_mut(&me).expect("known node");
        let mut out: Vec<Msg> = rd.append_messages.into_iter().map(|(to, req)| (me, to, req)).collect();
        node.store.write(me, &rd.write);
        if let Some(t) = rd.write.truncate_after {
            node.truncations.push(t);
        }
        if let Some(p) = rd.purge_through {
            node.store.purge(p);
            node.purges.push(p);
        }
        if let Some(meta) = rd.restore_snapshot {
            node.restored.push(meta);
            node.applied_index = meta.last_index;
        }
        for e in rd.committed {
            assert_eq!(
                e.index,
                node.applied_index.next(),
                "node {me}: committed entries must come in order, without gaps"
            );
            assert_eq!(
                node.store.entries.get(&e.index.0).map(|s| s.term),
                Some(e.term),
                "node {me}: entry {} was handed out for apply before it was durable",
                e.index
            );
            node.applied_index = e.index;
            node.applied.push(e);
        }
        node.read_states.extend(rd.read_states);
        node.failed_reads.extend(rd.failed_reads);
        node.send_snapshots.extend(rd.send_snapshots);
        if let Some(p) = rd.persist_upto {
            if node.hold_persist {
                node.unreported_persist = Some(p);
            } else {
                node.core.persisted(p);
            }
        }
        for (to, req) in rd.messages {
            out.push((me, to, req));
        }
        for (_, to, req) in &out {
            if is_timeout_now(req) {
                let status = node.core.status();
                let target_match = status.followers.iter().find(|f| f.id == *to).map_or(LogIndex(0), |f| f.match_index);
                self.timeout_nows.push(TimeoutNowSent { to: *to, target_match, leader_last: status.last_index });
            }
        }
        if node.core.role() == Role::Leader {
            let term = node.core.term();
            let previous = *self.leaders_by_term.entry(term).or_insert(me);
            assert_eq!(previous, me, "election safety: two leaders in term {term}");
        }
        for (from, to, req) in out {
            self.trace.push(Event::Request(from, to, req.clone()));
            self.queue.push_back((from, to, req));
        }
        busy
    }

    fn flush(&mut self, me: NodeId) -> bool {
        let rd = self.nodes.get_mut(&me).expect("known node").core.ready();
        self.process(me, rd)
    }

    /// Report the held-back `persist_upto` of a node with `hold_persist`.
    fn persist(&mut self, n: u64) {
        let node = self.node_mut(n);
        if let Some(p) = node.unreported_persist.take() {
            node.core.persisted(p);
        }
    }

    fn deliver(&mut self, (from, to, req): Msg) {
        if self.cut.contains(&(from, to)) || self.drop_if.as_ref().is_some_and(|f| f(from, to, &req)) {
            return;
        }
        if self.hold_if.as_ref().is_some_and(|f| f(from, to, &req)) {
            self.held.push_back((from, to, req));
            return;
        }
        self.deliver_now((from, to, req));
    }

    fn deliver_now(&mut self, (from, to, req): Msg) {
        let resp = self.nodes.get_mut(&to).expect("known node").core.handle_request(from, req);
        // Rule 2 of the driver contract: the write must be durable before the reply leaves.
        self.flush(to);
        if self.cut.contains(&(to, from)) {
            return;
        }
        self.trace.push(Event::Response(to, from, resp.clone()));
        self.nodes.get_mut(&from).expect("known node").core.handle_response(to, resp);
    }

    /// Execute readies and deliver messages until nothing moves.
    fn run(&mut self) {
        for _ in 0..100_000 {
            let mut busy = false;
            for me in self.ids() {
                busy |= self.flush(me);
            }
            if let Some(msg) = self.queue.pop_front() {
                self.deliver(msg);
                continue;
            }
            if !busy {
                return;
            }
        }
        panic!("the network did not quiesce");
    }

    /// Deliver the oldest held request (ignoring `hold_if`), then run.
    fn release_one_held(&mut self) {
        let msg = self.held.pop_front().expect("a held request");
        self.deliver_now(msg);
        self.run();
    }

    fn release_all_held(&mut self) {
        self.hold_if = None;
        while let Some(msg) = self.held.pop_front() {
            self.queue.push_back(msg);
        }
        self.run();
    }

    fn tick(&mut self, n: u64) {
        self.core_mut(n).tick();
    }

    fn tick_all_and_run(&mut self, rounds: usize) {
        for _ in 0..rounds {
            for me in self.ids() {
                self.nodes.get_mut(&me).expect("known node").core.tick();
            }
            self.run();
        }
    }

    /// Tick only `n` until it is leader.
    fn elect(&mut self, n: u64) {
        for _ in 0..(10 * ELECTION_TICKS) {
            if self.core(n).role() == Role::Leader {
                return;
            }
            self.tick(n);
            self.run();
        }
        assert_eq!(self.core(n).role(), Role::Leader, "node {n} should have won an election");
    }

    /// Tick everyone until some member leads; returns it.
    fn tick_until_leader(&mut self) -> u64 {
        for _ in 0..(20 * ELECTION_TICKS) {
            self.tick_all_and_run(1);
            if let Some(l) = self.leaders().first() {
                return l.0;
            }
        }
        panic!("no leader was elected");
    }

    fn leaders(&self) -> Vec<NodeId> {
        self.nodes.iter().filter(|(_, n)| n.core.role() == Role::Leader).map(|(&id, _)| id).collect()
    }

    // --- observing ----------------------------------------------------------

    fn clear_trace(&mut self) {
        self.trace.clear();
    }

    fn requests(&self, from: u64, to: u64) -> Vec<&RaftRequest> {
        self.trace
            .iter()
            .filter_map(|ev| match ev {
                Event::Request(f, t, req) if *f == NodeId(from) && *t == NodeId(to) => Some(req),
                _ => None,
            })
            .collect()
    }

    fn appends(&self, from: u64, to: u64) -> Vec<&AppendEntriesRequest> {
        self.requests(from, to)
            .into_iter()
            .filter_map(|r| match r {
                RaftRequest::AppendEntries(a) => Some(a),
                _ => None,
            })
            .collect()
    }

    fn vote_requests_from(&self, from: u64) -> Vec<&VoteRequest> {
        self.trace
            .iter()
            .filter_map(|ev| match ev {
                Event::Request(f, _, RaftRequest::Vote(v)) if *f == NodeId(from) => Some(v),
                _ => None,
            })
            .collect()
    }

    /// Responses `responder` sent back to `requester` that were delivered.
    fn responses(&self, responder: u64, requester: u64) -> Vec<&RaftResponse> {
        self.trace
            .iter()
            .filter_map(|ev| match ev {
                Event::Response(r, q, resp) if *r == NodeId(responder) && *q == NodeId(requester) => Some(resp),
                _ => None,
            })
            .collect()
    }

    fn append_rejections(&self, follower: u64, leader: u64) -> Vec<&AppendEntriesResponse> {
        self.responses(follower, leader)
            .into_iter()
            .filter_map(|r| match r {
                RaftResponse::AppendEntries(a) if !a.success => Some(a),
                _ => None,
            })
            .collect()
    }

    fn follower_status(&self, leader: u64, follower: u64) -> super::FollowerStatus {
        self.core(leader)
            .status()
            .followers
            .into_iter()
            .find(|f| f.id == NodeId(follower))
            .expect("the leader tracks this follower")
    }
}

mod election;
mod guards;
mod persistence;
mod read_index;
mod replication;
mod snapshot;
mod status;
mod transfer;
