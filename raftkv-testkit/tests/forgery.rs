//! Forged requests change nothing: a term bomb from outside a group, and
//! deletes of a shard that is still in transit (see
//! `raftkv_testkit::sim::forgery`).

use raftkv_testkit::sim::{forgery, simulate};

#[test]
fn term_bomb_from_a_non_member_leaves_the_group_and_its_leader_in_place() {
    simulate(
        "term_bomb_from_a_non_member_leaves_the_group_and_its_leader_in_place",
        forgery::term_bomb_from_a_non_member,
    );
}

#[test]
fn forged_delete_of_a_shard_in_transit_is_refused_and_its_data_survives() {
    simulate(
        "forged_delete_of_a_shard_in_transit_is_refused_and_its_data_survives",
        forgery::forged_delete_of_a_shard_in_transit,
    );
}
