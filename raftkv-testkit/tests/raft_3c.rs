//! Lab 3C — persistence, ported from MIT 6.5840 to the simulator.
//!
//! The scenarios live in [`raftkv_testkit::sim::lab3`] so that durable
//! backends can run them too; here they run on the in-memory disks.
//!
//! Our leaders append a blank entry at the start of each term, and blanks are
//! not handed to the state machine: log indices are not the lab's, so these
//! tests compare values (or indices returned by `one`), never absolute indices.

use raftkv_testkit::sim::{lab3, simulate};

#[test]
fn persist1_3c() {
    simulate("persist1_3c", |seed| lab3::persist1_3c(seed, None));
}

#[test]
fn persist2_3c() {
    simulate("persist2_3c", |seed| lab3::persist2_3c(seed, None));
}

#[test]
fn persist3_3c() {
    simulate("persist3_3c", |seed| lab3::persist3_3c(seed, None));
}

#[test]
fn figure8_3c() {
    simulate("figure8_3c", |seed| lab3::figure8_3c(seed, None));
}

#[test]
fn unreliable_agree_3c() {
    simulate("unreliable_agree_3c", |seed| lab3::unreliable_agree_3c(seed, None));
}

#[test]
fn figure8_unreliable_3c() {
    simulate("figure8_unreliable_3c", |seed| lab3::figure8_unreliable_3c(seed, None));
}

#[test]
fn reliable_churn_3c() {
    simulate("reliable_churn_3c", |seed| lab3::reliable_churn_3c(seed, None));
}

#[test]
fn unreliable_churn_3c() {
    simulate("unreliable_churn_3c", |seed| lab3::unreliable_churn_3c(seed, None));
}
