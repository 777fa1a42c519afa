//! The admin endpoint: `/metrics` in the Prometheus text format with the
//! gauges, counters and histograms operators rely on; `/health` turning 503
//! when a node has no leader or its leader no quorum; `/livez`, `/readyz`,
//! `/status`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::{cli, free_ports, http, stdout, wait_for_status, Dev};

/// One sample line: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels: {line:?}"))),
            None => (series, ""),
        };
        let labels = labels
            .split(',')
            .filter(|l| !l.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("bad label {kv:?} in {line:?}"));
                (k.to_string(), v.trim_matches('"').to_string())
            })
            .collect();
        out.push((name.to_string(), labels, value));
    }
    out
}

fn series<'a>(samples: &'a [Sample], name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
    samples.iter().filter(move |(n, _, _)| n == name)
}

fn sum_by_group(samples: &[Sample], name: &str) -> BTreeMap<String, f64> {
    let mut sums = BTreeMap::new();
    for (_, labels, v) in series(samples, name) {
        *sums.entry(labels["group"].clone()).or_insert(0.0) += v;
    }
    sums
}

#[test]
fn metrics_status_and_probes_of_a_dev_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let admin_port = free_ports(1);
    let dev = Dev::start(dir.path(), &["--admin-listen", &format!("127.0.0.1:{admin_port}")]);
    let admin = dev.admin();
    let peers = format!("--ctrl-peers={}", dev.ctrl_peers);
    for i in 0..20 {
        let out = cli(&["kv", &peers, "put", &format!("k{i}"), "v"], "");
        assert_eq!(stdout(&out), "OK\n", "{out:?}");
    }
    wait_for_status(&admin, "/health", 200, Duration::from_secs(20));

    let (code, text) = http(&admin, "GET", "/metrics");
    assert_eq!(code, 200);
    let m = parse(&text);
    let terms: Vec<_> = series(&m, "raftkv_term").collect();
    assert_eq!(terms.len(), 9, "3 controllers and 2 groups of 3: {terms:?}");
    assert!(terms.iter().all(|(_, _, t)| *t >= 1.0));
    let leaders = sum_by_group(&m, "raftkv_is_leader");
    assert_eq!(leaders, [("0", 1.0), ("1", 1.0), ("2", 1.0)].map(|(g, n)| (g.to_string(), n)).into());
    assert!(series(&m, "raftkv_up").all(|(_, _, v)| *v == 1.0));
    for (_, labels, commit) in series(&m, "raftkv_commit_index") {
        let applied = series(&m, "raftkv_applied_index").find(|(_, l, _)| l == labels).map(|s| s.2);
        assert!(applied.is_some_and(|a| a <= *commit && a >= 1.0), "{labels:?}: applied {applied:?} commit {commit}");
    }
    assert_eq!(series(&m, "raftkv_follower_lag").count(), 6, "each of 3 leaders reports its 2 followers");

    // Both groups took some of the 20 puts; each is timed from proposal to answer.
    let proposals = sum_by_group(&m, "raftkv_proposal_duration_seconds_count");
    assert!(proposals["1"] >= 1.0 && proposals["2"] >= 1.0 && proposals["1"] + proposals["2"] >= 20.0, "{proposals:?}");
    let writes = sum_by_group(&m, "raftkv_log_write_duration_seconds_count");
    assert!(writes.values().all(|n| *n >= 1.0), "every group writes its log: {writes:?}");
    let leader_changes = sum_by_group(&m, "raftkv_leader_changes_total");
    assert!(leader_changes.values().all(|n| *n >= 3.0), "every member saw its first leader: {leader_changes:?}");
    // Buckets are cumulative and end at the count.
    let node = |l: &BTreeMap<String, String>| (l["group"].clone(), l["node"].clone());
    for (_, labels, count) in series(&m, "raftkv_proposal_duration_seconds_count") {
        let buckets: Vec<f64> = series(&m, "raftkv_proposal_duration_seconds_bucket")
            .filter(|(_, l, _)| node(l) == node(labels))
            .map(|s| s.2)
            .collect();
        assert_eq!(buckets.len(), 18, "17 bounds and +Inf");
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
        assert_eq!(buckets.last(), Some(count));
    }
    // Shards: each group's replicas serve the group's half of the 10 shards.
    let serving = series(&m, "raftkv_shard_state").filter(|(_, l, _)| l["state"] == "serving").count();
    assert_eq!(serving, 30, "10 shards on 3 replicas each");
    assert!(series(&m, "raftkv_config_num").all(|(_, l, v)| l["role"] == "shardkv" && *v == 2.0));

    let (code, body) = http(&admin, "GET", "/status");
    assert_eq!(code, 200);
    let nodes: serde_json::Value = serde_json::from_str(&body).unwrap();
    let nodes = nodes.as_array().unwrap();
    assert_eq!(nodes.len(), 9);
    assert_eq!(nodes.iter().filter(|n| n["role"] == "leader").count(), 3, "{body}");
    assert!(nodes.iter().all(|n| n["term"].as_u64().is_some_and(|t| t >= 1)), "{body}");

    assert_eq!(http(&admin, "GET", "/livez").0, 200);
    assert_eq!(http(&admin, "GET", "/readyz").0, 200);
    let (code, body) = http(&admin, "GET", "/nope");
    assert_eq!(code, 404);
    assert!(body.contains("/metrics"), "a wrong path lists the endpoints: {body}");
    assert_eq!(http(&admin, "POST", "/metrics").0, 405);
}

#[test]
fn health_is_503_without_a_leader_and_when_the_leader_loses_its_quorum() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let base = free_ports(6);
    let peers = (0..3).map(|i| format!("127.0.0.1:{}", base + i)).collect::<Vec<_>>().join(",");
    let start = |i: u16| {
        let listen = format!("127.0.0.1:{}", base + i);
        let admin = format!("127.0.0.1:{}", base + 3 + i);
        let me = (i + 1).to_string();
        let args = ["ctrler", "--listen", &listen, "--peers", &peers, "--me", &me, "--admin-listen", &admin];
        Dev::spawn(dirs[usize::from(i)].path(), &args)
    };

    // Alone, a member of a three-member group cannot elect anyone.
    let first = start(0);
    let admin0 = first.admin();
    std::thread::sleep(Duration::from_secs(2));
    let (code, body) = http(&admin0, "GET", "/health");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("no leader"), "{body}");
    assert_eq!(http(&admin0, "GET", "/livez").0, 200, "it is alive, just not useful");
    assert_eq!(http(&admin0, "GET", "/readyz").0, 503);

    let mut others: Vec<_> = (1..3).map(start).collect();
    let admins: Vec<String> = std::iter::once(admin0.clone()).chain(others.iter().map(Dev::admin)).collect();
    for a in &admins {
        wait_for_status(a, "/health", 200, Duration::from_secs(20));
    }
    let leader = admins
        .iter()
        .position(|a| {
            let status: serde_json::Value = serde_json::from_str(&http(a, "GET", "/status").1).unwrap();
            status[0]["role"] == "leader"
        })
        .expect("one member leads");

    // Kill both followers: the leader has no quorum any more.
    let mut all = vec![first];
    all.append(&mut others);
    let survivor = all.remove(leader);
    for node in all {
        node.kill();
    }
    let body = wait_for_status(&admins[leader], "/health", 503, Duration::from_secs(10));
    assert!(body.contains("without a quorum") || body.contains("no leader"), "{body}");
    drop(survivor);
}
