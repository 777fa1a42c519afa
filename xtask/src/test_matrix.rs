//! `cargo xtask test-matrix`: the end-to-end cluster suite of
//! `raftkv-server` (real processes, the CLI, the admin endpoint, traces,
//! restarts) once per transport × storage combination, each built with only
//! its own features, then a pass/fail table with times.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::args::Flags;
use crate::process;

/// One combination: its name, the Cargo features, and the backend the tests pick.
struct Combo {
    name: &'static str,
    features: &'static str,
    transport: &'static str,
    storage: &'static str,
}

const COMBOS: [Combo; 5] = [
    Combo { name: "grpc×redb", features: "grpc,redb", transport: "grpc", storage: "redb" },
    Combo { name: "grpc×sqlite", features: "grpc,sqlite", transport: "grpc", storage: "sqlite" },
    Combo { name: "http×redb", features: "http,redb", transport: "http", storage: "redb" },
    Combo { name: "http×sqlite", features: "http,sqlite", transport: "http", storage: "sqlite" },
    Combo { name: "mem", features: "grpc,mem", transport: "grpc", storage: "mem" },
];

/// Options of `test-matrix`.
pub struct TestMatrixArgs {
    only: Option<Vec<String>>,
}

impl TestMatrixArgs {
    pub fn parse(args: &[&str]) -> Result<Self> {
        let a = Flags::parse(args, &["--only"])?;
        let only: Option<Vec<String>> = a.list("--only")?;
        if let Some(only) = &only {
            for name in only {
                if !COMBOS.iter().any(|c| c.name == name || c.features == name) {
                    let known: Vec<_> = COMBOS.iter().map(|c| c.name).collect();
                    bail!("unknown combination `{name}`; the combinations are {}", known.join(", "));
                }
            }
        }
        Ok(Self { only })
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
    let combos: Vec<&Combo> = COMBOS
        .iter()
        .filter(|c| args.only.as_ref().is_none_or(|o| o.iter().any(|n| n == c.name || n == c.features)))
        .collect();
    let mut rows = Vec::new();
    for combo in &combos {
        println!(
            "== {}: cargo nextest run -p raftkv-server --no-default-features --features {}",
            combo.name, combo.features
        );
        let started = Instant::now();
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["nextest", "run", "-p", "raftkv-server", "--no-default-features", "--features", combo.features])
            .args(["--no-fail-fast", "--profile", "ci"])
            .env("TEST_RAFTKV_TRANSPORT", combo.transport)
            .env("TEST_RAFTKV_STORAGE", combo.storage);
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
    println!("{:<12} {:<6} {:>8}  tests", "combination", "result", "time");
    for (name, ok, elapsed, line) in &rows {
        println!("{name:<12} {:<6} {:>7.0}s  {line}", if *ok { "pass" } else { "FAIL" }, elapsed.as_secs_f64());
    }
    let failed: Vec<_> = rows.iter().filter(|r| !r.1).map(|r| r.0).collect();
    if !failed.is_empty() {
        bail!("test-matrix failed for {}", failed.join(", "));
    }
    Ok(())
}
