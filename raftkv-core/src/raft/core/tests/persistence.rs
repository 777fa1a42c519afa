//! Persistence before apply: nothing is applied or counted before it is reported durable.

use super::*;

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
