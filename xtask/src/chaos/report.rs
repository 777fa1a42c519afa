//! What a chaos run found, printed as the rows `docs/RELIABILITY.md` keeps.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::clients::Counts;
use super::nemesis::KINDS;
use super::verdict::Tally;

/// Recovery times of one fault kind, and failures to recover.
#[derive(Default)]
struct Recoveries {
    times: Vec<Duration>,
    failed: usize,
}

pub struct Report {
    seed: u64,
    duration: Duration,
    backends: String,
    faults: BTreeMap<&'static str, Recoveries>,
    clients: Counts,
    pub reconfigs: Vec<String>,
    pub restarts: u64,
    pub heal_to_service: Option<Duration>,
    pub scan: Option<String>,
    pub tally: Tally,
    pub linearizable: Option<(bool, String)>,
    problems: Vec<String>,
}

impl Report {
    pub fn new(seed: u64, duration: Duration, backends: String) -> Self {
        Self {
            seed,
            duration,
            backends,
            faults: BTreeMap::new(),
            clients: Counts::default(),
            reconfigs: Vec::new(),
            restarts: 0,
            heal_to_service: None,
            scan: None,
            tally: Tally::default(),
            linearizable: None,
            problems: Vec::new(),
        }
    }

    /// A fault of `kind` was injected and healed; how long service took to return.
    pub fn fault(&mut self, kind: &'static str, recovered: Result<Duration, String>) {
        let r = self.faults.entry(kind).or_default();
        match recovered {
            Ok(d) => r.times.push(d),
            Err(e) => {
                r.failed += 1;
                self.problems.push(format!("after a fault of kind {kind}, service did not return: {e}"));
            }
        }
    }

    pub fn counts(&mut self, c: Counts) {
        self.clients.ok += c.ok;
        self.clients.failed += c.failed;
        self.clients.unknown += c.unknown;
    }

    /// Something that fails the run.
    pub fn problem(&mut self, what: String) {
        self.problems.push(what);
    }

    /// Several of them (a probe's consistency violations).
    pub fn problems(&mut self, what: Vec<String>) {
        self.problems.extend(what);
    }

    pub fn passed(&self) -> bool {
        self.problems.is_empty() && self.tally.lost.is_empty() && self.linearizable.as_ref().is_some_and(|(ok, _)| *ok)
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\n## chaos: seed {}, {:.0} s, {}", self.seed, self.duration.as_secs_f64(), self.backends)?;
        writeln!(f, "\n| fault | injected | service back after (median / max) | not back |")?;
        writeln!(f, "|---|---:|---|---:|")?;
        for kind in KINDS {
            let r = self.faults.get(kind);
            let mut times = r.map(|r| r.times.clone()).unwrap_or_default();
            times.sort();
            let n = times.len() + r.map_or(0, |r| r.failed);
            let back = match (times.get(times.len().saturating_sub(1) / 2), times.last()) {
                (Some(m), Some(x)) => format!("{} / {}", secs(*m), secs(*x)),
                _ => "—".into(),
            };
            writeln!(f, "| {kind} | {n} | {back} | {} |", r.map_or(0, |r| r.failed))?;
        }
        let reconfigs_done = self.reconfigs.iter().filter(|l| l.ends_with(": done")).count();
        writeln!(f, "| reconfigurations (Join/Leave/Move) | {} | {reconfigs_done} done | — |", self.reconfigs.len())?;
        let t = &self.tally;
        writeln!(f)?;
        writeln!(
            f,
            "- operations: {} recorded ({} ok, {} unknown); the clients saw {} ok, {} refused, {} timed out",
            t.operations, t.ok, t.unknown, self.clients.ok, self.clients.failed, self.clients.unknown
        )?;
        writeln!(
            f,
            "- acknowledged writes: {}; acknowledged appends no overwrite could hide: {}; lost: {}",
            t.acknowledged_writes,
            t.checkable_appends,
            t.lost.len()
        )?;
        for l in t.lost.iter().take(10) {
            writeln!(f, "  - LOST: {l}")?;
        }
        if t.lost.len() > 10 {
            writeln!(f, "  - … {} lost in all", t.lost.len())?;
        }
        let verdict = self.linearizable.as_ref().map_or("not checked", |(_, w)| w.as_str());
        writeln!(f, "- checker: {verdict}")?;
        let heal = self.heal_to_service.map_or_else(|| "never".into(), secs);
        writeln!(f, "- from the final heal to every shard serving: {heal}")?;
        writeln!(f, "- server restarts: {}", self.restarts)?;
        writeln!(f, "- durable logs: {}", self.scan.as_deref().unwrap_or("not scanned"))?;
        if self.problems.is_empty() {
            writeln!(f, "- panics, crashes, unclean exits, corrupt data: none")?;
        }
        for p in self.problems.iter().take(20) {
            writeln!(f, "  - PROBLEM: {p}")?;
        }
        if self.problems.len() > 20 {
            writeln!(f, "  - … {} problems in all", self.problems.len())?;
        }
        writeln!(f, "- verdict: {}", if self.passed() { "PASS" } else { "FAIL" })
    }
}
