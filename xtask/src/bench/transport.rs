//! `cargo xtask bench transport`: round trips per second and latency of the
//! gRPC and HTTP transports for 1 and 64 concurrent callers (Raft heartbeats
//! and KV service calls), and snapshot streaming throughput, on loopback,
//! with and without TLS.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use raftkv_core::api::{KvOp, KvRequest, RequestId, ServiceClient, ServiceRequest};
use raftkv_core::raft::{HeartbeatRequest, RaftRequest, SnapshotMeta};
use raftkv_core::transport::{OutgoingSnapshot, Transport};
use raftkv_core::{ClientId, GroupId, LogIndex, NodeId, Term};
use raftkv_transport_grpc::{GrpcClient, GrpcServer};
use raftkv_transport_http::{HttpClient, HttpServer};
use raftkv_wire::net::{NetConfig, Routes, TlsConfig};
use raftkv_wire::testkit::transport::{EchoMember, EchoService, SnapshotMeter, SyntheticSnapshot};

use crate::args::Flags;
use crate::bench::hist::{Histogram, Tally};

const WORKER_THREADS: usize = 2;
const GROUP: GroupId = GroupId(1);
const FROM: NodeId = NodeId(1);
const TO: NodeId = NodeId(2);

/// Arguments of `bench transport`.
pub struct TransportBenchArgs {
    duration: Duration,
    warmup: Duration,
    callers: Vec<usize>,
    snapshot_mib: u64,
    transports: Vec<String>,
    tls: Vec<bool>,
}

impl TransportBenchArgs {
    pub fn parse(args: &[&str]) -> Result<Self> {
        let flags = Flags::parse(
            args,
            &["--duration-secs", "--warmup-secs", "--callers", "--snapshot-mib", "--transport", "--tls"],
        )?;
        let duration = Duration::from_secs_f64(flags.get("--duration-secs")?.unwrap_or(3.0));
        let warmup = Duration::from_secs_f64(flags.get("--warmup-secs")?.unwrap_or(0.5));
        let callers = flags.list("--callers")?.unwrap_or_else(|| vec![1, 64]);
        let snapshot_mib = flags.get("--snapshot-mib")?.unwrap_or(256);
        let transports: Vec<String> = match flags.get::<String>("--transport")?.as_deref() {
            None | Some("all") => vec!["grpc".into(), "http".into()],
            Some(t @ ("grpc" | "http")) => vec![t.to_string()],
            Some(other) => bail!("unknown transport `{other}` (expected grpc, http or all)"),
        };
        let tls = match flags.get::<String>("--tls")?.as_deref() {
            None | Some("both") => vec![false, true],
            Some("off") => vec![false],
            Some("on") => vec![true],
            Some(other) => bail!("bad value `{other}` for --tls (expected off, on or both)"),
        };
        if duration.is_zero() || callers.is_empty() || callers.contains(&0) || snapshot_mib == 0 {
            bail!("need a positive duration, snapshot size and caller counts");
        }
        Ok(Self { duration, warmup, callers, snapshot_mib, transports, tls })
    }
}

enum Server {
    Grpc(GrpcServer),
    Http(HttpServer),
}

impl Server {
    async fn start(kind: &str, routes: Routes, cfg: &NetConfig) -> Result<Self> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Ok(match kind {
            "grpc" => Self::Grpc(GrpcServer::start(any, routes, cfg).await?),
            _ => Self::Http(HttpServer::start(any, routes, cfg).await?),
        })
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Self::Grpc(s) => s.addr(),
            Self::Http(s) => s.addr(),
        }
    }

    async fn stop(self) {
        match self {
            Self::Grpc(s) => s.stop().await,
            Self::Http(s) => s.stop().await,
        }
    }
}

fn clients(kind: &str, cfg: NetConfig, addr: SocketAddr) -> Result<(Arc<dyn Transport>, Arc<dyn ServiceClient>)> {
    let peers = BTreeMap::from([(TO, addr.to_string())]);
    Ok(match kind {
        "grpc" => {
            let c = GrpcClient::new(cfg)?;
            (Arc::new(c.raft(GROUP, peers)), Arc::new(c))
        }
        _ => {
            let c = HttpClient::new(cfg)?;
            (Arc::new(c.raft(GROUP, peers)), Arc::new(c))
        }
    })
}

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

#[derive(Clone, Copy)]
enum Call {
    Heartbeat,
    KvGet,
}

async fn caller(
    call: Call,
    raft: Arc<dyn Transport>,
    service: Arc<dyn ServiceClient>,
    addr: String,
    phase: Arc<AtomicU8>,
) -> (Histogram, u64) {
    let mut tally = Tally::default();
    let mut seq = 0u64;
    loop {
        let p = phase.load(Ordering::Relaxed);
        if p == STOP {
            break;
        }
        seq += 1;
        let t0 = Instant::now();
        let ok = match call {
            Call::Heartbeat => raft
                .call(
                    FROM,
                    TO,
                    RaftRequest::Heartbeat(HeartbeatRequest {
                        term: Term(1),
                        leader: FROM,
                        commit: LogIndex(0),
                        read_seq: seq,
                    }),
                )
                .await
                .is_ok(),
            Call::KvGet => {
                let request = ServiceRequest::Kv(KvRequest {
                    id: RequestId { client: ClientId(1), seq },
                    op: KvOp::Get { key: Bytes::from_static(b"benchkey") },
                });
                service.call_service(&addr, request).await.is_ok()
            }
        };
        tally.count(p == MEASURE && phase.load(Ordering::Relaxed) == MEASURE, ok, t0);
    }
    (tally.hist, tally.errors)
}

async fn round_trips(
    call: Call,
    callers: usize,
    raft: &Arc<dyn Transport>,
    service: &Arc<dyn ServiceClient>,
    addr: SocketAddr,
    args: &TransportBenchArgs,
) -> Result<(f64, Histogram, u64)> {
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let tasks: Vec<_> = (0..callers)
        .map(|_| tokio::spawn(caller(call, raft.clone(), service.clone(), addr.to_string(), phase.clone())))
        .collect();
    tokio::time::sleep(args.warmup).await;
    phase.store(MEASURE, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(args.duration).await;
    phase.store(STOP, Ordering::Relaxed);
    let measured = t0.elapsed();
    let mut hist = Histogram::default();
    let mut errors = 0;
    for t in tasks {
        let (h, e) = t.await.context("caller task")?;
        hist.merge(&h);
        errors += e;
    }
    Ok((hist.len() as f64 / measured.as_secs_f64(), hist, errors))
}

async fn snapshot_speed(raft: &Arc<dyn Transport>, member: &EchoMember, mib: u64) -> Result<(f64, f64)> {
    let total = mib << 20;
    let meter = Arc::new(SnapshotMeter::default());
    member.meter_snapshots(meter.clone());
    let meta = SnapshotMeta { last_index: LogIndex(1000), last_term: Term(1) };
    let mut snapshot =
        OutgoingSnapshot::new(Term(1), FROM, meta, Box::new(SyntheticSnapshot::new(total, meter.clone())), 1 << 20);
    let t0 = Instant::now();
    let answer = raft.send_snapshot(FROM, TO, &mut snapshot).await?;
    let secs = t0.elapsed().as_secs_f64();
    if !(answer.accepted && answer.next_offset == total && member.installed() == Some(total)) {
        bail!("the snapshot did not arrive whole: {answer:?}");
    }
    Ok((total as f64 / 1e6 / secs, meter.peak_buffered() as f64 / f64::from(1 << 20)))
}

fn tls_pair() -> Result<(TlsConfig, TlsConfig)> {
    let pki = raftkv_wire::pki::generate().context("generate test certificates")?;
    let server = TlsConfig {
        ca_pem: pki.ca_pem.clone(),
        identity: Some(pki.node.clone()),
        require_client_cert: true,
        server_name: None,
    };
    let client =
        TlsConfig { ca_pem: pki.ca_pem, identity: Some(pki.node), require_client_cert: true, server_name: None };
    Ok((server, client))
}

async fn bench_transport(kind: &str, tls: bool, args: &TransportBenchArgs) -> Result<()> {
    let routes = Routes::new();
    let member = EchoMember::new();
    routes.add_member(GROUP, TO, member.clone());
    routes.set_service(EchoService::new());
    let (mut server_cfg, mut client_cfg) = (NetConfig::default(), NetConfig::default());
    if tls {
        let (s, c) = tls_pair()?;
        server_cfg.tls = Some(s);
        client_cfg.tls = Some(c);
    }
    let server = Server::start(kind, routes, &server_cfg).await?;
    let (raft, service) = clients(kind, client_cfg, server.addr())?;
    let label = if tls { format!("{kind}+mtls") } else { kind.to_string() };
    let us = |ns: u64| ns as f64 / 1000.0;
    for (call, name) in [(Call::Heartbeat, "raft heartbeat"), (Call::KvGet, "kv get")] {
        for &n in &args.callers {
            let (rate, hist, errors) = round_trips(call, n, &raft, &service, server.addr(), args).await?;
            println!(
                "| {label:<9} | {name:<14} | {n:>7} | {rate:>12.0} | {:>7.0} | {:>7.0} | {:>8.0} | {errors:>6} |",
                us(hist.quantile(0.50)),
                us(hist.quantile(0.99)),
                us(hist.max()),
            );
        }
    }
    let (mbps, peak) = snapshot_speed(&raft, &member, args.snapshot_mib).await?;
    println!(
        "| {label:<9} | snapshot {:>4} MiB streamed: {mbps:>7.0} MB/s, peak {peak:.1} MiB buffered |",
        args.snapshot_mib
    );
    server.stop().await;
    Ok(())
}

pub fn run(args: &TransportBenchArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(WORKER_THREADS).enable_all().build()?;
    println!(
        "bench transport: client and server in one process on loopback, {WORKER_THREADS} tokio worker threads; \
         closed-loop callers; warm-up {:.1}s, measure {:.1}s per row; echo handlers (no Raft, no disk)",
        args.warmup.as_secs_f64(),
        args.duration.as_secs_f64()
    );
    println!();
    println!("| transport | call           | callers | round trips/s | p50 µs | p99 µs |   max µs | errors |");
    println!("|-----------|----------------|--------:|--------------:|-------:|-------:|---------:|-------:|");
    for kind in &args.transports {
        for &tls in &args.tls {
            rt.block_on(bench_transport(kind, tls, args))?;
        }
    }
    Ok(())
}
