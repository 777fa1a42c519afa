//! MIT 6.5840 lab 4B (key-value service with snapshots), ported.

use raftkv_testkit::sim::lab4::{self, Generic};
use raftkv_testkit::sim::simulate;

fn generic(name: &str, g: Generic) {
    simulate(name, move |seed| lab4::generic_test(seed, g));
}

const BASE: Generic = Generic {
    clients: 1,
    servers: 5,
    unreliable: false,
    crash: false,
    partitions: false,
    maxraftstate: Some(1000),
    random_keys: false,
};

#[test]
fn speed_4b() {
    simulate("speed_4b", |seed| lab4::speed_test(seed, Some(1000)));
}

#[test]
fn snapshot_rpc_4b() {
    simulate("snapshot_rpc_4b", lab4::snapshot_rpc);
}

#[test]
fn snapshot_size_4b() {
    simulate("snapshot_size_4b", lab4::snapshot_size);
}

#[test]
fn snapshot_recover_4b() {
    generic("snapshot_recover_4b", Generic { crash: true, ..BASE });
}

#[test]
fn snapshot_recover_many_clients_4b() {
    generic("snapshot_recover_many_clients_4b", Generic { clients: 20, crash: true, ..BASE });
}

#[test]
fn snapshot_unreliable_4b() {
    generic("snapshot_unreliable_4b", Generic { clients: 5, unreliable: true, ..BASE });
}

#[test]
fn snapshot_unreliable_recover_4b() {
    generic("snapshot_unreliable_recover_4b", Generic { clients: 5, unreliable: true, crash: true, ..BASE });
}

#[test]
fn snapshot_unreliable_recover_concurrent_partition_4b() {
    generic(
        "snapshot_unreliable_recover_concurrent_partition_4b",
        Generic { clients: 5, unreliable: true, crash: true, partitions: true, ..BASE },
    );
}

#[test]
fn snapshot_unreliable_recover_concurrent_partition_linearizable_4b() {
    generic(
        "snapshot_unreliable_recover_concurrent_partition_linearizable_4b",
        Generic { clients: 15, servers: 7, unreliable: true, crash: true, partitions: true, random_keys: true, ..BASE },
    );
}
