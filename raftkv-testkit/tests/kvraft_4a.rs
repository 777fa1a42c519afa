//! MIT 6.5840 lab 4A (key-value service without snapshots), ported: one
//! ShardKV group with a fixed configuration plays the lab's kvraft.

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
    maxraftstate: None,
    random_keys: false,
};

#[test]
fn basic_4a() {
    generic("basic_4a", BASE);
}

#[test]
fn speed_4a() {
    simulate("speed_4a", |seed| lab4::speed_test(seed, None));
}

#[test]
fn concurrent_4a() {
    generic("concurrent_4a", Generic { clients: 5, ..BASE });
}

#[test]
fn unreliable_4a() {
    generic("unreliable_4a", Generic { clients: 5, unreliable: true, ..BASE });
}

#[test]
fn unreliable_one_key_4a() {
    simulate("unreliable_one_key_4a", lab4::unreliable_one_key);
}

#[test]
fn one_partition_4a() {
    simulate("one_partition_4a", lab4::one_partition);
}

#[test]
fn many_partitions_one_client_4a() {
    generic("many_partitions_one_client_4a", Generic { partitions: true, ..BASE });
}

#[test]
fn many_partitions_many_clients_4a() {
    generic("many_partitions_many_clients_4a", Generic { clients: 5, partitions: true, ..BASE });
}

#[test]
fn persist_one_client_4a() {
    generic("persist_one_client_4a", Generic { crash: true, ..BASE });
}

#[test]
fn persist_concurrent_4a() {
    generic("persist_concurrent_4a", Generic { clients: 5, crash: true, ..BASE });
}

#[test]
fn persist_concurrent_unreliable_4a() {
    generic("persist_concurrent_unreliable_4a", Generic { clients: 5, unreliable: true, crash: true, ..BASE });
}

#[test]
fn persist_partition_4a() {
    generic("persist_partition_4a", Generic { clients: 5, crash: true, partitions: true, ..BASE });
}

#[test]
fn persist_partition_unreliable_4a() {
    generic(
        "persist_partition_unreliable_4a",
        Generic { clients: 5, unreliable: true, crash: true, partitions: true, ..BASE },
    );
}

#[test]
fn persist_partition_unreliable_linearizable_4a() {
    generic(
        "persist_partition_unreliable_linearizable_4a",
        Generic { clients: 15, servers: 7, unreliable: true, crash: true, partitions: true, random_keys: true, ..BASE },
    );
}
