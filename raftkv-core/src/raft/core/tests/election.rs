//! Elections: pre-vote, check-quorum, vote rules, leader lease.

use super::*;

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
