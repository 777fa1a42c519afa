//! A full disk stops no member: its log writes fail, the member retries them,
//! refuses proposals meanwhile (a leader hands leadership to a follower that
//! has the whole log), keeps serving reads, and resumes by itself once space
//! is back. In the simulator, on in-memory disks that can be filled.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use raftkv_core::raft::driver::RaftError;
use raftkv_testkit::sim::{cmd, simulate, RaftCluster, RaftClusterConfig};
use tokio::time::{sleep, timeout};

const N: usize = 3;

#[test]
fn a_leader_whose_disk_fills_hands_leadership_over_and_writes_go_on() {
    simulate("a_leader_whose_disk_fills_hands_leadership_over_and_writes_go_on", |seed| async move {
        let mut cluster = RaftCluster::new(RaftClusterConfig::new(N), seed).await;
        cluster.one(cmd(1), N, false).await;
        let full = cluster.check_one_leader().await;
        assert!(cluster.set_disk_full(full, true));

        // Its next write fails: it hands over, and the others go on writing.
        cluster.one(cmd(2), N - 1, true).await;
        let leader = cluster.check_one_leader().await;
        assert_ne!(leader, full, "seed {seed}: the member with a full disk still leads");
        cluster.one(cmd(3), N - 1, true).await;
        let status = cluster.status(full).await.expect("the member with a full disk still runs");
        let failing = status.storage_failing.expect("its status says its writes fail");
        assert!(failing.contains("no space left"), "seed {seed}: {failing}");

        // Space is back: it catches up by itself, and takes proposals again.
        assert!(cluster.set_disk_full(full, false));
        let index = cluster.one(cmd(4), N, true).await;
        assert_eq!(cluster.wait(index, N, None).await, Some(cmd(4)));
        let status = cluster.status(full).await.expect("still running");
        assert_eq!(status.storage_failing, None, "seed {seed}: writes pass again");
        assert!(cluster.transfer_leader(leader, full).await);
        let mut accepted = None;
        for _ in 0..50 {
            if let Ok(index) = cluster.try_propose(full, cmd(5)).await {
                accepted = Some(index);
                break;
            }
            sleep(Duration::from_millis(100)).await;
        }
        let index = accepted.unwrap_or_else(|| panic!("seed {seed}: the recovered member never took a proposal"));
        assert_eq!(cluster.wait(index, N, None).await, Some(cmd(5)));
        cluster.end();
    });
}

#[test]
fn with_every_disk_full_writes_are_refused_reads_go_on_and_the_group_resumes_when_space_returns() {
    simulate(
        "with_every_disk_full_writes_are_refused_reads_go_on_and_the_group_resumes_when_space_returns",
        |seed| async move {
            let mut cluster = RaftCluster::new(RaftClusterConfig::new(N), seed).await;
            cluster.one(cmd(1), N, false).await;
            let leader = cluster.check_one_leader().await;
            for i in 0..N {
                assert!(cluster.set_disk_full(i, true));
            }

            // The first write after the disks filled is taken (nothing knows
            // yet) and waits; the leader finds its writes failing and refuses
            // the next with an error that says why.
            let (stuck, term) = cluster.start(leader, cmd(2)).await.expect("the leader takes a proposal");
            sleep(Duration::from_secs(1)).await;
            let refused = timeout(Duration::from_secs(1), cluster.try_propose(leader, cmd(3)))
                .await
                .expect("a refusal comes at once, it does not wait for the disk");
            match refused {
                Err(RaftError::StorageFailing { reason }) => {
                    assert!(reason.contains("no space left"), "seed {seed}: {reason}");
                }
                other => panic!("seed {seed}: expected a refusal naming the failing store, got {other:?}"),
            }
            // Reads go on, from the same leader (no member could take over).
            for _ in 0..3 {
                assert!(cluster.read_index(leader).await.is_some(), "seed {seed}: a read failed");
                sleep(Duration::from_secs(1)).await;
            }
            assert_eq!(cluster.state(leader).await, (term, true), "seed {seed}: leadership changed");
            for i in 0..N {
                assert!(cluster.alive(i));
            }

            // Space is back: the stuck write commits everywhere, new ones too.
            for i in 0..N {
                assert!(cluster.set_disk_full(i, false));
            }
            assert_eq!(cluster.wait(stuck, N, Some(term)).await, Some(cmd(2)), "seed {seed}: the stuck write");
            let index = timeout(Duration::from_secs(5), cluster.try_propose(leader, cmd(4)))
                .await
                .expect("a proposal after space came back commits")
                .expect("and is taken");
            assert!(index > stuck);
            for i in 0..N {
                let status = cluster.status(i).await.expect("running");
                assert_eq!(status.storage_failing, None, "seed {seed}: member {i} still reports failing writes");
            }
            cluster.end();
        },
    );
}
