//! One reconfiguration of an in-process cluster, traced through the
//! OpenTelemetry layer into an in-memory exporter: every Raft and migration
//! step shows up as a span with its attributes, and spans on the receiving
//! side of an RPC are children of the sender's (the W3C trace context
//! travels with the message).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::SpanId;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use raftkv_core::client::{ClerkConfig, CtrlClerk, KvClerk};
use raftkv_core::{ClientId, GroupId};
use raftkv_server::backend::Net;
use raftkv_server::config::Config;
use raftkv_server::dev::DevCluster;
use raftkv_server::setup::net_config;
use raftkv_server::telemetry::{otel_layer, OtelPropagator};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Keeps every finished span.
#[derive(Clone, Debug, Default)]
struct Collect(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collect {
    fn export(&self, batch: Vec<SpanData>) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        self.0.lock().unwrap().extend(batch);
        std::future::ready(Ok(()))
    }
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.as_str().into_owned())
}

fn named<'a>(spans: &'a [SpanData], name: &'a str) -> impl Iterator<Item = &'a SpanData> + 'a {
    spans.iter().filter(move |s| s.name == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconfiguration_is_traced_across_nodes_with_linked_spans() {
    let exporter = Collect::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    tracing_subscriber::registry().with(otel_layer(&provider, "debug").unwrap()).init();
    assert!(raftkv_core::trace::set_propagator(OtelPropagator::default()));

    let dir = tempfile::tempdir().unwrap();
    let (transport, storage) = support::backend();
    let flags = serde_json::json!({
        "role": "dev",
        "transport": transport,
        "storage": storage,
        "data_dir": dir.path(),
        "raft": { "snapshot_log_bytes": 4096 },
        "dev": { "base_port": support::free_ports(9) },
    });
    let cfg = Config::load(None, flags).unwrap();
    let cluster = DevCluster::start(&cfg).await.unwrap();

    let net = Net::new(cfg.transport, net_config(&cfg).unwrap()).unwrap();
    let clerk_cfg = ClerkConfig { retry_pause: Duration::from_millis(50), deadline: Some(Duration::from_secs(30)) };
    let ctrl = || CtrlClerk::new(cluster.ctrl_peers.clone(), net.services(), ClientId(7), clerk_cfg.clone());
    let mut kv = KvClerk::new(ctrl(), net.services(), ClientId(8), clerk_cfg.clone());
    for i in 0..60 {
        kv.put(format!("key{i}"), vec![b'x'; 200]).await.unwrap();
    }
    // Group 2 leaves: its five shards, with their keys, move to group 1.
    let mut admin = ctrl();
    admin.leave(vec![GroupId(2)]).await.unwrap();
    for i in 0..60 {
        assert_eq!(kv.get(format!("key{i}")).await.unwrap().as_deref(), Some(&[b'x'; 200][..]), "key{i}");
    }
    // Wait until group 2 has let go of every shard (pulled and collected).
    let leaving: Vec<_> = cluster.nodes().iter().filter(|n| n.group() == GroupId(2)).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut held = 0;
        for n in &leaving {
            held += n.status().await.map_or(1, |s| s.shards.len());
        }
        if held == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "group 2 still holds {held} shard copies");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.shutdown(Duration::from_secs(2)).await;
    provider.force_flush().unwrap();
    let spans = exporter.0.lock().unwrap().clone();

    // Every step, with its attributes.
    let expect = [
        ("election", &["group", "node", "term"][..]),
        ("vote", &["group", "node", "term", "candidate"]),
        ("replicate", &["group", "node", "term", "index"]),
        ("commit", &["group", "node", "term", "index"]),
        ("apply_batch", &["group", "node", "term", "index"]),
        ("snapshot", &["group", "node", "index", "term"]),
        ("ctrler_op", &["group", "op", "client", "seq"]),
        ("config_change", &["group", "config"]),
        ("shard_pull", &["group", "from", "config", "shards"]),
        ("shard_install", &["group", "config", "shards"]),
        ("shard_gc", &["group", "holder", "config", "shards"]),
        ("shard_pull_serve", &["group", "config", "shards"]),
        ("shard_gc_serve", &["group", "config", "shards"]),
    ];
    for (name, keys) in expect {
        let found: Vec<_> = named(&spans, name).collect();
        assert!(!found.is_empty(), "no {name} span among {} spans", spans.len());
        for key in keys {
            assert!(found.iter().any(|s| attr(s, key).is_some()), "{name} spans lack attribute {key}");
        }
    }
    let leave = named(&spans, "ctrler_op").find(|s| attr(s, "op").as_deref() == Some("leave"));
    assert!(leave.is_some(), "the Leave is traced by the controller");
    assert!(named(&spans, "shard_pull").any(|s| attr(s, "from").as_deref() == Some("2")), "group 1 pulls from 2");

    let by_id: HashMap<SpanId, &SpanData> = spans.iter().map(|s| (s.span_context.span_id(), s)).collect();
    let parent = |s: &SpanData| by_id.get(&s.parent_span_id).copied();

    // A vote request: candidate's send_vote → voter's raft_rpc (remote
    // parent, same trace) → the voter's vote span.
    let linked_vote = named(&spans, "vote").find_map(|vote| {
        let rpc = parent(vote).filter(|p| p.name == "raft_rpc")?;
        let send = parent(rpc).filter(|p| p.name == "send_vote")?;
        Some((vote, rpc, send))
    });
    let (vote, rpc, send) = linked_vote.expect("a vote span under a raft_rpc under the candidate's send_vote");
    assert!(rpc.parent_span_is_remote, "the rpc's parent came over the wire");
    assert_eq!(rpc.span_context.trace_id(), send.span_context.trace_id());
    assert_ne!(attr(send, "node"), attr(vote, "node"), "sender and voter are different members");
    assert_eq!(attr(send, "to"), attr(vote, "node"));

    // Replication: the leader's send_append → follower's raft_rpc.
    assert!(
        named(&spans, "raft_rpc")
            .filter(|r| attr(r, "rpc").as_deref() == Some("append"))
            .any(|r| parent(r).is_some_and(|p| p.name == "send_append" && r.parent_span_is_remote)),
        "a follower's append handling is a child of the leader's send_append"
    );

    // Migration: group 1's shard_pull → group 2's service_rpc → shard_pull_serve.
    let pulled = named(&spans, "shard_pull_serve").find_map(|serve| {
        let rpc = parent(serve).filter(|p| p.name == "service_rpc")?;
        let pull = parent(rpc).filter(|p| p.name == "shard_pull")?;
        Some((serve, rpc, pull))
    });
    let (serve, rpc, pull) = pulled.expect("a shard_pull_serve under a service_rpc under the puller's shard_pull");
    assert_eq!(attr(rpc, "method").as_deref(), Some("migration.pull_shards"));
    assert_eq!(pull.span_context.trace_id(), serve.span_context.trace_id(), "one trace across both groups");
    assert_ne!(attr(pull, "group"), attr(serve, "group"));
    // And the garbage collection the same way.
    assert!(
        named(&spans, "shard_gc_serve")
            .filter_map(parent)
            .filter(|rpc| rpc.name == "service_rpc")
            .any(|rpc| parent(rpc).is_some_and(|p| p.name == "shard_gc")),
        "a shard_gc_serve under a service_rpc under the collector's shard_gc"
    );
    let groups: BTreeMap<String, usize> = named(&spans, "apply_batch").fold(BTreeMap::new(), |mut m, s| {
        *m.entry(attr(s, "group").unwrap_or_default()).or_default() += 1;
        m
    });
    assert_eq!(groups.len(), 3, "the controller and both groups apply: {groups:?}");
}
