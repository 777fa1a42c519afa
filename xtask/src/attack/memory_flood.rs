//! `memory_flood`: requests that declare large messages and never finish
//! cannot make a member hold more than its byte budget, and do not lock a
//! legitimate client out.
//!
//! 40 HTTP/2 connections (raw `h2`, as an outsider would write them) to the
//! group leader's port, 30 streams each: a gRPC `Kv/Put` whose 5-byte
//! message prefix declares 3 MiB (under `net.max_client_message_bytes`,
//! so the server accepts it into its budget), then a few hundred bytes
//! every 200 ms, never the rest. A stream the server ends is opened again,
//! so the pressure lasts the whole attack. 3.6 GB are declared at once;
//! the clients' budget (`net.max_buffered_bytes`) is 256 MiB. Beside them,
//! streams declaring 64 MiB, which must be refused at once. The leader's
//! RSS is sampled every 500 ms, and a legitimate client writes and reads
//! through it all along.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use h2::client::SendRequest;
use raftkv_core::GroupId;

use super::cluster::{describe, leaders, Cluster, Setup};
use super::findings::{mib, ms, Findings};
use super::legit::Legit;
use crate::cluster::procs::rss_of;

const CONNECTIONS: usize = 40;
const STREAMS_PER_CONNECTION: usize = 30;
/// What each flooding stream declares: just under the default client limit (4 MiB).
const DECLARED: u32 = 3 << 20;
/// What the oversized streams declare: past every limit of a client request.
const OVERSIZED: u32 = 64 << 20;
const OVERSIZED_STREAMS: usize = 20;
/// An oversized stream must be refused within this.
const REFUSAL_LIMIT: Duration = Duration::from_secs(1);
const TRICKLE_EVERY: Duration = Duration::from_millis(200);
static TRICKLE: [u8; 300] = [0; 300];
const ATTACK: Duration = Duration::from_secs(20);
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// Most the target's RSS may grow during the attack.
const RSS_LIMIT: u64 = 512 << 20;
/// A client method whose request is a single message.
const PATH: &str = "/raftkv.v1.Kv/Put";

/// What the flooding streams saw, shared by their tasks.
#[derive(Default)]
struct Tally {
    opened: AtomicU64,
    /// Streams the server answered (ended), by gRPC status code: count and a message.
    answered: Mutex<BTreeMap<String, (u64, String)>>,
    /// Streams that failed at the HTTP/2 level (reset, connection lost).
    broken: Mutex<BTreeMap<String, u64>>,
    trickled_bytes: AtomicU64,
}

impl Tally {
    fn answered(&self, code: String, message: String) {
        let mut map = self.answered.lock().unwrap_or_else(PoisonError::into_inner);
        let e = map.entry(code).or_insert((0, message));
        e.0 += 1;
    }

    fn broken(&self, what: String) {
        *self.broken.lock().unwrap_or_else(PoisonError::into_inner).entry(what).or_default() += 1;
    }
}

pub async fn run(setup: &Setup) -> Result<Findings> {
    let mut cluster = Cluster::start(setup, 1, &[]).await?;
    let mut f = Findings::default();
    let outcome = attack(&mut cluster, &mut f).await;
    Ok(cluster.conclude(f, outcome))
}

async fn attack(cluster: &mut Cluster, f: &mut Findings) -> Result<()> {
    let target = cluster.leader(GroupId(1), Duration::from_secs(10)).await?;
    let term = leaders(&cluster.group_status(GroupId(1)).await).first().map_or(0, |l| l.1);
    cluster.watch(&target);
    let pid = cluster.pid(&target).context("the leader's pid")?;
    let mut before = 0;
    for _ in 0..4 {
        before = before.max(rss_of(pid).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    f.note(format!(
        "target: {} at {target} (group 1's leader, pid {pid}); RSS before the attack {}",
        cluster.name(&target),
        mib(before)
    ));
    f.note(format!(
        "attack: {CONNECTIONS} connections × {STREAMS_PER_CONNECTION} streams declaring {} each ({} declared at once), \
         {} bytes every {} per stream, for {} s; {OVERSIZED_STREAMS} streams declaring {}",
        mib(DECLARED.into()),
        mib(u64::from(DECLARED) * (CONNECTIONS * STREAMS_PER_CONNECTION) as u64),
        TRICKLE.len(),
        ms(TRICKLE_EVERY),
        ATTACK.as_secs(),
        mib(OVERSIZED.into())
    ));

    let started = Instant::now();
    let until = started + ATTACK;
    let tally = Arc::new(Tally::default());
    let mut senders = Vec::new();
    for _ in 0..CONNECTIONS {
        senders.push(connect(&target).await.context("an attacking connection")?);
    }
    let mut slots = tokio::task::JoinSet::new();
    for send in &senders {
        for _ in 0..STREAMS_PER_CONNECTION {
            slots.spawn(flood_slot(send.clone(), target.clone(), until, tally.clone()));
        }
    }
    let (samples, refusals, legit) =
        tokio::join!(sample_rss(pid, started, until), oversized(&senders, &target, until), async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Legit::during(cluster, "memory", until, Duration::from_millis(1500)).await
        });
    // Every slot stops by itself at `until`; a stuck one is aborted.
    let _ = tokio::time::timeout(Duration::from_secs(5), async { while slots.join_next().await.is_some() {} }).await;
    slots.abort_all();
    drop(senders);

    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let at = samples.iter().find(|s| s.1 == peak).map_or(0.0, |s| s.0);
    let trace: Vec<String> =
        samples.iter().step_by(4).map(|(t, r)| format!("{t:.0}s {:.0}", *r as f64 / 1048576.0)).collect();
    f.note(format!("RSS (MiB) every 2 s: {}", trace.join(", ")));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_of(pid).unwrap_or(0);
    f.note(format!(
        "RSS: before {}, peak {} at {at:.1} s, 2 s after the attack {}",
        mib(before),
        mib(peak),
        mib(after)
    ));
    f.note(format!(
        "streams opened {}, {} bytes trickled",
        tally.opened.load(Ordering::Relaxed),
        tally.trickled_bytes.load(Ordering::Relaxed)
    ));
    for (code, (n, message)) in tally.answered.lock().unwrap_or_else(PoisonError::into_inner).iter() {
        f.note(format!("  {n} streams ended by the server with grpc-status {code}: {message}"));
    }
    for (what, n) in tally.broken.lock().unwrap_or_else(PoisonError::into_inner).iter() {
        f.note(format!("  {n} streams broken: {what}"));
    }
    f.check(
        peak.saturating_sub(before) < RSS_LIMIT,
        format!(
            "the target's RSS grew by {} (< {}) while {} were declared",
            mib(peak.saturating_sub(before)),
            mib(RSS_LIMIT),
            mib(u64::from(DECLARED) * (CONNECTIONS * STREAMS_PER_CONNECTION) as u64)
        ),
    );
    let prompt = refusals.iter().filter(|r| r.0 <= REFUSAL_LIMIT && r.1.as_deref().is_some_and(|c| c != "0")).count();
    let slowest = refusals.iter().map(|r| r.0).max().unwrap_or_default();
    if let Some((_, code, message)) = refusals.first() {
        f.note(format!("an oversized stream's answer: grpc-status {code:?}: {message}"));
    }
    f.check(
        prompt == refusals.len() && !refusals.is_empty(),
        format!(
            "{prompt} of {} streams declaring {} refused within {} (slowest {})",
            refusals.len(),
            mib(OVERSIZED.into()),
            ms(REFUSAL_LIMIT),
            ms(slowest)
        ),
    );
    legit.report(f, "during the attack");
    Legit::once(cluster, "memory-after").await.report(f, "after the attack");
    // Peers draw on a budget of their own: the group must not have noticed.
    let view = cluster.group_status(GroupId(1)).await;
    f.note(format!("group 1 after the attack: {}", describe(&view)));
    f.check(
        matches!(leaders(&view).as_slice(), [(a, t)] if *a == target && *t == term),
        format!("group 1 kept its leader {} at term {term} through the attack", cluster.name(&target)),
    );
    Ok(())
}

/// An HTTP/2 connection to `addr`, driven by a task of its own.
async fn connect(addr: &str) -> Result<SendRequest<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
    tcp.set_nodelay(true)?;
    let (send, conn) = h2::client::handshake(tcp).await.context("the HTTP/2 handshake")?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

/// A gRPC message prefix: not compressed, `len` bytes follow.
fn prefix(len: u32) -> Bytes {
    let mut p = vec![0u8];
    p.extend_from_slice(&len.to_be_bytes());
    Bytes::from(p)
}

/// Open a stream on `send` declaring `declared` bytes; its answer and body.
async fn open(
    send: &SendRequest<Bytes>,
    addr: &str,
    declared: u32,
) -> Result<(h2::client::ResponseFuture, h2::SendStream<Bytes>), h2::Error> {
    let mut send = send.clone().ready().await?;
    let request = http::Request::post(format!("http://{addr}{PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap_or_default();
    let (response, mut body) = send.send_request(request, false)?;
    body.send_data(prefix(declared), false)?;
    Ok((response, body))
}

/// The gRPC status of an answer: from its headers (a trailers-only
/// answer) or its trailers; code and message.
async fn status_of(response: http::Response<h2::RecvStream>) -> (String, String) {
    let read = |h: &http::HeaderMap| {
        h.get("grpc-status").map(|c| {
            let text = |v: &http::HeaderValue| percent_decoded(v.to_str().unwrap_or_default());
            (text(c), h.get("grpc-message").map(text).unwrap_or_default())
        })
    };
    if let Some(s) = read(response.headers()) {
        return s;
    }
    let mut body = response.into_body();
    let trailers = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = body.data().await {}
        body.trailers().await
    })
    .await;
    match trailers {
        Ok(Ok(Some(t))) => read(&t).unwrap_or_else(|| ("none".into(), "trailers without grpc-status".into())),
        _ => ("none".into(), "no trailers".into()),
    }
}

/// A `grpc-message` as text (it is percent-encoded on the wire).
fn percent_decoded(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        let hex = |c: Option<u8>| c.and_then(|c| char::from(c).to_digit(16));
        if b == b'%' {
            let rest = bytes.clone();
            if let (Some(hi), Some(lo)) = (hex(bytes.next()), hex(bytes.next())) {
                out.push((hi * 16 + lo) as u8);
                continue;
            }
            bytes = rest;
        }
        out.push(b);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One flooding stream after another until `until`.
async fn flood_slot(send: SendRequest<Bytes>, addr: String, until: Instant, tally: Arc<Tally>) {
    while Instant::now() < until {
        let (response, mut body) = match open(&send, &addr, DECLARED).await {
            Ok(s) => s,
            Err(e) => {
                tally.broken(format!("could not open: {e}"));
                return;
            }
        };
        tally.opened.fetch_add(1, Ordering::Relaxed);
        let mut response = std::pin::pin!(response);
        let mut tick = tokio::time::interval_at((Instant::now() + TRICKLE_EVERY).into(), TRICKLE_EVERY);
        let ended = loop {
            tokio::select! {
                r = &mut response => break Some(r),
                _ = tick.tick() => {
                    if Instant::now() >= until {
                        break None;
                    }
                    if body.send_data(Bytes::from_static(&TRICKLE), false).is_ok() {
                        tally.trickled_bytes.fetch_add(TRICKLE.len() as u64, Ordering::Relaxed);
                    }
                }
            }
        };
        match ended {
            Some(Ok(r)) => {
                let (code, message) = status_of(r).await;
                tally.answered(code, message);
            }
            Some(Err(e)) => tally.broken(e.to_string()),
            None => body.send_reset(h2::Reason::CANCEL),
        }
    }
}

/// Streams declaring [`OVERSIZED`], one a second on the attack's
/// connections in turn: how long each took to be answered, its status
/// code (`None`: no answer in time) and message.
async fn oversized(
    senders: &[SendRequest<Bytes>],
    addr: &str,
    until: Instant,
) -> Vec<(Duration, Option<String>, String)> {
    let mut out = Vec::new();
    for (i, send) in senders.iter().cycle().take(OVERSIZED_STREAMS).enumerate() {
        if Instant::now() >= until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(if i == 0 { 500 } else { 900 })).await;
        let started = Instant::now();
        let answer = async {
            let (response, _body) = open(send, addr, OVERSIZED).await.map_err(|e| e.to_string())?;
            let r = response.await.map_err(|e| e.to_string())?;
            Ok::<_, String>(status_of(r).await)
        };
        out.push(match tokio::time::timeout(Duration::from_secs(3), answer).await {
            Ok(Ok((code, message))) => (started.elapsed(), Some(code), message),
            Ok(Err(e)) => (started.elapsed(), None, e),
            Err(_) => (started.elapsed(), None, "no answer within 3 s".into()),
        });
    }
    out
}

/// `(seconds since started, RSS)` of `pid` every [`SAMPLE_EVERY`] until `until`.
async fn sample_rss(pid: u32, started: Instant, until: Instant) -> Vec<(f64, u64)> {
    let mut out = Vec::new();
    while Instant::now() < until {
        out.push((started.elapsed().as_secs_f64(), rss_of(pid).unwrap_or(0)));
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    out
}
