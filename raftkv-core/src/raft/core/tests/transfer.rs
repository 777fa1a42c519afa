//! Leadership transfer: catch-up, TimeoutNow, and abort after an election timeout.

use super::*;

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
