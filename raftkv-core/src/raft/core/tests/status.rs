//! Status: role, term, leader, commit and follower lag as reported.

use super::*;

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
