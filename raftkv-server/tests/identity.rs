//! A data dir records the cluster, the shard count and the members it was
//! created for: a start asking for anything else is refused, naming the
//! data dir and both values, and leaves it as it is. Two servers of a group
//! cannot share an address, and a node listens on the address its position
//! in `peers` names. The controller's shard count is fixed by its
//! replicated configurations, and a ShardKV member with another count uses
//! none of them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use support::{cli, durable, files_under, free_ports, run_to_exit, stderr, stdout, Dev};

const LIMIT: Duration = Duration::from_secs(60);

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

fn addrs(base: u16, n: u16) -> String {
    (0..n).map(|i| addr(base + i)).collect::<Vec<_>>().join(",")
}

/// Controller `me` (from 1) of the `n` controllers at `base..`, with `extra` flags.
fn ctrler(dir: &Path, base: u16, n: u16, me: u16, extra: &[&str]) -> Dev {
    std::fs::create_dir_all(dir).unwrap();
    let (listen, peers, me) = (addr(base + me - 1), addrs(base, n), me.to_string());
    let mut args = vec!["ctrler", "--listen", &listen, "--peers", &peers, "--me", &me];
    args.extend_from_slice(extra);
    Dev::spawn(dir, &args)
}

/// The same start as [`ctrler`], expected to be refused: its stderr.
fn ctrler_refused(dir: &Path, base: u16, n: u16, me: u16, extra: &[&str]) -> String {
    let (listen, peers, me) = (addr(base + me - 1), addrs(base, n), me.to_string());
    let mut args = vec!["ctrler", "--listen", &listen, "--peers", &peers, "--me", &me];
    args.extend_from_slice(extra);
    let out = run_to_exit(dir, &args, LIMIT);
    assert!(!out.status.success(), "{args:?} was accepted: {out:?}");
    stderr(&out)
}

fn ctrl(ctrl_peers: &str, words: &[&str]) -> String {
    let peers = format!("--ctrl-peers={ctrl_peers}");
    let mut args = vec!["ctrl", &peers];
    args.extend_from_slice(words);
    let out = cli(&args, "");
    assert!(out.status.success(), "{words:?}: {out:?}");
    stdout(&out)
}

fn stop(node: Dev) {
    let status = node.signal_and_wait("TERM", Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
}

/// Start the one controller of a cluster of one in `dir`, see it answer a
/// query (its Raft group works, and it handles SIGTERM by then), stop it.
fn run_once(dir: &Path, base: u16, extra: &[&str]) {
    let node = ctrler(dir, base, 1, 1, extra);
    assert!(ctrl(&addr(base), &["query"]).starts_with("Config #0"));
    stop(node);
}

#[test]
fn a_replica_started_on_another_groups_data_dir_is_refused_and_its_data_is_untouched() {
    if !durable() {
        return; // `mem` storage keeps no data dir.
    }
    let root = tempfile::tempdir().unwrap();
    let base = free_ports(5);
    let (ctrl_peers, g1) = (addr(base), addrs(base + 1, 3));
    let c = ctrler(&root.path().join("c1"), base, 1, 1, &[]);
    let replica = |i: u16| {
        let dir = root.path().join(format!("g1-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let (listen, me) = (addr(base + i), i.to_string());
        let args = ["shardkv", "--group", "1", "--listen", &listen, "--peers", &g1, "--me", &me, "--ctrl-peers"];
        let mut args = args.to_vec();
        args.push(&ctrl_peers);
        Dev::spawn(&dir, &args)
    };
    let mut group: Vec<Dev> = (1..=3).map(replica).collect();
    ctrl(&ctrl_peers, &["join", &format!("1:{g1}")]);
    let session: String = (0..100).map(|i| format!("Put key{i} value{i}\n")).collect();
    let out = cli(&["kv", &format!("--ctrl-peers={ctrl_peers}")], &session);
    assert_eq!(stdout(&out).matches("> OK").count(), 100, "{out:?}");

    stop(group.remove(0));
    let dir = root.path().join("g1-1");
    let before = files_under(&dir);
    // Another group's first replica, pointed at group 1's first replica's data dir.
    let foreign = addr(base + 4);
    let args = ["shardkv", "--group", "2", "--listen", &foreign, "--peers", &foreign, "--me", "1", "--ctrl-peers"];
    let mut args = args.to_vec();
    args.push(&ctrl_peers);
    let out = run_to_exit(&dir, &args, LIMIT);
    assert!(!out.status.success(), "{out:?}");
    let expected = format!("data dir {} belongs to member 1 of group 1, not member 1 of group 2", dir.display());
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
    assert_eq!(files_under(&dir), before, "the refused start touched the data dir");

    // Started as itself, it serves its data, now needed for a quorum.
    let _back = replica(1);
    stop(group.remove(0));
    let session: String = (0..100).map(|i| format!("Get key{i}\n")).collect();
    let out = cli(&["kv", &format!("--ctrl-peers={ctrl_peers}")], &session);
    for i in 0..100 {
        assert!(stdout(&out).contains(&format!("> Value: value{i}\n")), "key{i}: {out:?}");
    }
    drop(c);
}

#[test]
fn a_different_cluster_shard_count_or_member_on_an_existing_data_dir_is_refused_naming_both_values() {
    if !durable() {
        return; // `mem` storage keeps no data dir.
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("c1");
    let base = free_ports(2);
    run_once(&dir, base, &["--cluster", "prod-a"]);
    let before = files_under(&dir);
    let d = dir.display();

    let e = ctrler_refused(&dir, base, 1, 1, &["--cluster", "prod-b"]);
    assert!(e.contains(&format!("data dir {d} belongs to cluster \"prod-a\", not \"prod-b\"")), "{e}");
    let e = ctrler_refused(&dir, base, 1, 1, &[]);
    assert!(e.contains(&format!("data dir {d} belongs to cluster \"prod-a\", not \"raftkv\"")), "{e}");
    let e = ctrler_refused(&dir, base, 1, 1, &["--cluster", "prod-a", "--shards", "20"]);
    assert!(e.contains(&format!("data dir {d} belongs to a cluster of 10 shards, not 20")), "{e}");
    let e = ctrler_refused(&dir, base, 2, 2, &["--cluster", "prod-a"]);
    assert!(
        e.contains(&format!(
            "data dir {d} belongs to member 1 of the controller group, not member 2 of the controller group"
        )),
        "{e}"
    );
    let (listen, ctrl_peers) = (addr(base), addr(base + 1));
    let args = ["shardkv", "--cluster", "prod-a", "--group", "1", "--listen", &listen, "--peers", &listen];
    let mut args = args.to_vec();
    args.extend(["--me", "1", "--ctrl-peers", &ctrl_peers]);
    let out = run_to_exit(&dir, &args, LIMIT);
    assert!(!out.status.success(), "{out:?}");
    let expected = format!("data dir {d} belongs to member 1 of the controller group, not member 1 of group 1");
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
    assert_eq!(files_under(&dir), before, "refused starts touched the data dir");

    run_once(&dir, base, &["--cluster", "prod-a"]);
}

#[test]
fn a_damaged_identity_file_or_a_data_dir_without_one_is_refused_naming_it() {
    if !durable() {
        return; // `mem` storage keeps no data dir.
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("c1");
    let base = free_ports(1);
    run_once(&dir, base, &[]);
    let identity = dir.join("IDENTITY");
    let good = std::fs::read(&identity).unwrap();

    let mut bad = good.clone();
    let at = good.windows(8).position(|w| w == b"shards 1").unwrap() + 7;
    bad[at] = b'2';
    std::fs::write(&identity, &bad).unwrap();
    let e = ctrler_refused(&dir, base, 1, 1, &["--shards", "20"]);
    assert!(e.contains(&format!("identity file {} is damaged", identity.display())), "{e}");

    // A data dir with Raft state and no identity file: an older version made it.
    std::fs::remove_file(&identity).unwrap();
    let e = ctrler_refused(&dir, base, 1, 1, &[]);
    assert!(e.contains(&format!("data dir {} holds Raft state (", dir.display())), "{e}");
    assert!(e.contains("but no identity file: an older raftkv-server made it"), "{e}");
    let proposed = dir.join("IDENTITY.proposed");
    assert!(e.contains(&format!("adopt it by checking and renaming {}", proposed.display())), "{e}");
    assert!(!identity.exists());
    std::fs::rename(&proposed, &identity).unwrap();
    run_once(&dir, base, &[]);
}

#[test]
fn duplicate_addresses_in_peers_or_ctrl_peers_are_refused_naming_the_key_and_the_address() {
    let root = tempfile::tempdir().unwrap();
    let base = free_ports(3);
    let (a, b) = (addr(base), addr(base + 1));
    let peers = format!("{a},{b},{a}");
    let out = run_to_exit(root.path(), &["ctrler", "--listen", &a, "--peers", &peers, "--me", "1"], LIMIT);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        stderr(&out).trim(),
        format!(
            "raftkv-server: configuration key `peers` = \"{a}\": expected each address once (it is at positions 1 \
             and 3: two servers cannot share an address)"
        )
    );
    let ctrl_peers = format!("{b},localhost:{},LOCALHOST:{}", base + 2, base + 2);
    let args = ["shardkv", "--group", "1", "--listen", &a, "--peers", &a, "--me", "1", "--ctrl-peers", &ctrl_peers];
    let out = run_to_exit(root.path(), &args, LIMIT);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr(&out).contains(&format!(
            "configuration key `ctrl_peers` = \"LOCALHOST:{}\": expected each address once (it is at positions 2 and 3",
            base + 2
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_second_me_1_on_another_port_is_refused_naming_both_addresses() {
    let root = tempfile::tempdir().unwrap();
    let base = free_ports(3);
    let first = ctrler(&root.path().join("c1"), base, 3, 1, &[]);
    let (listen, peers) = (addr(base + 1), addrs(base, 3));
    let args = ["ctrler", "--listen", &listen, "--peers", &peers, "--me", "1"];
    let out = run_to_exit(&root.path().join("c1-again"), &args, LIMIT);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        stderr(&out).trim(),
        format!(
            "raftkv-server: configuration key `listen` = \"{listen}\": expected the address peers[0] names for this \
             node (`me` = 1), \"{}\", or its port on 0.0.0.0 or [::]",
            addr(base)
        )
    );
    // Listening on every interface, the port must still be its own.
    let any = format!("0.0.0.0:{}", base + 2);
    let out =
        run_to_exit(&root.path().join("c1-any"), &["ctrler", "--listen", &any, "--peers", &peers, "--me", "1"], LIMIT);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains(&format!("configuration key `listen` = \"{any}\"")), "{}", stderr(&out));
    let ok = raftkv_server::config::Config::load(
        None,
        serde_json::json!({"role": "ctrler", "listen": format!("0.0.0.0:{}", base + 1), "peers": [addr(base), addr(base + 1)], "me": 2}),
    );
    assert!(ok.is_ok(), "{ok:?}");
    drop(first);
}

#[test]
fn controllers_restarted_with_another_shard_count_refuse_and_past_configurations_keep_theirs() {
    if !durable() {
        return; // `mem` storage keeps no configurations across a restart.
    }
    let root = tempfile::tempdir().unwrap();
    let base = free_ports(3);
    let dirs: Vec<_> = (1..=3).map(|i| root.path().join(format!("c{i}"))).collect();
    let peers = addrs(base, 3);
    let nodes: Vec<Dev> = (1..=3).map(|me| ctrler(&dirs[usize::from(me) - 1], base, 3, me, &[])).collect();
    ctrl(&peers, &["join", "1:127.0.0.1:1,127.0.0.1:2"]);
    ctrl(&peers, &["join", "2:127.0.0.1:3"]);
    let history: Vec<String> = ["1", "2"].iter().map(|n| ctrl(&peers, &["query", n])).collect();
    assert!(history[1].contains("Shards:[2 2 2 2 2 1 1 1 1 1]"), "{history:?}");
    nodes.into_iter().for_each(stop);

    for me in 1..=3 {
        let e = ctrler_refused(&dirs[usize::from(me) - 1], base, 3, me, &["--shards", "20"]);
        let d = dirs[usize::from(me) - 1].display();
        assert!(e.contains(&format!("data dir {d} belongs to a cluster of 10 shards, not 20")), "{e}");
    }
    let _nodes: Vec<Dev> = (1..=3).map(|me| ctrler(&dirs[usize::from(me) - 1], base, 3, me, &[])).collect();
    let again: Vec<String> = ["1", "2"].iter().map(|n| ctrl(&peers, &["query", n])).collect();
    assert_eq!(again, history, "past configurations read as they were, with 10 shards");
}

#[test]
fn a_controller_started_with_another_shard_count_than_its_groups_log_stops_naming_both_counts() {
    let root = tempfile::tempdir().unwrap();
    let base = free_ports(3);
    let dirs: Vec<_> = (1..=3).map(|i| root.path().join(format!("c{i}"))).collect();
    let peers = addrs(base, 3);
    // Two of three controllers make a quorum: the cluster is created with 10 shards.
    let _nodes: Vec<Dev> = (1..=2).map(|me| ctrler(&dirs[usize::from(me) - 1], base, 3, me, &[])).collect();
    ctrl(&peers, &["join", "1:127.0.0.1:1,127.0.0.1:2"]);
    ctrl(&peers, &["join", "2:127.0.0.1:3"]);
    let latest = ctrl(&peers, &["query"]);

    // The third, first started now with 20 shards, passes the identity check
    // of its new data dir; the replicated history it receives does not.
    let (listen, me3) = (addr(base + 2), ["--me", "3", "--shards", "20"]);
    let mut args = vec!["ctrler", "--listen", &listen, "--peers", &peers];
    args.extend_from_slice(&me3);
    let out = run_to_exit(&dirs[2], &args, LIMIT);
    assert!(!out.status.success(), "{out:?}");
    let e = stderr(&out);
    assert!(
        e.contains("the controller's replicated configurations have 10 shards, but this member was started with 20"),
        "{e}"
    );
    assert!(e.contains("Ctrler 3 of group 0 stopped"), "{e}");
    assert_eq!(ctrl(&peers, &["query"]), latest, "the others go on with 10 shards");
}

#[test]
fn a_shardkv_member_with_another_shard_count_refuses_the_controllers_configurations() {
    let root = tempfile::tempdir().unwrap();
    let base = free_ports(2);
    let (ctrl_peers, g1) = (addr(base), addr(base + 1));
    let _c = ctrler(&root.path().join("c1"), base, 1, 1, &[]);
    let dir = root.path().join("g1-1");
    std::fs::create_dir_all(&dir).unwrap();
    let args = ["shardkv", "--group", "1", "--shards", "20", "--listen", &g1, "--peers", &g1, "--me", "1"];
    let mut args = args.to_vec();
    args.extend(["--ctrl-peers", &ctrl_peers]);
    let mut member = Dev::spawn(&dir, &args);
    ctrl(&ctrl_peers, &["join", &format!("1:{g1}")]);
    let line = member.stderr_line("has 10 shards, but this member of group 1 was started with 20", LIMIT);
    assert!(line.contains("ERROR"), "logged at error level: {line}");
    let status = cli(&["status", &format!("--ctrl-peers={ctrl_peers}"), "-w", "json"], "");
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let group1 = status.as_array().unwrap().iter().find(|s| s["group"] == 1).unwrap_or_else(|| panic!("{status}"));
    assert_eq!(group1["config"], 0, "it moved to no configuration: {status}");
}
