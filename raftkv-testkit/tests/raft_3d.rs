//! Lab 3D — snapshots, ported from MIT 6.5840 to the simulator.
//!
//! The scenarios live in [`raftkv_testkit::sim::lab3`] so that durable
//! backends can run them too; here they run on the in-memory disks.
//!
//! Members snapshot every 10 applied entries (the lab's `SnapShotInterval`);
//! where the lab bounds the persisted raft state we bound the durable log
//! (entries + hard state) of every member.

use raftkv_testkit::sim::{lab3, simulate};

#[test]
fn snapshot_basic_3d() {
    simulate("snapshot_basic_3d", |seed| lab3::snapshot_basic_3d(seed, None));
}

#[test]
fn snapshot_install_3d() {
    simulate("snapshot_install_3d", |seed| lab3::snapshot_install_3d(seed, None));
}

#[test]
fn snapshot_install_unreliable_3d() {
    simulate("snapshot_install_unreliable_3d", |seed| lab3::snapshot_install_unreliable_3d(seed, None));
}

#[test]
fn snapshot_install_crash_3d() {
    simulate("snapshot_install_crash_3d", |seed| lab3::snapshot_install_crash_3d(seed, None));
}

#[test]
fn snapshot_install_un_crash_3d() {
    simulate("snapshot_install_un_crash_3d", |seed| lab3::snapshot_install_un_crash_3d(seed, None));
}

#[test]
fn snapshot_all_crash_3d() {
    simulate("snapshot_all_crash_3d", |seed| lab3::snapshot_all_crash_3d(seed, None));
}

#[test]
fn snapshot_init_3d() {
    simulate("snapshot_init_3d", |seed| lab3::snapshot_init_3d(seed, None));
}
