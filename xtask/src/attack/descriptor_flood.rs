//! `descriptor_flood`: connections that never send a byte cannot use up a
//! member's descriptors or lock its clients and peers out.
//!
//! As many plain TCP connections as this process's descriptor limit allows
//! (about 18,000) to the group leader's port, opened as fast as the server
//! accepts them and held, sending nothing, for the length of the flood.
//! Meanwhile a legitimate client (new connections each round) must write
//! and read, and the group must keep its leader. The servers run with
//! `net.first_request_timeout_ms` = 3000: once the flood stops, every
//! connection still held must be closed by the server within that (and a
//! grace period).

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use raftkv_core::GroupId;

use super::cluster::{describe, leaders, Cluster, Setup};
use super::findings::{ms, Findings};
use super::legit::Legit;

/// Connections to hold at most.
const TARGET: u64 = 18_000;
/// Descriptors left for everything else of this process.
const SPARE_DESCRIPTORS: u64 = 1_500;
const FIRST_REQUEST_TIMEOUT_MS: u64 = 3_000;
/// Threads opening connections at once.
const OPENERS: u64 = 4;
/// How long the flood lasts.
const FLOOD: Duration = Duration::from_secs(10);
/// After the flood, the server has the first-request timeout and this to close the rest.
const GRACE: Duration = Duration::from_secs(2);

/// What the flood did.
#[derive(Default)]
struct Flood {
    held: Vec<TcpStream>,
    /// Closed by the server (end of stream or reset) by the end of the flood.
    closed_during: u64,
    connect_errors: BTreeMap<String, u64>,
    /// When it held its target (if it did).
    full_after: Option<Duration>,
}

/// Whether the server closed `s` (a non-blocking socket): what it sent
/// (its HTTP/2 settings) is read and dropped, then the end of the stream or
/// a reset says closed.
fn closed(mut s: &TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return e.kind() != ErrorKind::WouldBlock,
        }
    }
}

/// Open up to `n` connections to `addr` one after another until `until`;
/// them, and the failed connects by error.
fn open_many(addr: SocketAddr, n: u64, until: Instant) -> (Vec<TcpStream>, BTreeMap<String, u64>) {
    let mut held = Vec::new();
    let mut errors = BTreeMap::new();
    while Instant::now() < until && (held.len() as u64) < n {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(s) => {
                let _ = s.set_nonblocking(true);
                held.push(s);
            }
            Err(e) => {
                *errors.entry(e.kind().to_string()).or_default() += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    (held, errors)
}

/// Open `target` connections to `addr` from [`OPENERS`] threads, as fast as
/// the server accepts them, until `until`; hold them until `until`.
fn flood(addr: SocketAddr, target: u64, until: Instant) -> Flood {
    let started = Instant::now();
    let mut f = Flood::default();
    std::thread::scope(|scope| {
        let openers: Vec<_> = (0..OPENERS)
            .map(|i| {
                let n = target / OPENERS + u64::from(i < target % OPENERS);
                scope.spawn(move || open_many(addr, n, until))
            })
            .collect();
        for opener in openers {
            if let Ok((held, errors)) = opener.join() {
                f.held.extend(held);
                for (kind, n) in errors {
                    *f.connect_errors.entry(kind).or_default() += n;
                }
            }
        }
    });
    if f.held.len() as u64 >= target {
        f.full_after = Some(started.elapsed());
    }
    std::thread::sleep(until.saturating_duration_since(Instant::now()));
    f.closed_during = f.held.iter().filter(|s| closed(s)).count() as u64;
    f
}

/// This process's soft descriptor limit.
fn descriptor_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(1024)
}

pub async fn run(setup: &Setup) -> Result<Findings> {
    let timeout = FIRST_REQUEST_TIMEOUT_MS.to_string();
    let mut cluster = Cluster::start(setup, 1, &[("RAFTKV_NET__FIRST_REQUEST_TIMEOUT_MS", &timeout)]).await?;
    let mut f = Findings::default();
    let outcome = attack(&mut cluster, &mut f).await;
    Ok(cluster.conclude(f, outcome))
}

async fn attack(cluster: &mut Cluster, f: &mut Findings) -> Result<()> {
    let target = cluster.leader(GroupId(1), Duration::from_secs(10)).await?;
    cluster.watch(&target);
    let view = cluster.group_status(GroupId(1)).await;
    let term = leaders(&view).first().map_or(0, |l| l.1);
    let count = TARGET.min(descriptor_limit().saturating_sub(SPARE_DESCRIPTORS));
    f.note(format!(
        "target: {} at {target} (group 1's leader at term {term}); descriptor limit {}, aiming at {count} silent connections \
         for {} s (first-request timeout {FIRST_REQUEST_TIMEOUT_MS} ms)",
        cluster.name(&target),
        descriptor_limit(),
        FLOOD.as_secs()
    ));
    let addr: SocketAddr = target.parse().context("the target's address")?;
    let until = Instant::now() + FLOOD;
    let flooding = tokio::task::spawn_blocking(move || flood(addr, count, until));
    let (legit, views) = tokio::join!(Legit::during(cluster, "descriptors", until, Duration::from_secs(1)), async {
        let mut views = Vec::new();
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_secs(2)).await;
            views.push(cluster.group_status(GroupId(1)).await);
        }
        views
    });
    let flood = flooding.await.context("the flooding thread")?;
    let opened = flood.held.len();
    f.note(format!(
        "opened and held {opened} connections ({}); by the end of the flood the server had closed {} of them \
         (the oldest silent ones past net.max_silent_connections, and those silent for the first-request timeout)",
        flood.full_after.map_or_else(|| "never reached the target".into(), |d| format!("all open after {}", ms(d))),
        flood.closed_during
    ));
    for (kind, n) in &flood.connect_errors {
        f.note(format!("  {n} connects failed: {kind}"));
    }
    f.check(opened as u64 >= count, format!("the flood opened and held {count} connections at once ({opened})"));
    legit.report(f, "during the flood");
    let steady = views.iter().all(|v| matches!(leaders(v).as_slice(), [(a, t)] if *a == target && *t == term));
    for v in &views {
        f.note(format!("group 1: {}", describe(v)));
    }
    f.check(
        steady && !views.is_empty(),
        format!(
            "group 1 kept one leader, {} at term {term}, through the flood ({} checks)",
            cluster.name(&target),
            views.len()
        ),
    );

    tokio::time::sleep(Duration::from_millis(FIRST_REQUEST_TIMEOUT_MS) + GRACE).await;
    let still_open = flood.held.iter().filter(|s| !closed(s)).count();
    drop(flood.held);
    f.check(
        still_open == 0,
        format!(
            "{} s after the flood the server had closed every silent connection ({} of {opened} saw the end of the stream \
             or a reset, {still_open} still open)",
            (Duration::from_millis(FIRST_REQUEST_TIMEOUT_MS) + GRACE).as_secs(),
            opened - still_open
        ),
    );
    Legit::once(cluster, "descriptors-after").await.report(f, "after the flood");
    Ok(())
}
