//! The `raftkv` CLI against a `raftkv-server dev` cluster: the controller
//! and KV sessions of the compatibility contract (see the cli module)
//! reproduced line for line, the one-shot forms, the output formats,
//! `status`, the client names `shardctrler-client` and `shardkv_client`, and
//! typos.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{cli, cli_named, stdout, Dev};

const CTRL_BANNER: &str =
    "Supported commands:\n  Join gid:addr1,addr2 ...\n  Leave gid1,gid2,...\n  Move shard gid\n  Query [num]\n";

#[test]
fn the_seed_controller_and_kv_sessions_replay_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path(), &["--no-join"]);
    let g1 = format!("{},{},{}", dev.addr(3), dev.addr(4), dev.addr(5));
    let g2 = format!("{},{},{}", dev.addr(6), dev.addr(7), dev.addr(8));
    let (s1, s2) = (g1.replace(',', " "), g2.replace(',', " "));
    let session = format!(
        "Join 1:{g1}\nQuery\nJoin 2:{g2}\nQuery\nQuery 1\nQuery 0\nLeave 1\nQuery\nJoni 1\nJoin 3\nMove 3\nQuery\n"
    );
    let out = cli(&["ctrl", &format!("--ctrl-peers={}", dev.ctrl_peers)], &session);
    assert!(out.status.success(), "{out:?}");
    let expected = format!(
        "{CTRL_BANNER}\
> OK\n\
> Config #1: {{Num:1 Shards:[1 1 1 1 1 1 1 1 1 1] Groups:map[1:[{s1}]]}}\n\
> OK\n\
> Config #2: {{Num:2 Shards:[2 2 2 2 2 1 1 1 1 1] Groups:map[1:[{s1}] 2:[{s2}]]}}\n\
> Config #1: {{Num:1 Shards:[1 1 1 1 1 1 1 1 1 1] Groups:map[1:[{s1}]]}}\n\
> Config #0: {{Num:0 Shards:[0 0 0 0 0 0 0 0 0 0] Groups:map[]}}\n\
> OK\n\
> Config #3: {{Num:3 Shards:[2 2 2 2 2 2 2 2 2 2] Groups:map[2:[{s2}]]}}\n\
> Unknown command; supported: Join, Leave, Move, Query\n\
> Invalid Join format; expected gid:addr1,addr2\n\
> usage: Move shard gid\n\
> Config #3: {{Num:3 Shards:[2 2 2 2 2 2 2 2 2 2] Groups:map[2:[{s2}]]}}\n\
> "
    );
    assert_eq!(stdout(&out), expected);

    // The KV session, served by group 2 alone once group 1 has left.
    let session =
        "Put a 1\nAppend a 2\nGet a\nGet zz\nPut b\nGte a\nDelete a\nGet a\nput spaced hello world\nget spaced\n";
    let out = cli(&["kv", &format!("--ctrl-peers={}", dev.ctrl_peers)], session);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out),
        "Supported commands: Put key value | Get key | Append key suffix | Delete key\n\
> OK\n> OK\n> Value: 12\n> Value: \n> usage: Put key value\n\
> Unknown command; supported: Put, Get, Append, Delete\n> OK\n> Value: \n> OK\n> Value: hello world\n> "
    );
}

#[test]
fn dev_joins_both_groups_and_one_shot_commands_formats_and_status_work() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path(), &[]);
    assert!(dev.banner.iter().any(|l| l.starts_with("group 1: ")), "{:?}", dev.banner);
    let peers = format!("--ctrl-peers={}", dev.ctrl_peers);
    let s1 = format!("{} {} {}", dev.addr(3), dev.addr(4), dev.addr(5));
    let s2 = format!("{} {} {}", dev.addr(6), dev.addr(7), dev.addr(8));

    let out = cli(&["ctrl", &peers, "query"], "");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out),
        format!("Config #2: {{Num:2 Shards:[2 2 2 2 2 1 1 1 1 1] Groups:map[1:[{s1}] 2:[{s2}]]}}\n")
    );

    let out = cli(&["-w", "json", "ctrl", &peers, "query", "2"], "");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["num"], 2);
    assert_eq!(j["shards"][0], 2);
    assert_eq!(j["groups"]["1"][0], dev.addr(3));

    for (words, answer) in [
        (vec!["put", "k", "v1"], "OK\n"),
        (vec!["append", "k", "v2"], "OK\n"),
        (vec!["get", "k"], "Value: v1v2\n"),
        (vec!["Get", "missing"], "Value: \n"),
    ] {
        let mut args = vec!["kv", &peers];
        args.extend(words.iter().copied());
        let out = cli(&args, "");
        assert!(out.status.success(), "{words:?}: {out:?}");
        assert_eq!(stdout(&out), answer, "{words:?}");
    }
    let out = cli(&["kv", &peers, "-w", "json", "get", "k"], "");
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(), serde_json::json!({"value": "v1v2"}));

    // A typo in one-shot form: the expectation, and exit code 2.
    let out = cli(&["kv", &peers, "pt", "k", "v"], "");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(stdout(&out), "Unknown command; supported: Put, Get, Append, Delete\n");
    let out = cli(&["ctrl", &peers, "move", "x", "1"], "");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(stdout(&out), "usage: Move shard gid (two numbers)\n");
    // A typo in a flag: clap says what was expected.
    let out = cli(&["kv", "--ctrl-peer", &dev.ctrl_peers, "get", "k"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ctrl-peers"), "{out:?}");

    // Every node in a table: 3 controllers and 2 groups of 3, one leader per group.
    let out = cli(&["status", &peers, "-w", "table"], "");
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let rows: Vec<&str> = text.lines().skip(2).collect();
    assert_eq!(rows.len(), 9, "{text}");
    assert!(text.lines().next().unwrap().starts_with("address"), "{text}");
    for group in ["0", "1", "2"] {
        let leaders =
            rows.iter().filter(|r| r.split_whitespace().nth(1) == Some(group) && r.contains(" leader ")).count();
        assert_eq!(leaders, 1, "group {group} has one leader:\n{text}");
    }
    let out = cli(&["status", &peers, "-w", "json"], "");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j.as_array().map(Vec::len), Some(9));

    // The client names `shardctrler-client` and `shardkv_client` run the same REPLs.
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let ctrl_client = bin.join("shardctrler-client");
    let kv_client = bin.join("shardkv_client");
    std::fs::copy(env!("CARGO_BIN_EXE_raftkv"), &ctrl_client).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_raftkv"), &kv_client).unwrap();
    let out = cli_named(&ctrl_client, &[&peers], "Query 1\n");
    assert_eq!(
        stdout(&out),
        format!("{CTRL_BANNER}> Config #1: {{Num:1 Shards:[1 1 1 1 1 1 1 1 1 1] Groups:map[1:[{s1}]]}}\n> ")
    );
    let out = cli_named(&kv_client, &[&peers], "Get k\n");
    assert!(stdout(&out).ends_with("> Value: v1v2\n> "), "{out:?}");
}

/// The REPL on a real terminal (`script` lends it a pty), as `docker exec
/// -it … shardctrler-client` runs it: line editing on, answers, history kept.
#[test]
fn the_repl_works_on_a_terminal_and_keeps_its_history() {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path(), &["--no-join"]);
    let (transport, _) = support::backend();
    let repl = format!("{} ctrl --ctrl-peers={} --transport {transport}", env!("CARGO_BIN_EXE_raftkv"), dev.ctrl_peers);
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new("script")
        .args(["--quiet", "--return", "--command", &repl, "/dev/null"])
        .env("HOME", home.path())
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    // Each line is typed only once the next prompt is up: the line editor
    // switches the terminal to raw mode per line, which drops input typed
    // before it (TCSAFLUSH).
    let mut seen = String::new();
    let mut from = 0;
    let mut wait_for = |needle: &str, seen: &mut String| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !seen[from..].contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => panic!("no {needle:?} on the terminal; it showed: {seen:?}"),
            }
        }
        from += seen[from..].find(needle).unwrap_or(0) + needle.len();
    };
    wait_for("> ", &mut seen);
    stdin.write_all(b"Query\r").unwrap();
    wait_for("Config #0: {Num:0 Shards:[0 0 0 0 0 0 0 0 0 0] Groups:map[]}", &mut seen);
    wait_for("> ", &mut seen);
    stdin.write_all(b"Qurey\r").unwrap();
    wait_for("Unknown command; supported: Join, Leave, Move, Query", &mut seen);
    wait_for("> ", &mut seen);
    stdin.write_all(b"\x04").unwrap(); // Ctrl-D ends the REPL
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the REPL did not end on Ctrl-D: {seen:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!seen.contains("panicked"), "{seen}");
    assert!(status.success(), "{status:?}: {seen}");
    let history = std::fs::read_to_string(home.path().join(".raftkv_history")).unwrap_or_default();
    assert!(history.contains("Query") && history.contains("Qurey"), "history kept: {history:?}");
}

/// Keys and values are stored exactly as given: quoted words keep their
/// spaces in the REPL, and every command-line word is one word.
#[test]
fn quoted_keys_and_values_with_spaces_round_trip_through_the_repl_and_one_shot() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path(), &[]);
    let peers = format!("--ctrl-peers={}", dev.ctrl_peers);

    let session = concat!(
        "Put \"my key\" \"  padded value \"\n",
        "Get \"my key\"\n",
        "Get my\n",
        "Append 'my key' ' and \"more\" '\n",
        "Get 'my key'\n",
        "Put k \"unterminated\n",
        "Put \"esc\\\\aped\" \"say \\\"hi\\\"\"\n",
        "Get \"esc\\\\aped\"\n",
        "Put plain two   words\n",
        "Get plain\n",
    );
    let out = cli(&["kv", &peers], session);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out),
        "Supported commands: Put key value | Get key | Append key suffix | Delete key\n\
> OK\n\
> Value:   padded value \n\
> Value: \n\
> OK\n\
> Value:   padded value  and \"more\" \n\
> Invalid quoting: the \" at column 7 is never closed\n\
> OK\n\
> Value: say \"hi\"\n\
> OK\n\
> Value: two   words\n\
> "
    );

    // One-shot: each argument is one word, spaces and quotes included.
    let out = cli(&["kv", &peers, "put", "one shot key", " v "], "");
    assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(0), "OK\n"), "{out:?}");
    let out = cli(&["kv", &peers, "-w", "json", "get", "one shot key"], "");
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(), serde_json::json!({"value": " v "}));
    let out = cli(&["kv", &peers, "put", "q", "\"quoted\""], "");
    assert!(out.status.success(), "{out:?}");
    let out = cli(&["kv", &peers, "get", "q"], "");
    assert_eq!(stdout(&out), "Value: \"quoted\"\n", "quotes in an argument are the argument's own");
    // The REPL reads what one-shot stored, and the other way round.
    let out = cli(&["kv", &peers], "Get \"one shot key\"\n");
    assert!(stdout(&out).ends_with("> Value:  v \n> "), "{out:?}");
    let out = cli(&["kv", &peers, "get", "my key"], "");
    assert_eq!(stdout(&out), "Value:   padded value  and \"more\" \n");
}

/// A request larger than the message limit can never be sent: the CLI says
/// so at once instead of retrying until its timeout.
#[test]
fn a_value_over_the_message_limit_fails_at_once_with_a_size_error() {
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path(), &[]);
    let peers = format!("--ctrl-peers={}", dev.ctrl_peers);
    let timeout = Duration::from_secs(30);
    let timeout_flag = format!("--timeout-secs={}", timeout.as_secs());

    // 100 MiB typed into the REPL (a command line cannot hold that much).
    let mut session = String::with_capacity((100 << 20) + 64);
    session.push_str("Put big ");
    session.extend(std::iter::repeat_n('x', 100 << 20));
    session.push_str("\nPut small v\nGet small\n");
    let started = Instant::now();
    let out = cli(&["kv", &peers, &timeout_flag], &session);
    let took = started.elapsed();
    let text = stdout(&out);
    assert!(took < timeout / 6, "took {took:?} of a {timeout:?} timeout: {text:.300}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("> Error: ") && l.contains("exceeds") && l.contains("max_message_bytes")),
        "{text:.500}"
    );
    assert!(text.ends_with("> OK\n> Value: v\n> "), "the REPL carries on: {text:.500}");

    // One-shot, with the limit lowered through the server's variable: exit status 1.
    let started = Instant::now();
    let value = "y".repeat(100 << 10);
    let out =
        cli_with_env(&["kv", &peers, &timeout_flag, "put", "k", &value], &[("RAFTKV_NET__MAX_MESSAGE_BYTES", "65536")]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stdout(&out).starts_with("Error: ") && stdout(&out).contains("65536"), "{out:?}");
    assert!(took < timeout / 6, "took {took:?}");
}

/// The CLI with extra environment variables.
fn cli_with_env(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    use std::process::{Command, Stdio};
    let (transport, _) = support::backend();
    Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(args)
        .args(["--transport", &transport])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("raftkv runs")
}

/// Issue case 9: Appends of 1 MiB filled a key past what a message can
/// carry, and its shard could then never move. Now a key holds at most
/// `MAX_STORED_VALUE_BYTES`: the Append past it fails at once and changes
/// nothing, and the full key's shard moves to the other group and back.
#[test]
fn appends_stop_at_the_value_limit_and_the_full_keys_shard_still_moves() {
    use raftkv_core::shardkv::MAX_STORED_VALUE_BYTES;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path(), &[]);
    let peers = format!("--ctrl-peers={}", dev.ctrl_peers);
    let timeout = Duration::from_secs(30);
    let timeout_flag = format!("--timeout-secs={}", timeout.as_secs());
    let mib = 1 << 20;
    assert_eq!(MAX_STORED_VALUE_BYTES, 4 * mib, "four 1 MiB Appends fill a key");

    // Linux takes at most 128 KiB in one command-line word (MAX_ARG_STRLEN):
    // the 1 MiB suffixes are typed into the REPL.
    let fills = ['A', 'B', 'C', 'D', 'E'];
    let mut session = String::with_capacity(5 * (mib + 16));
    for fill in fills {
        session.push_str("Append big ");
        session.extend(std::iter::repeat_n(fill, mib));
        session.push('\n');
    }
    let out = cli(&["kv", &peers, &timeout_flag], &session);
    let text = stdout(&out);
    // The banner, an answer per line, and the last prompt.
    let answers: Vec<&str> = text.lines().skip(1).collect();
    assert!(answers.len() == 6 && answers[..4] == ["> OK"; 4] && answers[5] == "> ", "{text:.500}");
    let limit = MAX_STORED_VALUE_BYTES.to_string();
    assert!(
        answers[4].starts_with("> Error: ") && answers[4].contains("limit") && answers[4].contains(&limit),
        "the fifth 1 MiB Append is refused naming the limit: {text:.500}"
    );

    // One-shot: even one more byte fails at once, with exit status 1.
    let started = Instant::now();
    let out = cli(&["kv", &peers, &timeout_flag, "append", "big", "E"], "");
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let message = stdout(&out);
    assert!(message.starts_with("Error: ") && message.contains("limit") && message.contains(&limit), "{message}");
    assert!(took < timeout / 6, "the refusal took {took:?} of a {timeout:?} timeout");

    // The key holds exactly its four Appends.
    let want: String = fills[..4].iter().flat_map(|&f| std::iter::repeat_n(f, mib)).collect();
    let get_big = || {
        let out = cli(&["kv", &peers, &timeout_flag, "-w", "json", "get", "big"], "");
        assert!(out.status.success(), "get big: {}", String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(300)]));
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        j["value"].as_str().map(str::to_string).unwrap_or_default()
    };
    let got = get_big();
    assert!(got == want, "big holds {} bytes, not the {} appended", got.len(), want.len());

    // Move its shard to the other group, then back: each move completes
    // and the value is read whole from the new owner.
    let out = cli(&["-w", "json", "ctrl", &peers, "query"], "");
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let owners: Vec<u64> = config["shards"].as_array().unwrap().iter().filter_map(serde_json::Value::as_u64).collect();
    let shard = raftkv_core::api::shard_of(b"big", owners.len()).0;
    let first = owners[usize::try_from(shard).unwrap()];
    let other = if first == 1 { 2 } else { 1 };
    for (from, to) in [(first, other), (other, first)] {
        let out = cli(&["ctrl", &peers, "move", &shard.to_string(), &to.to_string()], "");
        assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(0), "OK\n"), "move {shard} {to}: {out:?}");
        let out = cli(&["-w", "json", "ctrl", &peers, "query"], "");
        let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(config["shards"][usize::try_from(shard).unwrap()], to, "{config}");
        wait_for_handover(&peers, shard, from, to, Duration::from_secs(60));
        let got = get_big();
        assert!(got == want, "after moving to group {to}, big holds {} bytes, not {}", got.len(), want.len());
    }
}

/// Poll `raftkv status` until every replica of group `to` serves `shard`
/// and no replica of group `from` still holds it; panics after `limit`.
fn wait_for_handover(peers: &str, shard: u64, from: u64, to: u64, limit: std::time::Duration) {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let out = cli(&["status", peers, "-w", "json"], "");
        let nodes: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let nodes = nodes.as_array().cloned().unwrap_or_default();
        let state_on = |node: &serde_json::Value| {
            node["shards"].as_array().into_iter().flatten().find(|s| s["shard"] == shard).map(|s| s["state"].clone())
        };
        let serving = nodes.iter().filter(|n| n["group"] == to && state_on(n).is_some_and(|s| s == "Serving")).count();
        let stale = nodes.iter().filter(|n| n["group"] == from && state_on(n).is_some()).count();
        if serving == 3 && stale == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "shard {shard} did not move from group {from} to {to} within {limit:?}: {serving} replicas of {to} serve \
             it, {stale} of {from} still hold it; status: {}",
            stdout(&out)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
