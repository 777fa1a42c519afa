//! MIT 6.5840 lab 5A shard-controller tests, ported.

use raftkv_testkit::sim::{lab5_ctrler, simulate};

#[test]
fn basic_5a() {
    simulate("basic_5a", lab5_ctrler::basic);
}

#[test]
fn multi_5a() {
    simulate("multi_5a", lab5_ctrler::multi);
}

#[test]
fn minimal_again_5a() {
    simulate("minimal_again_5a", lab5_ctrler::minimal_again);
}
