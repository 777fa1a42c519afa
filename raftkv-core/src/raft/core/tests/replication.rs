//! Replication: the commit rule (Figure 8), log repair with fast backup,
//! and flow control (pipelining, batching).

use super::*;

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
