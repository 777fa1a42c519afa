//! `cargo xtask attack`: attacks on real `raftkv-server` processes from
//! outside, as someone who can reach the ports but holds no credentials
//! would make them, each asserting that the cluster stays correct and
//! available. Each attack starts a cluster of its own on loopback (3
//! controllers and 1 or 2 groups × 3 replicas, gRPC, with a cluster token),
//! is bounded in time, prints what it did and measured, and checks its
//! claims; the run fails naming every attack with a claim that did not hold.

mod cluster;
mod descriptor_flood;
mod findings;
mod forged_delete;
mod forgery;
mod legit;
mod memory_flood;
mod term_bomb;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::args::Flags;
use crate::cluster::raftkv::{build_server, Backends};
use cluster::Setup;
use findings::Findings;

type AttackFuture<'a> = Pin<Box<dyn Future<Output = Result<Findings>> + 'a>>;

/// One attack: its name, what it proves, and how to run it.
struct Attack {
    name: &'static str,
    proves: &'static str,
    run: for<'a> fn(&'a Setup) -> AttackFuture<'a>,
}

const ATTACKS: &[Attack] = &[
    Attack {
        name: "memory_flood",
        proves: "requests declaring 3.6 GB and never finishing stay within the byte budget; clients still served",
        run: |s| Box::pin(memory_flood::run(s)),
    },
    Attack {
        name: "descriptor_flood",
        proves: "~18,000 silent connections use up no descriptors for good; clients and the leader unaffected",
        run: |s| Box::pin(descriptor_flood::run(s)),
    },
    Attack {
        name: "term_bomb",
        proves:
            "a forged heartbeat at term 2^63-1 without the token is refused; terms stay small, also after a restart",
        run: |s| Box::pin(term_bomb::run(s)),
    },
    Attack {
        name: "forged_delete",
        proves: "a forged DeleteShards without the token is refused; the shard's keys stay readable",
        run: |s| Box::pin(forged_delete::run(s)),
    },
];

/// No attack may run longer than this.
const ATTACK_LIMIT: Duration = Duration::from_secs(150);

/// Arguments of `attack`.
pub struct AttackArgs {
    names: Vec<&'static str>,
    storage: String,
    server_binary: Option<PathBuf>,
    token: bool,
    server_env: Vec<(String, String)>,
}

impl AttackArgs {
    /// `[NAME ...] [--flag value ...]`: the attacks to run (default all), then flags.
    pub fn parse(args: &[&str]) -> Result<Self> {
        let split = args.iter().position(|a| a.starts_with("--")).unwrap_or(args.len());
        let (named, flags) = args.split_at(split);
        let mut names = Vec::new();
        for n in named {
            let Some(a) = ATTACKS.iter().find(|a| a.name == *n) else {
                let known: Vec<&str> = ATTACKS.iter().map(|a| a.name).collect();
                bail!("unknown attack `{n}`; the attacks are {}", known.join(", "));
            };
            names.push(a.name);
        }
        if names.is_empty() {
            names = ATTACKS.iter().map(|a| a.name).collect();
        }
        let f = Flags::parse(flags, &["--storage", "--server-binary", "--token", "--server-env"])?;
        let storage: String = f.get("--storage")?.unwrap_or_else(|| "redb".into());
        Backends { transport: "grpc".into(), storage: storage.clone() }.check()?;
        let token = match f.get::<String>("--token")?.as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => bail!("`--token` is on or off, not `{other}`"),
        };
        let server_env = f
            .list::<String>("--server-env")?
            .unwrap_or_default()
            .iter()
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) if k.starts_with("RAFTKV_") => Ok((k.to_string(), v.to_string())),
                _ => bail!("`--server-env` takes RAFTKV_KEY=VALUE pairs, not `{pair}`"),
            })
            .collect::<Result<_>>()?;
        Ok(Self { names, storage, server_binary: f.get("--server-binary")?, token, server_env })
    }
}

/// Raise this process's soft descriptor limit to its hard limit (the
/// servers it starts inherit it); the limits before and after.
fn raise_descriptor_limit() -> (Option<u64>, Option<u64>) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let before = getrlimit(Resource::Nofile);
    let _ = setrlimit(Resource::Nofile, Rlimit { current: before.maximum, maximum: before.maximum });
    (before.current, getrlimit(Resource::Nofile).current)
}

pub fn run(args: &AttackArgs) -> Result<()> {
    let started = Instant::now();
    let (was, now) = raise_descriptor_limit();
    println!("attack: descriptor limit raised from {was:?} to {now:?}");
    let binary = match &args.server_binary {
        Some(b) => b.clone(),
        None => build_server(&Backends { transport: "grpc".into(), storage: args.storage.clone() })?,
    };
    let setup = Setup { binary, storage: args.storage.clone(), token: args.token, env: args.server_env.clone() };
    if !args.server_env.is_empty() {
        println!("attack: every server also gets {:?}", args.server_env);
    }
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("tokio runtime")?;
    let mut results = Vec::new();
    for attack in ATTACKS.iter().filter(|a| args.names.contains(&a.name)) {
        println!("\n== attack {}: {}", attack.name, attack.proves);
        let t = Instant::now();
        let outcome = rt.block_on(async {
            match tokio::time::timeout(ATTACK_LIMIT, (attack.run)(&setup)).await {
                Ok(r) => r,
                Err(_) => bail!("did not finish within {ATTACK_LIMIT:?}"),
            }
        });
        let failures = match outcome {
            Ok(f) => f.failures().to_vec(),
            Err(e) => {
                println!("  FAIL the attack could not run to its end: {e:#}");
                vec![format!("could not run to its end: {e:#}")]
            }
        };
        let verdict = if failures.is_empty() { "passed" } else { "FAILED" };
        println!("== {} {verdict} in {:.1} s", attack.name, t.elapsed().as_secs_f64());
        results.push((attack.name, t.elapsed(), failures));
    }
    println!("\nattacks ({:.0} s in all):", started.elapsed().as_secs_f64());
    for (name, took, failures) in &results {
        let verdict = if failures.is_empty() { "passed" } else { "FAILED" };
        println!("  {name:<18} {verdict:<7} {:>6.1} s", took.as_secs_f64());
        for failure in failures {
            println!("      {failure}");
        }
    }
    let failed: Vec<&str> = results.iter().filter(|r| !r.2.is_empty()).map(|r| r.0).collect();
    if !failed.is_empty() {
        bail!("attack(s) failed: {}", failed.join(", "));
    }
    Ok(())
}
