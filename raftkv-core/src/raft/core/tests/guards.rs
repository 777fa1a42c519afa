//! Guards: a response claiming entries the leader never sent, requests from
//! non-members or naming another sender, and terms pushed to the top of the
//! term space change nothing they must not.

use super::*;

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
