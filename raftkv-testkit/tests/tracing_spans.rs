//! Every Raft step is visible as a `tracing` span with group/node/term/index fields.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raftkv_testkit::sim::{cmd, simulate_seed, RaftCluster, RaftClusterConfig, ShardCluster, ShardClusterConfig};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::Registry;

#[derive(Clone, Default)]
struct SpanRecorder {
    spans: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>,
}

impl<S: Subscriber> Layer<S> for SpanRecorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        let fields = attrs.metadata().fields().iter().map(|f| f.name().to_string()).collect::<BTreeSet<_>>();
        self.spans.lock().unwrap().entry(attrs.metadata().name().to_string()).or_default().extend(fields);
    }
}

#[test]
fn raft_steps_emit_spans_with_fields() {
    let recorder = SpanRecorder::default();
    let subscriber = Registry::default().with(recorder.clone());
    tracing::subscriber::with_default(subscriber, || {
        simulate_seed("raft_steps_emit_spans_with_fields", 7, Duration::from_secs(120), |seed| async move {
            let mut cfg =
                RaftCluster::new(RaftClusterConfig { snapshot_every: 5, ..RaftClusterConfig::new(3) }, seed).await;
            let leader = cfg.check_one_leader().await;
            let lagging = (leader + 1) % 3;
            cfg.disconnect(lagging);
            for i in 0..20 {
                cfg.one(cmd(i), 2, true).await;
            }
            cfg.connect(lagging);
            for i in 20..25 {
                cfg.one(cmd(i), 3, true).await;
            }
            cfg.end();
        });
    });
    let spans = recorder.spans.lock().unwrap();
    for name in [
        "election",
        "vote",
        "replicate",
        "commit",
        "apply_batch",
        "snapshot",
        "compact",
        "send_snapshot",
        "install_snapshot",
    ] {
        let fields = spans.get(name).unwrap_or_else(|| panic!("no `{name}` span; saw {:?}", spans.keys()));
        for field in ["group", "node", "term"] {
            assert!(fields.contains(field), "span `{name}` lacks field `{field}`: {fields:?}");
        }
    }
    for name in ["replicate", "commit", "apply_batch", "install_snapshot"] {
        assert!(spans[name].contains("index"), "span `{name}` lacks field `index`");
    }
}

#[test]
fn migration_steps_emit_spans_with_fields() {
    let recorder = SpanRecorder::default();
    let subscriber = Registry::default().with(recorder.clone());
    tracing::subscriber::with_default(subscriber, || {
        simulate_seed("migration_steps_emit_spans_with_fields", 11, Duration::from_secs(120), |seed| async move {
            let mut c = ShardCluster::new(ShardClusterConfig::sharded(2, false, 0), seed).await;
            let mut ck = c.recorded_clerk();
            c.join(&[0]).await;
            for i in 0..10 {
                ck.put(&format!("k{i}"), "v").await;
            }
            c.join(&[1]).await;
            c.leave(&[0]).await;
            for i in 0..10 {
                assert_eq!(ck.get(&format!("k{i}")).await, "v");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            c.shutdown();
        });
    });
    let spans = recorder.spans.lock().unwrap();
    for name in
        ["ctrler_op", "config_change", "shard_pull", "shard_pull_serve", "shard_install", "shard_gc", "shard_gc_serve"]
    {
        let fields = spans.get(name).unwrap_or_else(|| panic!("no `{name}` span; saw {:?}", spans.keys()));
        assert!(fields.contains("group"), "span `{name}` lacks field `group`: {fields:?}");
    }
    for name in ["config_change", "shard_pull", "shard_pull_serve", "shard_install", "shard_gc", "shard_gc_serve"] {
        assert!(spans[name].contains("config"), "span `{name}` lacks field `config`");
    }
    for name in ["shard_pull", "shard_pull_serve", "shard_install", "shard_gc", "shard_gc_serve"] {
        assert!(spans[name].contains("shards"), "span `{name}` lacks field `shards`");
    }
}
