#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Deterministic tests of the sans-IO core.
//!
//! A tiny synchronous network ([`Net`]) wires `RaftCore`s together: every
//! `Ready` is executed at once (its `write` applied to an in-memory store,
//! `persisted` called, messages queued), queued requests are handled one at a
//! time — the receiver's `Ready` is made durable before its response is fed
//! back to the sender — until nothing moves. Links can be cut, and requests
//! dropped or held back by predicate. No tokio, no sleeps: time is `tick()`.

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

// ---------------------------------------------------------------------------
// Elections
// ---------------------------------------------------------------------------

#[test]
fn single_node_elects_itself_and_commits_a_proposal() {
    let mut net = Net::new(1, 11);
    net.elect(1);
    net.run();
    assert_eq!(net.core(1).term(), Term(1), "one election, one term");
    assert_eq!(net.core(1).leader(), Some(nid(1)));
    assert_eq!(payloads(&net.node(1).applied), vec![EntryPayload::Blank], "the leader's blank entry commits alone");

    let (index, term) = net.core_mut(1).propose([bytes("x")]).unwrap();
    assert_eq!((index, term), (LogIndex(2), Term(1)), "the proposal lands right after the blank entry");
    net.run();
    assert_eq!(net.core(1).status().commit, LogIndex(2), "a single voter is its own majority");
    assert_eq!(net.node(1).applied, vec![blank(1, 1), command(2, 1, "x")]);
    assert!(net.trace.is_empty(), "a single-node group sends no messages, got {:?}", net.trace);
}

#[test]
fn three_nodes_elect_one_leader_and_commit_proposals_in_order_everywhere() {
    let mut net = Net::new(3, 21);
    let leader = net.tick_until_leader();
    net.tick_all_and_run(3);
    assert_eq!(net.leaders(), vec![nid(leader)], "exactly one leader");
    let term = net.core(leader).term();
    for n in 1..=3 {
        assert_eq!(net.core(n).term(), term, "node {n} is in the leader's term");
        assert_eq!(net.core(n).leader(), Some(nid(leader)), "node {n} knows the leader");
        assert_eq!(net.node(n).applied, vec![blank(1, term.0)], "node {n} applied the leader's blank entry");
    }

    for c in ["a", "b", "c"] {
        net.core_mut(leader).propose([bytes(c)]).unwrap();
        net.run();
    }
    net.tick_all_and_run(1);
    let expected = vec![blank(1, term.0), command(2, term.0, "a"), command(3, term.0, "b"), command(4, term.0, "c")];
    for n in 1..=3 {
        assert_eq!(net.node(n).applied, expected, "node {n} applies every proposal, in order");
        assert_eq!(net.core(n).status().commit, LogIndex(4), "node {n} commit index");
    }
    assert_eq!(net.leaders(), vec![nid(leader)], "still exactly one leader");
}

#[test]
fn prevote_partitioned_follower_neither_bumps_its_term_nor_disrupts_the_leader() {
    let mut net = Net::new(3, 31);
    let leader = net.tick_until_leader();
    net.tick_all_and_run(2);
    let term = net.core(leader).term();
    let f = (1..=3).find(|&n| n != leader).unwrap();

    net.isolate(f);
    net.clear_trace();
    for round in 0..(5 * ELECTION_TICKS) {
        net.tick_all_and_run(1);
        assert_eq!(net.core(f).term(), term, "round {round}: a failing pre-vote must not increase the term");
    }
    let votes = net.vote_requests_from(f);
    let rounds = votes.len() / 2;
    assert!(
        rounds >= 2,
        "the partitioned follower should have timed out repeatedly ({rounds} pre-vote rounds): {votes:?}"
    );
    assert!(votes.iter().all(|v| v.pre_vote && v.term == term.next()), "only pre-votes for term+1: {votes:?}");
    assert_eq!(net.core(leader).role(), Role::Leader, "the majority side keeps its leader");

    // Rejoin. Let only the returning member tick so its pre-vote reaches the others.
    net.heal();
    net.clear_trace();
    for _ in 0..(2 * ELECTION_TICKS) {
        net.tick(f);
        net.run();
        if !net.vote_requests_from(f).is_empty() {
            break;
        }
    }
    assert!(!net.vote_requests_from(f).is_empty(), "the rejoined member campaigns again");
    for peer in (1..=3).filter(|&n| n != f) {
        for resp in net.responses(peer, f) {
            if let RaftResponse::Vote(v) = resp {
                assert!(!v.granted, "node {peer} heard from the leader recently and must refuse the pre-vote: {v:?}");
            }
        }
    }

    net.tick_all_and_run(5);
    assert_eq!(net.leaders(), vec![nid(leader)], "the leader was not disrupted");
    for n in 1..=3 {
        assert_eq!(net.core(n).term(), term, "node {n}: the term is unchanged after the partition heals");
    }
    assert_eq!(net.core(f).leader(), Some(nid(leader)), "the rejoined member follows the leader again");
}

#[test]
fn check_quorum_isolated_leader_steps_down_and_fails_pending_reads() {
    let mut net = Net::new(3, 41);
    let leader = net.tick_until_leader();
    net.tick_all_and_run(2);
    let term = net.core(leader).term();

    net.isolate(leader);
    net.core_mut(leader).read_index(99).unwrap();
    net.run();
    assert!(net.node(leader).read_states.is_empty(), "no majority can confirm the read");

    let mut stepped_down_at = None;
    for tick in 1..=(2 * ELECTION_TICKS) {
        net.tick_all_and_run(1);
        if net.core(leader).role() != Role::Leader {
            stepped_down_at = Some(tick);
            break;
        }
    }
    let at = stepped_down_at.expect("an isolated leader must step down within two election timeouts");
    assert!(
        at > ELECTION_TICKS,
        "activity seen before the partition covers one check-quorum round; stepped down at tick {at}"
    );
    assert_eq!(net.core(leader).role(), Role::Follower);
    assert_eq!(net.core(leader).leader(), None, "it no longer knows a leader");
    assert_eq!(net.core(leader).term(), term, "stepping down for lack of quorum keeps the term");
    assert_eq!(net.node(leader).failed_reads, vec![99], "the pending read fails");
    assert!(net.node(leader).read_states.is_empty(), "the read was never confirmed");
}

#[test]
fn vote_rejected_for_candidate_with_less_up_to_date_log() {
    let mut core = RaftCore::new(config(1, 3, 51), recovered(2, 0, log_of_terms(&[1, 1, 2]))).unwrap();

    let v = as_vote(core.handle_request(nid(2), vote_request(3, 2, 10, 1, false, false)));
    assert!(!v.granted, "longer log but older last term is less up to date: {v:?}");
    assert_eq!(core.term(), Term(3), "a higher-term vote request still moves the term");

    let v = as_vote(core.handle_request(nid(3), vote_request(4, 3, 2, 2, false, false)));
    assert!(!v.granted, "same last term but shorter log is less up to date: {v:?}");

    let v = as_vote(core.handle_request(nid(2), vote_request(5, 2, 2, 1, true, false)));
    assert!(!v.granted && v.pre_vote, "pre-votes apply the same log check: {v:?}");
    assert_eq!(core.term(), Term(4), "a pre-vote never changes the voter's term");

    let v = as_vote(core.handle_request(nid(3), vote_request(5, 3, 3, 2, false, false)));
    assert!(v.granted, "an equally up-to-date log gets the vote: {v:?}");
    let hs = core.ready().write.hard_state.expect("the vote must be persisted");
    assert_eq!((hs.term, hs.vote), (Term(5), Some(nid(3))));
}

#[test]
fn at_most_one_vote_per_term() {
    let mut core = RaftCore::new(config(1, 3, 52), RecoveredState::default()).unwrap();
    let v = as_vote(core.handle_request(nid(2), vote_request(1, 2, 0, 0, false, false)));
    assert!(v.granted, "first candidate of term 1 gets the vote");
    let v = as_vote(core.handle_request(nid(3), vote_request(1, 3, 0, 0, false, false)));
    assert!(!v.granted, "second candidate of the same term is refused");
    let v = as_vote(core.handle_request(nid(2), vote_request(1, 2, 0, 0, false, false)));
    assert!(v.granted, "a retried request from the same candidate is granted again");
    let hs = core.ready().write.hard_state.expect("the vote must be persisted before replying");
    assert_eq!(hs, HardState { term: Term(1), vote: Some(nid(2)), commit: LogIndex(0) });

    // The vote survives a restart.
    let mut restarted =
        RaftCore::new(config(1, 3, 53), RecoveredState { hard_state: hs, ..Default::default() }).unwrap();
    let v = as_vote(restarted.handle_request(nid(3), vote_request(1, 3, 0, 0, false, false)));
    assert!(!v.granted, "a restarted member remembers whom it voted for");
}

#[test]
fn follower_in_leader_lease_ignores_higher_term_votes_unless_transfer() {
    let mut core = RaftCore::new(config(2, 3, 54), RecoveredState::default()).unwrap();
    core.handle_request(nid(1), heartbeat_request(1, 1, 0));
    assert_eq!(core.leader(), Some(nid(1)));

    let v = as_vote(core.handle_request(nid(3), vote_request(2, 3, 0, 0, false, false)));
    assert!(!v.granted, "a follower that just heard from its leader ignores the vote: {v:?}");
    assert_eq!(v.term, Term(1), "the rejection carries the follower's own term");
    assert_eq!(core.term(), Term(1), "the term does not move inside the lease");
    assert_eq!(core.leader(), Some(nid(1)), "the leader is not forgotten");

    let v = as_vote(core.handle_request(nid(3), vote_request(2, 3, 0, 0, true, false)));
    assert!(!v.granted, "pre-votes are refused inside the lease too: {v:?}");

    let v = as_vote(core.handle_request(nid(3), vote_request(2, 3, 0, 0, false, true)));
    assert!(v.granted, "a leadership-transfer election bypasses the lease: {v:?}");
    assert_eq!(core.term(), Term(2));

    // Once the election timeout passes without the leader, the lease is over.
    let mut core = RaftCore::new(config(2, 3, 55), RecoveredState::default()).unwrap();
    core.handle_request(nid(1), heartbeat_request(1, 1, 0));
    for _ in 0..ELECTION_TICKS {
        core.tick();
    }
    let v = as_vote(core.handle_request(nid(3), vote_request(2, 3, 0, 0, false, false)));
    assert!(v.granted, "after an election timeout without the leader the vote is granted: {v:?}");

    // Without check-quorum there is no lease.
    let mut cfg = config(2, 3, 56);
    cfg.check_quorum = false;
    let mut core = RaftCore::new(cfg, RecoveredState::default()).unwrap();
    core.handle_request(nid(1), heartbeat_request(1, 1, 0));
    let v = as_vote(core.handle_request(nid(3), vote_request(2, 3, 0, 0, false, false)));
    assert!(v.granted, "no lease without check_quorum: {v:?}");
}

// ---------------------------------------------------------------------------
// Commit rule and log repair
// ---------------------------------------------------------------------------

#[test]
fn figure8_leader_never_commits_an_older_term_entry_by_counting_replicas() {
    // Node 1 holds entry 2 of term 2 that never committed; nodes 2 and 3 lack it.
    let mut net = Net::build(
        3,
        61,
        |c| c.max_entries_per_append = 1,
        |n| if n == 1 { recovered(2, 1, log_of_terms(&[1, 2])) } else { recovered(2, 1, log_of_terms(&[1])) },
    );
    // Let the first append carrying the new leader's blank entry (index 3) through
    // (it is rejected: the followers lack entry 2), lose the later ones.
    let seen = RefCell::new(BTreeSet::new());
    net.drop_if = Some(Box::new(move |_, to, req| match req {
        RaftRequest::AppendEntries(a) if a.entries.iter().any(|e| e.index == LogIndex(3)) => {
            !seen.borrow_mut().insert(to)
        }
        _ => false,
    }));
    net.elect(1);
    net.run();
    let term = net.core(1).term();
    assert_eq!(term, Term(3));
    assert_eq!(net.core(1).log().term(LogIndex(3)), Some(term), "the new leader's blank entry is at index 3");
    for _ in 0..3 {
        net.tick(1);
        net.run();
    }
    for f in [2, 3] {
        assert_eq!(net.follower_status(1, f).match_index, LogIndex(2), "entry 2 (term 2) is replicated on node {f}");
    }
    assert_eq!(
        net.core(1).status().commit,
        LogIndex(1),
        "entry 2 is on all three nodes but is of an older term: it must not be committed by counting replicas"
    );
    assert_eq!(net.node(1).applied, vec![blank(1, 1)], "nothing past the recovered commit is applied");

    net.drop_if = None;
    net.tick(1);
    net.run();
    assert_eq!(
        net.core(1).status().commit,
        LogIndex(3),
        "replicating an entry of the current term commits everything before it"
    );
    assert_eq!(net.node(1).applied, vec![blank(1, 1), blank(2, 2), blank(3, 3)]);
    net.tick(1);
    net.run();
    for f in [2, 3] {
        assert_eq!(net.node(f).applied, vec![blank(1, 1), blank(2, 2), blank(3, 3)], "node {f} applies the same log");
    }
}

#[test]
fn divergent_follower_is_truncated_and_fast_backup_needs_at_most_two_rejections() {
    // Leader side: 1@t1, 2..=60@t3. Node 3: 1@t1, then 50 uncommitted entries 2..=51 of term 2.
    let leader_log: Vec<u64> = [&[1][..], &[3; 59]].concat();
    let stale_log: Vec<u64> = [&[1][..], &[2; 50]].concat();
    let mut net = Net::build(
        3,
        71,
        |_| {},
        |n| if n == 3 { recovered(3, 1, log_of_terms(&stale_log)) } else { recovered(3, 1, log_of_terms(&leader_log)) },
    );
    net.elect(1);
    net.run();
    net.tick(1);
    net.run();

    let rejections = net.append_rejections(3, 1);
    assert!(
        !rejections.is_empty() && rejections.len() <= 2,
        "fast backup should need at most 2 rejections for one divergent term, needed {}: {rejections:?}",
        rejections.len()
    );
    assert!(
        rejections.iter().any(|r| r.conflict_term == Some(Term(2)) && r.conflict_index == LogIndex(2)),
        "the follower names its conflicting term and where that term starts: {rejections:?}"
    );
    let probes: Vec<u64> = net.appends(1, 3).iter().map(|a| a.prev_log_index.0).collect();
    assert_eq!(
        probes.get(..3),
        Some(&[60, 51, 1][..]),
        "probe at the leader's end, then the follower's end, then before the whole term-2 run; got {probes:?}"
    );
    assert_eq!(net.node(3).truncations, vec![LogIndex(1)], "the divergent suffix is truncated in the store");
    let leader_terms = net.node(1).store.terms();
    assert_eq!(leader_terms.len(), 61);
    assert_eq!(net.node(3).store.terms(), leader_terms, "the follower's durable log now equals the leader's");
    assert_eq!(net.core(3).log().last_index(), LogIndex(61));
    assert_eq!(net.core(3).status().commit, LogIndex(61));
}

#[test]
fn fast_backup_jumps_past_the_conflicting_term_when_the_leader_has_it() {
    // Leader: 1@t1, 2..=3@t2, 4..=10@t3. Node 3: 1@t1, 2..=51@t2 (2 and 3 match the leader).
    let leader_log = [1, 2, 2, 3, 3, 3, 3, 3, 3, 3];
    let stale_log: Vec<u64> = [&[1][..], &[2; 50]].concat();
    let mut net = Net::build(
        3,
        72,
        |_| {},
        |n| if n == 3 { recovered(3, 1, log_of_terms(&stale_log)) } else { recovered(3, 1, log_of_terms(&leader_log)) },
    );
    net.elect(1);
    net.run();

    let rejections = net.append_rejections(3, 1);
    assert_eq!(rejections.len(), 1, "one rejection is enough: {rejections:?}");
    assert_eq!((rejections[0].conflict_term, rejections[0].conflict_index), (Some(Term(2)), LogIndex(2)));
    let probes: Vec<u64> = net.appends(1, 3).iter().map(|a| a.prev_log_index.0).collect();
    assert_eq!(
        probes.get(..2),
        Some(&[10, 3][..]),
        "the retry starts after the leader's last term-2 entry; got {probes:?}"
    );
    assert_eq!(net.node(3).truncations, vec![LogIndex(3)], "entries 4..=51 of term 2 are dropped, 2..=3 kept");
    assert_eq!(net.node(3).store.terms(), net.node(1).store.terms(), "the logs converge");
}

#[test]
fn heartbeat_never_commits_a_followers_divergent_entries() {
    // Node 3 holds 2..=51 of term 2 that the leader's log does not have.
    let leader_log: Vec<u64> = [&[1][..], &[3; 59]].concat();
    let stale_log: Vec<u64> = [&[1][..], &[2; 50]].concat();
    let mut net = Net::build(
        3,
        74,
        |_| {},
        |n| if n == 3 { recovered(3, 1, log_of_terms(&stale_log)) } else { recovered(3, 1, log_of_terms(&leader_log)) },
    );
    net.drop_if = Some(Box::new(|_, to, req| to == NodeId(3) && is_append(req)));
    net.elect(1);
    net.run();
    for _ in 0..3 {
        net.tick(1);
        net.run();
    }
    assert_eq!(net.core(1).status().commit, LogIndex(61), "leader + node 2 commit everything");
    assert!(!net.requests(1, 3).is_empty(), "node 3 hears heartbeats");
    assert_eq!(
        net.core(3).status().commit,
        LogIndex(1),
        "a heartbeat may only carry min(leader commit, follower match): node 3's entries 2..=51 are not the leader's"
    );
    assert_eq!(indices(&net.node(3).applied), vec![1], "no divergent entry is applied");
}

#[test]
fn follower_truncation_is_reported_in_ready_write() {
    // A follower with uncommitted entries 2..=3 of term 1 receives entries of term 2 at the same place.
    let mut core = RaftCore::new(config(2, 3, 73), recovered(1, 1, log_of_terms(&[1, 1, 1]))).unwrap();
    core.ready();
    let resp = as_append(core.handle_request(nid(1), append_request(2, 1, 1, 1, vec![command(2, 2, "new")], 1)));
    assert!(resp.success, "{resp:?}");
    assert_eq!(resp.match_index, LogIndex(2));
    let rd = core.ready();
    assert_eq!(rd.write.truncate_after, Some(LogIndex(1)), "the store must drop the conflicting entries 2..=3");
    assert_eq!(rd.write.entries, vec![command(2, 2, "new")], "and append the leader's entry");
    assert_eq!(rd.persist_upto, Some(LogIndex(2)));
    assert_eq!(core.log().last_index(), LogIndex(2), "entry 3 is gone from memory too");
}

// ---------------------------------------------------------------------------
// Replication flow control
// ---------------------------------------------------------------------------

#[test]
fn pipelining_caps_appends_in_flight_at_max_inflight() {
    let mut net = Net::build(3, 81, |c| c.max_inflight = 4, |_| RecoveredState::default());
    net.elect(1);
    net.run();
    for f in [2, 3] {
        assert_eq!(net.follower_status(1, f).state, ProgressState::Replicate, "node {f} acked the blank entry");
    }

    // Node 2 receives nothing (its requests are parked), node 3 answers normally.
    net.hold_if = Some(Box::new(|_, to, _| to == NodeId(2)));
    net.clear_trace();
    for i in 0..6 {
        net.core_mut(1).propose([Bytes::from(format!("cmd{i}"))]).unwrap();
        net.run();
    }
    assert_eq!(net.appends(1, 3).len(), 6, "the answering follower gets one append per proposal");
    let to_slow = net.appends(1, 2);
    assert_eq!(to_slow.len(), 4, "at most max_inflight = 4 appends to a follower that never answers");
    assert_eq!(
        to_slow.iter().map(|a| indices(&a.entries)).collect::<Vec<_>>(),
        vec![vec![2], vec![3], vec![4], vec![5]]
    );
    assert_eq!(net.core(1).status().commit, LogIndex(7), "node 3 alone completes a majority");

    // The first ack frees one slot: the rest goes out, batched into one append.
    net.release_one_held();
    let to_slow = net.appends(1, 2);
    assert_eq!(to_slow.len(), 5, "an ack lets one more append out");
    assert_eq!(indices(&to_slow[4].entries), vec![6, 7], "the entries that waited go out together");

    net.release_all_held();
    assert_eq!(net.follower_status(1, 2).match_index, LogIndex(7), "node 2 caught up once its acks flowed");
}

#[test]
fn proposals_between_two_ready_calls_go_out_in_one_append_per_follower() {
    let mut net = Net::new(3, 82);
    net.elect(1);
    net.run();
    for c in ["a", "b", "c"] {
        net.core_mut(1).propose([bytes(c)]).unwrap();
    }
    let rd = net.take_ready(1);
    let per_follower: BTreeMap<NodeId, Vec<Vec<u64>>> =
        rd.append_messages.iter().fold(BTreeMap::new(), |mut acc, (to, req)| {
            if let RaftRequest::AppendEntries(a) = req {
                acc.entry(*to).or_default().push(indices(&a.entries));
            }
            acc
        });
    assert_eq!(
        per_follower,
        BTreeMap::from([(nid(2), vec![vec![2, 3, 4]]), (nid(3), vec![vec![2, 3, 4]])]),
        "three proposals, one append per follower"
    );
    assert_eq!(indices(&rd.write.entries), vec![2, 3, 4], "and one local write");
    net.process(nid(1), rd);
    net.run();
    assert_eq!(net.core(1).status().commit, LogIndex(4));
}

// ---------------------------------------------------------------------------
// Persistence before apply
// ---------------------------------------------------------------------------

#[test]
fn follower_applies_only_entries_reported_persisted() {
    let mut core = RaftCore::new(config(2, 3, 91), RecoveredState::default()).unwrap();
    let entries = vec![blank(1, 1), command(2, 1, "x"), command(3, 1, "y")];
    let resp = as_append(core.handle_request(nid(1), append_request(1, 1, 0, 0, entries.clone(), 3)));
    assert!(resp.success && resp.match_index == LogIndex(3), "{resp:?}");
    assert_eq!(core.status().commit, LogIndex(3), "the leader said 1..=3 are committed");

    let rd = core.ready();
    assert_eq!(rd.write.entries, entries, "the entries must be made durable");
    assert_eq!(rd.persist_upto, Some(LogIndex(3)));
    assert!(rd.committed.is_empty(), "committed but not yet durable here: nothing to apply, got {:?}", rd.committed);
    assert!(core.ready().committed.is_empty(), "still nothing before persisted()");

    core.persisted(LogIndex(2));
    assert_eq!(indices(&core.ready().committed), vec![1, 2], "only the durable prefix is applied");
    core.persisted(LogIndex(3));
    assert_eq!(indices(&core.ready().committed), vec![3]);
    assert_eq!(core.status().applied, LogIndex(3));
}

#[test]
fn leader_counts_its_own_entry_only_once_persisted() {
    let mut net = Net::new(3, 92);
    net.elect(1);
    net.run();
    assert_eq!(net.core(1).status().commit, LogIndex(1));

    net.node_mut(1).hold_persist = true;
    net.isolate(3);
    net.core_mut(1).propose([bytes("x")]).unwrap();
    net.run();
    assert_eq!(net.follower_status(1, 2).match_index, LogIndex(2), "node 2 stored entry 2");
    assert_eq!(
        net.core(1).status().commit,
        LogIndex(1),
        "leader + node 2 would be a majority, but the leader's own copy is not durable yet"
    );

    net.persist(1);
    net.run();
    assert_eq!(net.core(1).status().commit, LogIndex(2), "once the leader's write is durable, entry 2 commits");
    assert_eq!(indices(&net.node(1).applied), vec![1, 2]);
}

// ---------------------------------------------------------------------------
// ReadIndex
// ---------------------------------------------------------------------------

#[test]
fn read_before_first_commit_in_term_is_deferred() {
    let mut net = Net::new(3, 101);
    net.drop_if = Some(Box::new(|_, _, req| is_append(req)));
    net.elect(1);
    net.run();
    assert_eq!(net.core(1).status().commit, LogIndex(0), "the blank entry cannot replicate yet");

    net.clear_trace();
    net.core_mut(1).read_index(7).unwrap();
    net.run();
    assert!(net.node(1).read_states.is_empty(), "no read may be served before the leader commits in its term");
    assert!(
        net.requests(1, 2).is_empty() && net.requests(1, 3).is_empty(),
        "a deferred read does not start a heartbeat round"
    );

    net.drop_if = None;
    net.tick(1);
    net.run();
    assert_eq!(net.core(1).status().commit, LogIndex(1), "the blank entry committed");
    assert_eq!(
        net.node(1).read_states,
        vec![ReadState { ctx: 7, index: LogIndex(1) }],
        "the deferred read is served at the first commit of the term"
    );
}

#[test]
fn read_released_only_when_a_majority_answers_its_heartbeat_round() {
    let mut net = Net::new(5, 102);
    net.elect(1);
    net.run();
    net.tick(1);
    net.run();
    let commit = net.core(1).status().commit;
    assert_eq!(commit, LogIndex(1));

    net.hold_if = Some(Box::new(|_, _, req| is_heartbeat(req)));
    net.core_mut(1).read_index(8).unwrap();
    net.core_mut(1).propose([bytes("y")]).unwrap();
    net.run();
    assert_eq!(net.core(1).status().commit, LogIndex(2), "the later proposal commits through appends");
    assert!(net.node(1).read_states.is_empty(), "appends sent before the round do not confirm the read");
    assert_eq!(net.held.len(), 4, "one heartbeat per follower for the round: {:?}", net.held);

    net.release_one_held();
    assert!(net.node(1).read_states.is_empty(), "leader + 1 of 5 is not a majority");
    net.release_one_held();
    assert_eq!(
        net.node(1).read_states,
        vec![ReadState { ctx: 8, index: commit }],
        "leader + 2 of 5 confirm; the read index is the commit index when the read was requested"
    );
}

#[test]
fn reads_before_one_ready_share_one_heartbeat_round() {
    let mut net = Net::new(3, 103);
    net.elect(1);
    net.run();
    net.tick(1);
    net.run();
    for ctx in 1..=3 {
        net.core_mut(1).read_index(ctx).unwrap();
    }
    let rd = net.take_ready(1);
    for f in [2, 3] {
        let beats = rd.append_messages.iter().filter(|(to, req)| *to == nid(f) && is_heartbeat(req)).count();
        assert_eq!(beats, 1, "three reads, one heartbeat to node {f}");
    }
    net.process(nid(1), rd);
    net.run();
    let index = net.core(1).status().commit;
    assert_eq!(
        net.node(1).read_states,
        (1..=3).map(|ctx| ReadState { ctx, index }).collect::<Vec<_>>(),
        "all three reads are released by the one round"
    );
}

#[test]
fn read_index_on_follower_returns_not_leader_with_hint() {
    let mut net = Net::new(3, 104);
    net.elect(1);
    net.run();
    assert_eq!(net.core_mut(2).read_index(5), Err(NotReady::NotLeader { leader_hint: Some(nid(1)) }));
    assert_eq!(
        net.core_mut(3).propose([bytes("x")]),
        Err(NotReady::NotLeader { leader_hint: Some(nid(1)) }),
        "proposals on a follower are refused the same way"
    );
}

#[test]
fn has_ready_reports_a_read_round_waiting_to_be_sent() {
    // The driver only calls ready() when has_ready() is true.
    let mut net = Net::new(3, 105);
    net.elect(1);
    net.run();
    net.tick(1);
    net.run();
    assert!(!net.core(1).has_ready(), "the group is quiet");
    net.core_mut(1).read_index(1).unwrap();
    assert!(
        net.core(1).has_ready(),
        "ready() now holds the heartbeat round for the read; has_ready() must say so or the read waits for the next tick"
    );
    let rd = net.take_ready(1);
    assert!(rd.append_messages.iter().any(|(_, req)| is_heartbeat(req)), "the round is in this ready");
}

// ---------------------------------------------------------------------------
// Leadership transfer
// ---------------------------------------------------------------------------

#[test]
fn transfer_waits_for_catch_up_then_target_wins_without_prevote() {
    let mut net = Net::new(3, 111);
    net.elect(1);
    net.run();
    let term = net.core(1).term();

    net.block(1, 3);
    net.core_mut(1).propose([bytes("a"), bytes("b")]).unwrap();
    net.run();
    let last = net.core(1).log().last_index();
    assert_eq!(last, LogIndex(3));
    assert!(net.follower_status(1, 3).match_index < last, "node 3 lags behind");

    net.core_mut(1).transfer_leader(nid(3)).unwrap();
    let rd = net.take_ready(1);
    assert!(
        !rd.messages.iter().chain(&rd.append_messages).any(|(_, req)| is_timeout_now(req)),
        "no TimeoutNow to a lagging target"
    );
    net.process(nid(1), rd);
    net.run();
    assert!(net.timeout_nows.is_empty(), "still no TimeoutNow");
    assert_eq!(net.core_mut(1).propose([bytes("c")]), Err(NotReady::TransferInProgress(nid(3))));
    assert_eq!(net.core(1).check_can_propose(), Err(NotReady::TransferInProgress(nid(3))));

    net.heal();
    net.clear_trace();
    net.tick(1);
    net.run();
    assert!(!net.timeout_nows.is_empty(), "the target caught up, so TimeoutNow was sent");
    for sent in &net.timeout_nows {
        assert_eq!(sent.to, nid(3));
        assert_eq!(sent.target_match, sent.leader_last, "TimeoutNow only once the target's match is the last index");
    }
    assert_eq!(net.core(3).role(), Role::Leader, "the target won");
    assert_eq!(net.core(3).term(), term.next(), "one real election, no pre-vote round");
    let votes = net.vote_requests_from(3);
    assert!(
        !votes.is_empty() && votes.iter().all(|v| !v.pre_vote && v.transfer),
        "transfer elections skip pre-vote: {votes:?}"
    );
    assert_eq!(net.core(1).role(), Role::Follower);
    assert_eq!(net.core(1).leader(), Some(nid(3)));
    assert_eq!(net.core(2).leader(), Some(nid(3)), "node 2 voted despite its lease: the request was a transfer");
}

#[test]
fn transfer_to_caught_up_follower_sends_timeout_now_at_once() {
    let mut net = Net::new(3, 113);
    net.elect(1);
    net.run();
    net.core_mut(1).transfer_leader(nid(2)).unwrap();
    let rd = net.take_ready(1);
    let timeout_nows: Vec<NodeId> =
        rd.append_messages.iter().filter(|(_, r)| is_timeout_now(r)).map(|(to, _)| *to).collect();
    assert_eq!(
        timeout_nows,
        vec![nid(2)],
        "the target is caught up: TimeoutNow goes out in the next ready, without waiting for a write"
    );
    net.process(nid(1), rd);
    net.run();
    assert_eq!(net.leaders(), vec![nid(2)]);
}

#[test]
fn transfer_aborts_after_an_election_timeout_if_target_never_catches_up() {
    let mut net = Net::new(3, 112);
    net.elect(1);
    net.run();
    let term = net.core(1).term();
    net.isolate(3);
    net.core_mut(1).propose([bytes("a")]).unwrap();
    net.run();
    net.core_mut(1).transfer_leader(nid(3)).unwrap();
    net.run();

    for tick in 1..ELECTION_TICKS {
        net.tick_all_and_run(1);
        assert_eq!(
            net.core(1).check_can_propose(),
            Err(NotReady::TransferInProgress(nid(3))),
            "tick {tick}: the transfer is still pending"
        );
    }
    net.tick_all_and_run(1);
    assert_eq!(net.core(1).check_can_propose(), Ok(()), "after an election timeout the transfer is abandoned");
    net.core_mut(1).propose([bytes("b")]).unwrap();
    net.run();
    assert_eq!(net.core(1).role(), Role::Leader, "the leader stays");
    assert_eq!(net.core(1).term(), term);
    assert!(net.timeout_nows.is_empty(), "no TimeoutNow was ever sent");
    assert_eq!(net.core(1).status().commit, LogIndex(3));
}

// ---------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------

#[test]
fn compact_drops_entries_and_sets_purge_through() {
    let mut net = Net::new(1, 121);
    net.elect(1);
    net.run();
    net.core_mut(1).propose(["a", "b", "c", "d", "e"].map(bytes)).unwrap();
    net.run();
    assert_eq!(net.core(1).status().applied, LogIndex(6));
    let term = net.core(1).term();

    assert!(!net.core_mut(1).compact(SnapshotMeta { last_index: LogIndex(7), last_term: term }), "beyond applied");
    assert!(!net.core_mut(1).compact(SnapshotMeta { last_index: LogIndex(4), last_term: term.next() }), "wrong term");
    let meta = SnapshotMeta { last_index: LogIndex(4), last_term: term };
    assert!(net.core_mut(1).compact(meta));
    let rd = net.take_ready(1);
    assert_eq!(rd.purge_through, Some(LogIndex(4)), "the store may drop entries up to the snapshot");
    net.process(nid(1), rd);

    let log = net.core(1).log();
    assert_eq!(log.snapshot(), meta);
    assert_eq!(log.first_index(), LogIndex(5));
    assert_eq!(log.entry(LogIndex(4)), None, "entry 4 is gone from memory");
    assert_eq!(log.term(LogIndex(4)), Some(term), "the snapshot point's term is still known");
    assert_eq!(log.last_index(), LogIndex(6));
    assert_eq!(net.node(1).store.terms().iter().map(|&(i, _)| i).collect::<Vec<_>>(), vec![5, 6]);
    assert_eq!(net.core(1).status().snapshot_index, LogIndex(4));
    assert!(!net.core_mut(1).compact(SnapshotMeta { last_index: LogIndex(3), last_term: term }), "older snapshot");
}

#[test]
fn lagging_follower_gets_a_snapshot_then_appends_resume_after_it() {
    let mut net = Net::new(3, 122);
    net.elect(1);
    net.run();
    net.isolate(3);
    net.core_mut(1).propose(["a", "b", "c", "d", "e"].map(bytes)).unwrap();
    net.run();
    assert_eq!(net.core(1).status().applied, LogIndex(6));
    let term = net.core(1).term();
    let meta = SnapshotMeta { last_index: LogIndex(5), last_term: term };
    assert!(net.core_mut(1).compact(meta));
    net.run();

    net.heal();
    net.tick(1);
    net.run();
    assert_eq!(net.node(1).send_snapshots, vec![nid(3)], "node 3 needs entries the leader no longer has");
    assert_eq!(net.follower_status(1, 3).state, ProgressState::Snapshot(LogIndex(5)));

    net.clear_trace();
    net.tick(1);
    net.run();
    assert!(net.appends(1, 3).is_empty(), "no appends while the snapshot is being sent");

    // Stream the snapshot (one chunk) and install it on node 3.
    let chunk = InstallSnapshotRequest { term, leader: nid(1), meta, offset: 0, data: bytes("state"), done: true };
    assert_eq!(net.core_mut(3).handle_snapshot_chunk(&chunk), ChunkVerdict::Write);
    assert!(net.core_mut(3).install_snapshot(meta));
    net.run();
    assert_eq!(net.node(3).restored, vec![meta]);

    net.clear_trace();
    net.core_mut(1).snapshot_sent(nid(3), SnapshotSendOutcome::Installed(meta));
    let rd = net.take_ready(1);
    let resumed: Vec<&AppendEntriesRequest> = rd
        .append_messages
        .iter()
        .filter_map(|(to, r)| match r {
            RaftRequest::AppendEntries(a) if *to == nid(3) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(resumed.len(), 1, "appends resume right after the snapshot");
    assert_eq!((resumed[0].prev_log_index, resumed[0].prev_log_term), (LogIndex(5), term), "from meta.last_index + 1");
    assert_eq!(indices(&resumed[0].entries), vec![6]);
    net.process(nid(1), rd);
    net.run();
    net.tick(1);
    net.run();

    let st = net.follower_status(1, 3);
    assert_eq!((st.match_index, st.lag, st.state), (LogIndex(6), 0, ProgressState::Replicate));
    assert_eq!(indices(&net.node(3).applied), vec![1, 6], "entries 2..=5 came through the snapshot");
    assert_eq!(net.node(3).store.terms().iter().map(|&(i, _)| i).collect::<Vec<_>>(), vec![6]);
}

#[test]
fn snapshot_chunk_from_stale_term_is_not_accepted() {
    let mut core = RaftCore::new(config(2, 3, 123), recovered(5, 0, vec![])).unwrap();
    let meta = SnapshotMeta { last_index: LogIndex(10), last_term: Term(3) };
    let chunk =
        InstallSnapshotRequest { term: Term(3), leader: nid(1), meta, offset: 0, data: bytes("abc"), done: false };
    match core.handle_snapshot_chunk(&chunk) {
        ChunkVerdict::Reply(resp) => {
            assert!(!resp.accepted, "a chunk from a stale leader is refused: {resp:?}");
            assert_eq!(resp.term, Term(5), "the reply tells the stale leader the newer term");
        }
        ChunkVerdict::Write => panic!("a stale leader's chunk must not be written"),
    }
    assert_eq!(core.term(), Term(5));
    match core.handle_request(nid(1), RaftRequest::InstallSnapshot(chunk)) {
        RaftResponse::InstallSnapshot(resp) => assert!(!resp.accepted && resp.term == Term(5), "{resp:?}"),
        other => panic!("unexpected {other:?}"),
    }

    // A current leader's snapshot that we already cover is acknowledged whole.
    let mut core = RaftCore::new(config(2, 3, 124), recovered(5, 4, log_of_terms(&[1, 1, 2, 2]))).unwrap();
    let meta = SnapshotMeta { last_index: LogIndex(3), last_term: Term(2) };
    let chunk =
        InstallSnapshotRequest { term: Term(5), leader: nid(1), meta, offset: 6, data: bytes("abcd"), done: false };
    match core.handle_snapshot_chunk(&chunk) {
        ChunkVerdict::Reply(resp) => assert!(resp.accepted && resp.next_offset == 10, "{resp:?}"),
        ChunkVerdict::Write => panic!("a snapshot we already cover need not be written"),
    }
    assert_eq!(core.leader(), Some(nid(1)));
}

#[test]
fn install_snapshot_replaces_the_log_or_keeps_a_matching_suffix() {
    // No matching entry: the whole log goes.
    let mut net = Net::build(3, 125, |_| {}, |_| recovered(2, 1, log_of_terms(&[1, 1, 1])));
    net.run();
    let meta = SnapshotMeta { last_index: LogIndex(10), last_term: Term(2) };
    assert!(net.core_mut(2).install_snapshot(meta));
    let rd = net.take_ready(2);
    assert_eq!(rd.restore_snapshot, Some(meta), "the state machine must restore the snapshot");
    assert_eq!(rd.purge_through, Some(LogIndex(10)));
    assert!(rd.committed.is_empty(), "nothing to apply on top yet");
    net.process(nid(2), rd);
    let log = net.core(2).log();
    assert!(log.is_empty(), "no entry survives");
    assert_eq!((log.first_index(), log.last_index(), log.last_term()), (LogIndex(11), LogIndex(10), Term(2)));
    assert!(
        net.node(2).store.entries.is_empty(),
        "the store is emptied by write + purge: {:?}",
        net.node(2).store.terms()
    );
    let st = net.core(2).status();
    assert_eq!((st.commit, st.applied, st.snapshot_index), (LogIndex(10), LogIndex(10), LogIndex(10)));
    // The leader can continue right after the snapshot.
    let resp = as_append(net.core_mut(2).handle_request(nid(1), append_request(2, 1, 10, 2, vec![blank(11, 2)], 11)));
    assert!(resp.success && resp.match_index == LogIndex(11), "{resp:?}");
    net.run();
    assert_eq!(indices(&net.node(2).applied), vec![1, 11]);

    // Matching entry at the snapshot point: the suffix stays.
    let mut core = RaftCore::new(config(3, 3, 126), recovered(2, 0, log_of_terms(&[1, 1, 1, 2, 2]))).unwrap();
    let meta = SnapshotMeta { last_index: LogIndex(3), last_term: Term(1) };
    assert!(core.install_snapshot(meta));
    let rd = core.ready();
    assert_eq!(rd.restore_snapshot, Some(meta));
    assert_eq!(rd.purge_through, Some(LogIndex(3)));
    assert_eq!(rd.write.truncate_after, None, "a matching suffix is kept, nothing to truncate");
    assert!(rd.committed.is_empty());
    assert_eq!((core.log().first_index(), core.log().last_index()), (LogIndex(4), LogIndex(5)));
    assert_eq!(core.log().entry(LogIndex(5)), Some(&blank(5, 2)));

    assert!(!core.install_snapshot(SnapshotMeta { last_index: LogIndex(2), last_term: Term(1) }), "older than commit");
}

#[test]
fn install_snapshot_after_unflushed_truncation_keeps_the_log_write_contiguous() {
    // Follower: 1..=10 of term 1 durable, commit 2.
    let mut net = Net::build(3, 127, |_| {}, |_| recovered(1, 2, log_of_terms(&[1; 10])));
    net.run();
    // A (delayed) append of the term-2 leader replaces 3..=10 with 3..=8 of term 2 ...
    let entries: Vec<Entry> = (3..=8).map(|i| blank(i, 2)).collect();
    let resp = as_append(net.core_mut(2).handle_request(nid(1), append_request(2, 1, 2, 1, entries, 2)));
    assert!(resp.success, "{resp:?}");
    // ... and, before the next ready(), the last chunk of a snapshot through 5 (term 2) is installed.
    let meta = SnapshotMeta { last_index: LogIndex(5), last_term: Term(2) };
    assert!(net.core_mut(2).install_snapshot(meta));
    let rd = net.take_ready(2);
    let first_new = rd.write.entries.first().map(|e| e.index);
    let after_truncate = rd.write.truncate_after.map_or(LogIndex(10), |t| t.min(LogIndex(10)));
    assert_eq!(
        first_new,
        Some(after_truncate.next()),
        "LogWrite contract: entries start at last_index + 1 after truncation (the store holds 1..=10); \
         got truncate_after={:?}, entries={:?}, purge_through={:?}",
        rd.write.truncate_after,
        indices(&rd.write.entries),
        rd.purge_through
    );
    net.process(nid(2), rd);
    assert_eq!(net.node(2).store.terms(), vec![(6, 2), (7, 2), (8, 2)], "after write + purge only 6..=8 remain");
}

// ---------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------

#[test]
fn status_reports_role_term_leader_commit_and_follower_lag() {
    let mut net = Net::new(3, 131);
    net.elect(1);
    net.run();
    net.isolate(3);
    net.core_mut(1).propose(["a", "b", "c"].map(bytes)).unwrap();
    net.run();
    net.tick(1);
    net.run();
    let term = net.core(1).term();

    let st = net.core(1).status();
    assert_eq!((st.id, st.role, st.term, st.leader), (nid(1), Role::Leader, term, Some(nid(1))));
    assert_eq!(
        (st.commit, st.applied, st.last_index, st.snapshot_index),
        (LogIndex(4), LogIndex(4), LogIndex(4), LogIndex(0))
    );
    let lags: Vec<(NodeId, LogIndex, u64)> = st.followers.iter().map(|f| (f.id, f.match_index, f.lag)).collect();
    assert_eq!(lags, vec![(nid(2), LogIndex(4), 0), (nid(3), LogIndex(1), 3)], "node 3 misses the three proposals");

    let st = net.core(2).status();
    assert_eq!((st.role, st.term, st.leader, st.commit), (Role::Follower, term, Some(nid(1)), LogIndex(4)));
    assert!(st.followers.is_empty(), "only the leader reports followers");
}

#[test]
fn leader_ignores_a_success_claiming_entries_past_its_log() {
    let mut net = Net::new(3, 91);
    net.elect(1);
    net.run();
    let before = net.follower_status(1, 2);
    let commit = net.core(1).status().commit;
    let last = net.core(1).status().last_index;
    // A bogus (or corrupted) answer claiming node 2 holds far more than the leader has.
    let bogus = AppendEntriesResponse {
        term: net.core(1).term(),
        success: true,
        match_index: LogIndex(u64::MAX),
        rejected_prev: LogIndex(0),
        conflict_term: None,
        conflict_index: LogIndex(0),
        read_seq: 0,
    };
    net.core_mut(1).handle_response(nid(2), RaftResponse::AppendEntries(bogus));
    assert_eq!(net.follower_status(1, 2), before, "progress is unchanged");
    assert_eq!(net.core(1).status().commit, commit);
    net.core_mut(1).propose([bytes("after")]).unwrap();
    net.run();
    assert_eq!(net.core(1).status().commit, last.next(), "replication goes on normally");
}

#[test]
fn requests_from_non_members_or_naming_another_sender_change_nothing() {
    let mut core = RaftCore::new(config(1, 3, 61), recovered(3, 2, log_of_terms(&[1, 2, 3]))).unwrap();
    let before = (core.term(), core.leader(), core.log().last_index());
    let huge = i64::MAX as u64;
    let forged = [
        // From outside the group.
        (99, heartbeat_request(huge, 99, 100)),
        (99, append_request(huge, 99, 3, 3, vec![command(4, huge, "x")], 4)),
        (99, vote_request(huge, 99, 100, huge, false, true)),
        // From a member, naming another sender.
        (2, heartbeat_request(huge, 3, 100)),
        (2, append_request(huge, 3, 3, 3, vec![command(4, huge, "x")], 4)),
        (2, vote_request(huge, 3, 100, huge, false, true)),
        // Claiming to come from this member itself.
        (1, heartbeat_request(huge, 1, 100)),
        // From a member, with a term past any a group reaches.
        (2, heartbeat_request(MAX_ADOPTED_TERM.0 + 1, 2, 100)),
        (2, vote_request(huge, 2, 100, huge, false, true)),
    ];
    for (from, request) in forged {
        let name = request.name();
        let answer = core.handle_request(nid(from), request);
        match &answer {
            RaftResponse::Vote(v) => assert!(!v.granted, "{name} from {from} was granted"),
            RaftResponse::AppendEntries(a) => assert!(!a.success, "{name} from {from} was appended"),
            _ => {}
        }
        let term = match answer {
            RaftResponse::AppendEntries(r) => r.term,
            RaftResponse::Heartbeat(r) => r.term,
            RaftResponse::Vote(r) => r.term,
            RaftResponse::InstallSnapshot(r) => r.term,
            RaftResponse::TimeoutNow(r) => r.term,
        };
        assert_eq!(term, Term(3), "{name} from {from}: answered with another term");
        assert_eq!(
            (core.term(), core.leader(), core.log().last_index()),
            before,
            "{name} from {from} changed the member"
        );
    }
    let ready = core.ready();
    assert!(ready.write.is_empty() && ready.messages.is_empty(), "a forged request made work: {ready:?}");
    // A genuine member is still heard.
    let answer = as_append(core.handle_request(nid(2), append_request(4, 2, 3, 3, vec![command(4, 4, "y")], 3)));
    assert!(answer.success && core.term() == Term(4) && core.leader() == Some(nid(2)));
    // A response with such a term is ignored too.
    core.handle_response(
        nid(3),
        RaftResponse::Heartbeat(crate::raft::HeartbeatResponse { term: Term(huge), read_seq: 0 }),
    );
    assert_eq!(core.term(), Term(4));
}

#[test]
fn a_group_pushed_to_the_highest_term_it_adopts_still_elects_a_leader() {
    let mut net = Net::new(3, 71);
    net.elect(1);
    net.run();
    // A member (or someone with its credentials) jumps to the highest term taken at once.
    let top = MAX_ADOPTED_TERM.0;
    net.core_mut(2).handle_request(nid(1), heartbeat_request(top, 1, 0));
    assert_eq!(net.core(2).term(), MAX_ADOPTED_TERM);
    // Past it, only small steps: a jump to the end of the term space is refused.
    net.core_mut(2).handle_request(nid(1), heartbeat_request(top + MAX_TERM_STEP + 1, 1, 0));
    assert_eq!(net.core(2).term(), MAX_ADOPTED_TERM);
    // Elections go on above it.
    let mut elected = false;
    for _ in 0..(40 * ELECTION_TICKS) {
        net.tick_all_and_run(1);
        let leaders = net.leaders();
        if leaders.len() == 1 && net.core(leaders[0].0).term() > MAX_ADOPTED_TERM {
            elected = true;
            break;
        }
    }
    assert!(elected, "no leader above the term the group was pushed to");
}
