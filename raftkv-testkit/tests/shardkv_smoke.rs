//! End-to-end smoke of the sharded store on the simulator.

use raftkv_testkit::linearizability::assert_linearizable;
use raftkv_testkit::sim::{simulate, ShardCluster, ShardClusterConfig};

#[test]
fn kv_group_with_a_fixed_config_serves_reads_and_writes() {
    simulate("kv_group_with_a_fixed_config_serves_reads_and_writes", |seed| async move {
        let mut c = ShardCluster::new(ShardClusterConfig::kv(3, false, 0), seed).await;
        let mut ck = c.recorded_clerk();
        ck.put("a", "1").await;
        ck.append("a", "2").await;
        assert_eq!(ck.get("a").await, "12");
        assert_eq!(ck.get("missing").await, "");
        assert_linearizable(&c.recorder.operations());
        c.shutdown();
    });
}

#[test]
fn shards_move_between_groups_and_keep_their_data() {
    simulate("shards_move_between_groups_and_keep_their_data", |seed| async move {
        let mut c = ShardCluster::new(ShardClusterConfig::sharded(2, false, 0), seed).await;
        c.join(&[0]).await;
        let mut ck = c.recorded_clerk();
        for i in 0..10 {
            ck.put(&i.to_string(), &format!("v{i}")).await;
        }
        c.join(&[1]).await;
        for i in 0..10 {
            assert_eq!(ck.get(&i.to_string()).await, format!("v{i}"));
            ck.append(&i.to_string(), "x").await;
        }
        c.leave(&[0]).await;
        for i in 0..10 {
            assert_eq!(ck.get(&i.to_string()).await, format!("v{i}x"));
        }
        assert_linearizable(&c.recorder.operations());
        c.shutdown();
    });
}
