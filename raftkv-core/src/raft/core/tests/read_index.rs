//! ReadIndex: reads wait for the term's first commit and for a heartbeat
//! round answered by a majority.

use super::*;

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
