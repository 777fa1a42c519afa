//! Snapshots: compaction, sending to a lagging follower, and installing.

use super::*;

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
