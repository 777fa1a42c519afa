//! A full disk under a running cluster: writes are refused with an error,
//! reads go on, `/health` and `raftkv status` say the log writes fail, and
//! once space is freed the same processes take writes again — no restart.
//! On a small tmpfs (needs root; said and skipped otherwise), for the durable
//! storage under test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use raftkv_testkit::crash::Tmpfs;
use support::{cli, durable, free_ports, http, stdout, wait_for_status, Dev};

#[test]
fn a_full_disk_refuses_writes_keeps_reads_says_so_and_resumes_when_space_is_freed() {
    if !durable() {
        eprintln!("SKIPPED: the storage under test keeps nothing on disk");
        return;
    }
    let Some(fs) = Tmpfs::mount(256 << 20) else { return };
    let data = fs.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let admin_port = free_ports(1);
    let dev = Dev::start(&data, &["--admin-listen", &format!("127.0.0.1:{admin_port}")]);
    let admin = dev.admin();
    let peers = format!("--ctrl-peers={}", dev.ctrl_peers);
    let out = cli(&["kv", &peers, "put", "before", "v"], "");
    assert_eq!(stdout(&out), "OK\n", "{out:?}");
    wait_for_status(&admin, "/health", 200, Duration::from_secs(20));

    let filler = fs.fill();
    // Writes fail, with the deadline the client gave them, once the files'
    // last allocated pages are full too.
    let value = "x".repeat(64 << 10);
    let failed = (0..200).find_map(|i| {
        let out = cli(&["--timeout-secs", "3", "kv", &peers, "put", &format!("during-{i}"), &value], "");
        (!out.status.success()).then_some(out)
    });
    let out = failed.expect("200 writes of 64 KiB on a full disk all succeeded");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stdout(&out).starts_with("Error: "), "{out:?}");
    // The members say why, and keep serving reads.
    let body = wait_for_status(&admin, "/health", 503, Duration::from_secs(10));
    // (redb passes the OS error on; SQLite says SQLITE_FULL in its words.)
    let says_full = body.contains("No space left on device") || body.contains("database or disk is full");
    assert!(body.contains("log writes fail") && says_full, "{body}");
    let out = cli(&["--timeout-secs", "10", "kv", &peers, "get", "before"], "");
    assert_eq!(stdout(&out), "Value: v\n", "a read while the disk is full: {out:?}");
    let out = cli(&["status", &peers], "");
    assert!(stdout(&out).contains("(log writes failing)"), "{}", stdout(&out));
    assert_eq!(http(&admin, "GET", "/livez").0, 200, "nothing stopped");

    // Space is back: the same processes take writes again by themselves.
    std::fs::remove_file(&filler).unwrap();
    let started = Instant::now();
    let out = cli(&["--timeout-secs", "30", "kv", &peers, "put", "after", "w"], "");
    assert_eq!(stdout(&out), "OK\n", "a write once space is freed: {out:?}");
    eprintln!("the first write after space was freed took {:?}", started.elapsed());
    wait_for_status(&admin, "/health", 200, Duration::from_secs(20));
    for (key, value) in [("before", "v"), ("after", "w")] {
        let out = cli(&["kv", &peers, "get", key], "");
        assert_eq!(stdout(&out), format!("Value: {value}\n"), "{out:?}");
    }
    let out = cli(&["status", &peers], "");
    assert!(out.status.success() && !stdout(&out).contains("failing"), "{}", stdout(&out));
    drop(dev);
}
