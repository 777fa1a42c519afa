//! MIT 6.5840 lab 5A ShardKV tests, ported.

use raftkv_testkit::sim::{lab5_shardkv, simulate};

#[test]
fn static_shards_5a() {
    simulate("static_shards_5a", lab5_shardkv::static_shards);
}

#[test]
fn rejection_5a() {
    simulate("rejection_5a", lab5_shardkv::rejection);
}
