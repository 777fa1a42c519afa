//! `cargo xtask test-matrix`: the end-to-end cluster suite of
//! `raftkv-server` (real processes, the CLI, the admin endpoint, traces,
//! restarts) once per transport × storage combination, then the server
//! built with only some backends, and a pass/fail table with times.
//!
//! The combinations share one build with every feature (the tests pick the
//! backend from `TEST_RAFTKV_TRANSPORT` / `TEST_RAFTKV_STORAGE`): the same
//! artifacts as `cargo nextest run --workspace --all-features`, so after
//! that suite nothing is rebuilt. What only a build without some backends
//! shows (that it compiles, and names the missing feature when a config asks
//! for it) is the last row, one build with only `http,sqlite`.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::args::Flags;
use crate::process;

/// How a row is built and which of its tests run.
enum Build {
    /// Every feature; the whole suite.
    AllFeatures,
    /// Only these features (no defaults); only the config tests.
    Only(&'static str),
}

/// One row: its name, its build, and the backend the tests pick.
struct Combo {
    name: &'static str,
    build: Build,
    transport: &'static str,
    storage: &'static str,
}

const COMBOS: [Combo; 6] = [
    Combo { name: "grpc×redb", build: Build::AllFeatures, transport: "grpc", storage: "redb" },
    Combo { name: "grpc×sqlite", build: Build::AllFeatures, transport: "grpc", storage: "sqlite" },
    Combo { name: "http×redb", build: Build::AllFeatures, transport: "http", storage: "redb" },
    Combo { name: "http×sqlite", build: Build::AllFeatures, transport: "http", storage: "sqlite" },
    Combo { name: "mem", build: Build::AllFeatures, transport: "grpc", storage: "mem" },
    Combo { name: "http+sqlite-only", build: Build::Only("http,sqlite"), transport: "http", storage: "sqlite" },
];

/// Options of `test-matrix`.
pub struct TestMatrixArgs {
    only: Option<Vec<String>>,
    skip: Vec<String>,
}

impl TestMatrixArgs {
    pub fn parse(args: &[&str]) -> Result<Self> {
        let a = Flags::parse(args, &["--only", "--skip"])?;
        let only: Option<Vec<String>> = a.list("--only")?;
        let skip: Vec<String> = a.list("--skip")?.unwrap_or_default();
        for name in only.iter().flatten().chain(&skip) {
            if !COMBOS.iter().any(|c| c.name == name) {
                let known: Vec<_> = COMBOS.iter().map(|c| c.name).collect();
                bail!("unknown combination `{name}`; the combinations are {}", known.join(", "));
            }
        }
        Ok(Self { only, skip })
    }

    fn includes(&self, combo: &Combo) -> bool {
        let named = |names: &[String]| names.iter().any(|n| n == combo.name);
        self.only.as_deref().is_none_or(named) && !named(&self.skip)
    }
}

/// The `N tests run: P passed, F failed` part of nextest's summary line.
fn summary(out: &str) -> String {
    out.lines()
        .rev()
        .find_map(|l| {
            l.trim().strip_prefix("Summary ").and_then(|s| s.split_once("] ")).map(|(_, rest)| rest.to_string())
        })
        .unwrap_or_else(|| "no test summary (build failed?)".to_string())
}

pub fn run(args: &TestMatrixArgs) -> Result<()> {
    let combos: Vec<&Combo> = COMBOS.iter().filter(|c| args.includes(c)).collect();
    let mut rows = Vec::new();
    for combo in &combos {
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["nextest", "run"]);
        match combo.build {
            // The whole workspace's feature set, so that the main suite's build is reused.
            Build::AllFeatures => cmd.args(["--workspace", "--all-features", "-E", "package(raftkv-server)"]),
            Build::Only(features) => {
                cmd.args(["-p", "raftkv-server", "--no-default-features", "--features", features, "--test", "config"])
            }
        };
        cmd.args(["--no-fail-fast", "--profile", "ci"])
            .env("TEST_RAFTKV_TRANSPORT", combo.transport)
            .env("TEST_RAFTKV_STORAGE", combo.storage);
        let shown: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        println!("== {}: cargo {} ({} × {})", combo.name, shown.join(" "), combo.transport, combo.storage);
        let started = Instant::now();
        let out = process::capture(&mut cmd, None, Duration::from_secs(30 * 60))?;
        let elapsed = started.elapsed();
        let ok = out.success();
        if !ok {
            println!("{}", out.describe());
        }
        let line = summary(&format!("{}\n{}", out.stdout, out.stderr));
        println!("   {} in {:.0} s: {line}", if ok { "PASS" } else { "FAIL" }, elapsed.as_secs_f64());
        rows.push((combo.name, ok, elapsed, line));
    }
    println!();
    println!("{:<16} {:<6} {:>8}  tests", "combination", "result", "time");
    for (name, ok, elapsed, line) in &rows {
        println!("{name:<16} {:<6} {:>7.0}s  {line}", if *ok { "pass" } else { "FAIL" }, elapsed.as_secs_f64());
    }
    let failed: Vec<_> = rows.iter().filter(|r| !r.1).map(|r| r.0).collect();
    if !failed.is_empty() {
        bail!("test-matrix failed for {}", failed.join(", "));
    }
    Ok(())
}
