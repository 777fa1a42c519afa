//! What one attack found: the lines it measured, printed as they come, and
//! the claims it checked, each printed `ok` or `FAIL`; an attack fails if
//! any claim does.

use std::fmt::Display;
use std::time::Duration;

/// The findings of one attack.
#[derive(Debug, Default)]
pub struct Findings {
    failures: Vec<String>,
}

impl Findings {
    /// A measurement or a step, printed at once.
    pub fn note(&self, text: impl Display) {
        println!("    {text}");
    }

    /// A claim the attack checks: printed with its verdict, kept if false.
    pub fn check(&mut self, holds: bool, claim: impl Display) {
        let claim = claim.to_string();
        println!("  {} {claim}", if holds { "ok  " } else { "FAIL" });
        if !holds {
            self.failures.push(claim);
        }
    }

    /// The claims that did not hold.
    pub fn failures(&self) -> &[String] {
        &self.failures
    }
}

/// `d` in milliseconds, for reports.
pub fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// `bytes` in MiB, for reports.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}
