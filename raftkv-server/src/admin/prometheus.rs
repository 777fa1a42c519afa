//! `/metrics`: every node of the process in the Prometheus text format
//! (version 0.0.4), one family at a time.

use std::fmt::Write;

use raftkv_core::api::{NodeStatus, ShardState};
use raftkv_core::metrics::{Histogram, RaftMetrics};
use raftkv_core::raft::core::{Role, Status};

use crate::node::NodeProbe;

/// What one node reported for this scrape.
pub(crate) struct Sample<'a> {
    pub(crate) probe: &'a NodeProbe,
    pub(crate) status: Option<NodeStatus>,
}

impl Sample<'_> {
    fn labels(&self) -> String {
        format!("group=\"{}\",node=\"{}\",role=\"{}\"", self.probe.group.0, self.probe.me.0, self.probe.role)
    }

    fn raft(&self) -> Option<&Status> {
        self.status.as_ref().map(|s| &s.raft)
    }

    fn metrics(&self) -> &RaftMetrics {
        self.probe.metrics()
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A family with one value per node (nodes that did not answer are left out).
fn per_node(
    out: &mut String,
    samples: &[Sample<'_>],
    name: &str,
    kind: &str,
    help: &str,
    value: impl Fn(&Sample<'_>) -> Option<f64>,
) {
    header(out, name, kind, help);
    for s in samples {
        if let Some(v) = value(s) {
            let _ = writeln!(out, "{name}{{{}}} {v}", s.labels());
        }
    }
}

fn histogram(
    out: &mut String,
    samples: &[Sample<'_>],
    name: &str,
    help: &str,
    pick: impl Fn(&RaftMetrics) -> &Histogram,
) {
    header(out, name, "histogram", help);
    for s in samples {
        let labels = s.labels();
        let h = pick(s.metrics()).snapshot();
        for (bound, n) in &h.buckets {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum_seconds);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
    }
}

fn shard_state(state: ShardState) -> &'static str {
    match state {
        ShardState::Serving => "serving",
        ShardState::Pulling => "pulling",
        ShardState::Sending => "sending",
        ShardState::Collecting => "collecting",
    }
}

fn as_f64(n: u64) -> Option<f64> {
    // Prometheus values are floats; indices stay exact up to 2^53.
    #[allow(clippy::cast_precision_loss)]
    Some(n as f64)
}

/// A counter family: name, help and how to read it.
type CounterFamily = (&'static str, &'static str, fn(&RaftMetrics) -> u64);

/// Render every family for `samples`.
pub(crate) fn render(samples: &[Sample<'_>]) -> String {
    let mut out = String::new();
    per_node(&mut out, samples, "raftkv_up", "gauge", "1 while the node's Raft member runs.", |s| {
        Some(if s.probe.is_running() { 1.0 } else { 0.0 })
    });
    per_node(&mut out, samples, "raftkv_term", "gauge", "Current Raft term.", |s| as_f64(s.raft()?.term.0));
    per_node(&mut out, samples, "raftkv_is_leader", "gauge", "1 if this member leads its group.", |s| {
        Some(if s.raft()?.role == Role::Leader { 1.0 } else { 0.0 })
    });
    per_node(&mut out, samples, "raftkv_leader", "gauge", "The leader this member knows of (0: none).", |s| {
        as_f64(s.raft()?.leader.map_or(0, |l| l.0))
    });
    per_node(&mut out, samples, "raftkv_commit_index", "gauge", "Highest log index known committed.", |s| {
        as_f64(s.raft()?.commit.0)
    });
    per_node(
        &mut out,
        samples,
        "raftkv_applied_index",
        "gauge",
        "Highest log index applied to the state machine.",
        |s| as_f64(s.raft()?.applied.0),
    );
    per_node(&mut out, samples, "raftkv_last_log_index", "gauge", "Last index in the log.", |s| {
        as_f64(s.raft()?.last_index.0)
    });
    per_node(&mut out, samples, "raftkv_snapshot_index", "gauge", "Index covered by the latest snapshot.", |s| {
        as_f64(s.raft()?.snapshot_index.0)
    });
    per_node(
        &mut out,
        samples,
        "raftkv_storage_failing",
        "gauge",
        "1 while the member's log writes fail and are retried (writes refused, reads go on).",
        |s| Some(if s.raft()?.storage_failing.is_some() { 1.0 } else { 0.0 }),
    );
    header(
        &mut out,
        "raftkv_follower_lag",
        "gauge",
        "Leader only: entries each follower lags behind the leader's log.",
    );
    for s in samples {
        for f in s.raft().map(|r| r.followers.as_slice()).unwrap_or_default() {
            let _ = writeln!(out, "raftkv_follower_lag{{{},follower=\"{}\"}} {}", s.labels(), f.id.0, f.lag);
        }
    }
    per_node(&mut out, samples, "raftkv_config_num", "gauge", "Shard configuration this ShardKV node is at.", |s| {
        let status = s.status.as_ref()?;
        (s.probe.role == "shardkv").then(|| as_f64(status.config.0)).flatten()
    });
    header(&mut out, "raftkv_shard_state", "gauge", "1 for each shard this node holds, labelled with its state.");
    for s in samples {
        for sh in s.status.as_ref().map(|st| st.shards.as_slice()).unwrap_or_default() {
            let state = shard_state(sh.state);
            let _ = writeln!(out, "raftkv_shard_state{{{},shard=\"{}\",state=\"{state}\"}} 1", s.labels(), sh.shard.0);
        }
    }
    per_node(
        &mut out,
        samples,
        "raftkv_requests_in_flight",
        "gauge",
        "Client and migration requests being answered.",
        |s| as_f64(s.probe.in_flight() as u64),
    );
    let counters: [CounterFamily; 8] = [
        ("raftkv_leader_changes_total", "Leaders this member saw take office.", |m| m.leader_changes.get()),
        ("raftkv_elections_total", "Elections this member started.", |m| m.elections.get()),
        ("raftkv_proposals_total", "Proposals handed to this member.", |m| m.proposals.get()),
        ("raftkv_proposal_failures_total", "Proposals that failed.", |m| m.proposal_failures.get()),
        ("raftkv_log_entries_persisted_total", "Entries made durable in the log.", |m| m.entries_persisted.get()),
        ("raftkv_read_index_total", "Linearizable read barriers asked of this member.", |m| m.reads.get()),
        ("raftkv_snapshots_taken_total", "Snapshots this member took.", |m| m.snapshots_taken.get()),
        ("raftkv_snapshots_installed_total", "Snapshots this member installed from its leader.", |m| {
            m.snapshots_installed.get()
        }),
    ];
    for (name, help, get) in counters {
        per_node(&mut out, samples, name, "counter", help, |s| as_f64(get(s.metrics())));
    }
    histogram(&mut out, samples, "raftkv_proposal_duration_seconds", "From proposal to state-machine answer.", |m| {
        &m.proposal_latency
    });
    histogram(
        &mut out,
        samples,
        "raftkv_log_write_duration_seconds",
        "One durable log write (append and fsync).",
        |m| &m.log_write_latency,
    );
    out
}
