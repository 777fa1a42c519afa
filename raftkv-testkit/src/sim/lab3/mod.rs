//! The MIT 6.5840 lab-3C (persistence) and lab-3D (snapshot) scenarios as
//! library functions, so that every storage backend can run them unchanged.
//!
//! Each function is one lab test, named like the `#[test]` that runs it on the
//! in-memory disks (`raftkv-testkit/tests/raft_3c.rs`, `raft_3d.rs`). It
//! takes the seed and the members' storage, builds its [`RaftClusterConfig`]
//! with that storage, and runs the whole scenario, [`RaftCluster::end`]
//! included. Run it inside [`simulate`](super::simulate) (virtual time, one
//! thread):
//!
//! ```
//! use std::sync::Arc;
//! use raftkv_testkit::sim::{lab3, simulate, MemStorage};
//!
//! simulate("persist1_3c", |seed| lab3::persist1_3c(seed, Some(Arc::new(MemStorage::default()))));
//! ```
//!
//! `storage` is `None` for the in-memory [`MemStorage`](super::MemStorage), or a
//! fresh [`MemberStorage`](super::MemberStorage) (e.g. on a new temporary
//! directory) that no other scenario uses: members `0..n` are opened from it.
//!
//! Our leaders append a blank entry at the start of each term, and blanks are
//! not handed to the state machine: log indices are not the lab's, so these
//! scenarios compare values (or indices returned by `one`), never absolute
//! indices. In 3D, members snapshot every 10 applied entries (the lab's
//! `SnapShotInterval`); where the lab bounds the persisted raft state we bound
//! the durable log (entries + hard state) of every member, as reported by
//! [`MemberStorage::log_size`](super::MemberStorage::log_size).
//!
//! All randomness comes from the cluster's generator and every `select!` is
//! `biased`, so a seed replays the same run (given deterministic storage).
//!
//! # Panics
//! Every scenario panics, with the seed in the message, when its check fails.
//!
//! [`RaftClusterConfig`]: super::RaftClusterConfig
//! [`RaftCluster::end`]: super::RaftCluster::end

mod helpers;
mod persistence;
mod snapshots;

pub use persistence::{
    figure8_3c, figure8_unreliable_3c, persist1_3c, persist2_3c, persist3_3c, reliable_churn_3c, unreliable_agree_3c,
    unreliable_churn_3c,
};
pub use snapshots::{
    snapshot_all_crash_3d, snapshot_basic_3d, snapshot_init_3d, snapshot_install_3d, snapshot_install_crash_3d,
    snapshot_install_un_crash_3d, snapshot_install_unreliable_3d,
};

/// Generate one `#[test]` per lab-3C/3D scenario, each running on a fresh
/// [`MemberStorage`](super::MemberStorage) made by `$make` from a new
/// temporary directory (`fn(&Path) -> Arc<dyn MemberStorage>`). `$suffix`
/// distinguishes the seeds of this backend's runs from the in-memory ones.
/// The calling crate needs `tempfile` as a dev-dependency.
#[macro_export]
macro_rules! lab3_scenarios_on {
    ($make:path, $suffix:literal) => {
        $crate::lab3_scenarios_on!(@each $make, $suffix,
            persist1_3c, persist2_3c, persist3_3c, figure8_3c, unreliable_agree_3c, figure8_unreliable_3c,
            reliable_churn_3c, unreliable_churn_3c, snapshot_basic_3d, snapshot_install_3d,
            snapshot_install_unreliable_3d, snapshot_install_crash_3d, snapshot_install_un_crash_3d,
            snapshot_all_crash_3d, snapshot_init_3d);
    };
    (@each $make:path, $suffix:literal, $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                let dir = match tempfile::tempdir() {
                    Ok(dir) => dir,
                    Err(e) => panic!("cannot create a temporary directory: {e}"),
                };
                let storage = $make(dir.path());
                $crate::sim::simulate(concat!(stringify!($name), $suffix), move |seed| {
                    $crate::sim::lab3::$name(seed, Some(storage))
                });
            }
        )*
    };
}
