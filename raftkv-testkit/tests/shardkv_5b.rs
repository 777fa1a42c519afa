//! MIT 6.5840 lab 5B ShardKV tests and the two challenges, ported.

use raftkv_testkit::sim::{lab5_shardkv, simulate};

#[test]
fn join_leave_5b() {
    simulate("join_leave_5b", lab5_shardkv::join_leave);
}

#[test]
fn snapshot_5b() {
    simulate("snapshot_5b", lab5_shardkv::snapshot);
}

#[test]
fn miss_change_5b() {
    simulate("miss_change_5b", lab5_shardkv::miss_change);
}

#[test]
fn concurrent1_5b() {
    simulate("concurrent1_5b", lab5_shardkv::concurrent1);
}

#[test]
fn concurrent2_5b() {
    simulate("concurrent2_5b", lab5_shardkv::concurrent2);
}

#[test]
fn concurrent3_5b() {
    simulate("concurrent3_5b", lab5_shardkv::concurrent3);
}

#[test]
fn unreliable1_5b() {
    simulate("unreliable1_5b", lab5_shardkv::unreliable1);
}

#[test]
fn unreliable2_5b() {
    simulate("unreliable2_5b", lab5_shardkv::unreliable2);
}

#[test]
fn unreliable3_5b() {
    simulate("unreliable3_5b", lab5_shardkv::unreliable3);
}

#[test]
fn challenge1_delete() {
    simulate("challenge1_delete", lab5_shardkv::challenge1_delete);
}

#[test]
fn challenge2_unaffected() {
    simulate("challenge2_unaffected", lab5_shardkv::challenge2_unaffected);
}

#[test]
fn challenge2_partial() {
    simulate("challenge2_partial", lab5_shardkv::challenge2_partial);
}
