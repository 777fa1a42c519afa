//! SIGTERM and SIGINT stop a node cleanly (exit 0) and what was acknowledged
//! is there after a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{cli, durable, stdout, Dev};

#[test]
fn sigterm_stops_cleanly_and_acknowledged_writes_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path(), &[]);
    let (base, peers) = (dev.base_port, format!("--ctrl-peers={}", dev.ctrl_peers));
    for i in 0..20 {
        let out = cli(&["kv", &peers, "put", &format!("key{i}"), &format!("value{i}")], "");
        assert_eq!(stdout(&out), "OK\n", "{out:?}");
    }
    let status = dev.signal_and_wait("TERM", Duration::from_secs(20));
    assert!(status.success(), "exit status after SIGTERM: {status:?}");

    let dev = Dev::start_on(dir.path(), base, &[]);
    for i in 0..20 {
        let out = cli(&["kv", &peers, "get", &format!("key{i}")], "");
        let expected = if durable() { format!("Value: value{i}\n") } else { "Value: \n".to_string() };
        assert_eq!(stdout(&out), expected, "{out:?}");
    }
    let status = dev.signal_and_wait("INT", Duration::from_secs(20));
    assert!(status.success(), "exit status after SIGINT: {status:?}");
}
