//! `cargo xtask chaos`: a Jepsen-style run against real processes. 3
//! controllers and 2 groups × 3 replicas of `raftkv-server`, each in its
//! own network namespace; concurrent clients whose every operation is
//! recorded; a seeded nemesis (kill -9 and restart, SIGSTOP/SIGCONT,
//! partitions, packet loss, delay with reordering) and reconfigurations
//! (Join, Leave, Move) for a bounded duration. Then heal, measure the time
//! to full service, read every key, stop every server, scan their logs and
//! durable Raft logs, check the history for linearizability and count
//! acknowledged writes that are missing.

mod bug;
mod clients;
mod cluster;
mod delay;
mod nemesis;
mod net;
mod nodes;
mod reconfig;
mod report;
mod scan;
mod verdict;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use raftkv_core::{GroupId, NodeId};
use raftkv_testkit::linearizability::Outcome;

use crate::args::Flags;
use crate::cluster::raftkv::{build_server, Backends};
use cluster::Cluster;
use nemesis::Schedule;
use nodes::Role;
use report::Report;

/// Arguments of `chaos`.
pub struct ChaosArgs {
    duration: Duration,
    seed: u64,
    clients: usize,
    backends: Backends,
    server_binary: Option<PathBuf>,
    inject_bug: Option<String>,
}

impl ChaosArgs {
    pub fn parse(args: &[&str]) -> Result<Self> {
        let f = Flags::parse(
            args,
            &["--duration", "--seed", "--clients", "--transport", "--storage", "--server-binary", "--inject-bug"],
        )?;
        let backends = Backends {
            transport: f.get("--transport")?.unwrap_or_else(|| "grpc".into()),
            storage: f.get("--storage")?.unwrap_or_else(|| "redb".into()),
        };
        backends.check()?;
        let seed = match f.get("--seed")? {
            Some(s) => s,
            None => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_secs()),
        };
        let args = Self {
            duration: Duration::try_from_secs_f64(f.get("--duration")?.unwrap_or(120.0))
                .context("--duration: seconds, a number of at least zero")?,
            seed,
            clients: f.get("--clients")?.unwrap_or(6),
            backends,
            server_binary: f.get("--server-binary")?,
            inject_bug: f.get("--inject-bug")?,
        };
        if let Some(b) = &args.inject_bug {
            bug::check(b)?;
            if args.server_binary.is_some() {
                bail!("--inject-bug builds its own server; leave out --server-binary");
            }
        }
        if args.clients == 0 || args.duration.is_zero() {
            bail!("need at least one client and a duration above zero");
        }
        Ok(args)
    }
}

pub fn run(args: &ChaosArgs) -> Result<()> {
    let binary = match (&args.server_binary, &args.inject_bug) {
        (Some(b), _) => b.clone(),
        (None, Some(bug)) => bug::build(bug, &args.backends)?.0,
        (None, None) => build_server(&args.backends)?,
    };
    let dir = crate::cluster::procs::data_root("chaos-")?;
    println!(
        "chaos: seed {}, {:.0} s, {} clients, {}; servers' output and data in {}",
        args.seed,
        args.duration.as_secs_f64(),
        args.clients,
        args.backends.label(),
        dir.path().display()
    );
    println!("replay: cargo xtask chaos --seed {} --duration {}", args.seed, args.duration.as_secs_f64());
    let cluster = Cluster::start(&binary, &args.backends.transport, &args.backends.storage, dir.path())?;
    let schedule = Schedule::draw(args.seed, args.duration, &cluster.roles);
    let legend: Vec<String> = cluster.nodes().iter().enumerate().map(|(i, n)| format!("#{i} {}", n.name)).collect();
    println!("nodes: {}", legend.join(", "));
    print!("{schedule}");
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("tokio runtime")?;
    let report = rt.block_on(run_async(args, Arc::new(cluster), &schedule));
    match report {
        Ok(report) => {
            print!("{report}");
            if report.passed() {
                Ok(())
            } else {
                let kept = dir.keep();
                bail!("chaos run of seed {} FAILED; servers' output and data kept in {}", args.seed, kept.display())
            }
        }
        Err(e) => {
            let kept = dir.keep();
            Err(e.context(format!(
                "chaos run of seed {} failed; servers' output and data kept in {}",
                args.seed,
                kept.display()
            )))
        }
    }
}

async fn run_async(args: &ChaosArgs, cluster: Arc<Cluster>, schedule: &Schedule) -> Result<Report> {
    let mut report = Report::new(args.seed, args.duration, args.backends.label());
    cluster.ctrl_clerk(Duration::from_secs(30)).join(cluster.groups.clone()).await.context("joining the groups")?;
    let (_, violations) = cluster.probe(Duration::from_secs(30)).await.context("the first write to every shard")?;
    report.problems(violations);

    let work = clients::Workload::new();
    let c = cluster.clone();
    let clerks: clients::Clerks = Arc::new(move || c.clerk(clients::CLIENT_DEADLINE));
    let tasks: Vec<_> = (0..args.clients)
        .map(|i| tokio::spawn(clients::client(work.clone(), clerks.clone(), args.seed ^ (i as u64 + 1) << 40)))
        .collect();
    let started = Instant::now();
    let reconfigs = tokio::spawn(reconfig::run(cluster.clone(), schedule.reconfigs.clone(), started, args.duration));

    for (n, step) in schedule.steps.iter().enumerate() {
        if started.elapsed() >= args.duration {
            break;
        }
        let at = started.elapsed().as_secs_f64();
        let (what, applied) = cluster.apply(&step.fault, args.seed.wrapping_add(n as u64)).await?;
        println!("[{at:7.1} s] fault {:>3}: {what} ({:.1} s)", n + 1, step.hold.as_secs_f64());
        let skipped = matches!(applied, cluster::Applied::Nothing);
        tokio::time::sleep(step.hold).await;
        // Recovery counts from the heal: a killed node's restart included.
        let healing = Instant::now();
        tokio::task::block_in_place(|| cluster.heal(applied))?;
        let recovered = match cluster.probe(Duration::from_secs(60)).await {
            Ok((_, violations)) => {
                report.problems(violations);
                Ok(healing.elapsed())
            }
            Err(e) => Err(e),
        };
        match &recovered {
            Ok(d) => println!(
                "[{:7.1} s]   healed; every shard served again after {:.2} s",
                started.elapsed().as_secs_f64(),
                d.as_secs_f64()
            ),
            Err(e) => {
                println!("[{:7.1} s]   healed; service did NOT come back: {e:#}", started.elapsed().as_secs_f64())
            }
        }
        if !skipped {
            report.fault(step.fault.kind(), recovered.map_err(|e| format!("{e:#}")));
        }
        for crash in tokio::task::block_in_place(|| cluster.heal_all())? {
            report.problem(format!("a server crashed: {crash}"));
        }
        tokio::time::sleep(step.gap).await;
    }

    work.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        report.counts(t.await.context("a client task")?);
    }
    report.reconfigs = reconfigs.await.context("the reconfiguration task")?;
    let healed = Instant::now();
    for crash in tokio::task::block_in_place(|| cluster.heal_all())? {
        report.problem(format!("a server crashed: {crash}"));
    }
    match cluster.probe(Duration::from_secs(60)).await {
        Ok((_, violations)) => {
            report.problems(violations);
            report.heal_to_service = Some(healed.elapsed());
        }
        Err(e) => report.problem(format!("no full service within 60 s of the final heal: {e:#}")),
    }
    let final_clerks: clients::Clerks = {
        let c = cluster.clone();
        Arc::new(move || c.clerk(Duration::from_secs(60)))
    };
    if let Err(e) = clients::final_reads(&work, &final_clerks).await {
        report.problem(format!("{e:#}"));
    }

    stop_and_scan(&cluster, &mut report).await;

    let history = work.recorder.operations();
    let last_reads = final_values(&history);
    report.tally = verdict::tally(&history, &last_reads);
    let (ok, words) = tokio::task::block_in_place(|| verdict::linearizable(&history));
    report.linearizable = Some((ok, words));
    Ok(report)
}

/// Each key's value as the last operation on it read it (the final reads
/// come last).
fn final_values(
    history: &[raftkv_testkit::linearizability::Operation],
) -> BTreeMap<bytes::Bytes, Option<bytes::Bytes>> {
    let mut last = BTreeMap::new();
    for op in history {
        if let (raftkv_testkit::linearizability::KvInput::Get, Outcome::Returned { at, value }) =
            (&op.input, &op.outcome)
        {
            let e = last.entry(op.key.clone()).or_insert((0, None));
            if *at >= e.0 {
                *e = (*at, value.clone());
            }
        }
    }
    last.into_iter().map(|(k, (_, v))| (k, v)).collect()
}

/// Stop every server with SIGTERM, read their output for panics, and scan
/// their durable logs.
async fn stop_and_scan(cluster: &Cluster, report: &mut Report) {
    let nodes: Vec<(String, Role, u64, PathBuf)> = tokio::task::block_in_place(|| {
        let mut nodes = cluster.nodes();
        nodes
            .iter_mut()
            .map(|n| {
                if let Err(e) = n.stop(Duration::from_secs(15)) {
                    report.problem(format!("{e:#}"));
                }
                for line in n.alarming_lines() {
                    report.problem(format!("{}: {line}", n.name));
                }
                report.restarts += u64::from(n.starts.saturating_sub(1));
                (n.name.clone(), n.role, n.me, n.data.clone())
            })
            .collect()
    });
    if cluster.storage == "mem" {
        report.scan = Some("not scanned: the mem storage keeps nothing on disk".into());
        return;
    }
    let (mut compared, mut entries) = (0, 0);
    for role in [Role::Ctrl, Role::Kv(1), Role::Kv(2)] {
        let group = match role {
            Role::Ctrl => GroupId(0),
            Role::Kv(g) => GroupId(g),
        };
        let mut logs = Vec::new();
        for (name, _, me, data) in nodes.iter().filter(|n| n.1 == role) {
            match scan::read(&cluster.storage, name, data, group, NodeId(*me)).await {
                Ok(log) => {
                    entries += log.entries.len();
                    logs.push(log);
                }
                Err(e) => report.problem(format!("{e:#}")),
            }
        }
        match scan::compare(&logs) {
            Ok(c) => compared += c,
            Err(e) => report.problem(format!("{role}: {e:#}")),
        }
    }
    report.scan =
        Some(format!("{entries} entries read back from {} logs; {compared} compared across replicas", nodes.len()));
}
