//! The legitimate client of an attack: rounds of a Put of a fresh value and
//! a Get that must return it, each round on a network client of its own
//! (new connections, as a client arriving during the attack opens them),
//! every operation timed, each with a deadline of [`DEADLINE`].

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::cluster::Cluster;
use super::findings::{ms, Findings};
use crate::cluster::raftkv::net_client;

/// How long a legitimate operation may take ("within a few seconds"),
/// connecting and asking the controllers for the configuration included.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// What the legitimate client saw.
#[derive(Debug, Default)]
pub struct Legit {
    pub puts: Vec<Duration>,
    pub gets: Vec<Duration>,
    pub failures: Vec<String>,
}

impl Legit {
    /// One round now, keys named after `tag` and `n`.
    async fn round(&mut self, cluster: &Cluster, tag: &str, n: usize) {
        let net = match net_client("grpc") {
            Ok(net) => net,
            Err(e) => return self.failures.push(format!("round {n}: no network client: {e:#}")),
        };
        let mut clerk = cluster.clerk_on(net, DEADLINE);
        let key = Bytes::from(format!("legit-{tag}-{n}"));
        let value = Bytes::from(format!("value-{n}"));
        let started = Instant::now();
        if let Err(e) = clerk.put(key.clone(), value.clone()).await {
            return self.failures.push(format!("Put {key:?} failed after {}: {e}", ms(started.elapsed())));
        }
        self.puts.push(started.elapsed());
        let started = Instant::now();
        match clerk.get(key.clone()).await {
            Ok(Some(v)) if v == value => self.gets.push(started.elapsed()),
            Ok(other) => self.failures.push(format!("Get {key:?} returned {other:?}, not {value:?}")),
            Err(e) => self.failures.push(format!("Get {key:?} failed after {}: {e}", ms(started.elapsed()))),
        }
    }

    /// Rounds every `every` until `until` (at least one).
    pub async fn during(cluster: &Cluster, tag: &str, until: Instant, every: Duration) -> Self {
        let mut legit = Self::default();
        let mut n = 0;
        loop {
            let next = Instant::now() + every;
            legit.round(cluster, tag, n).await;
            n += 1;
            if next >= until {
                return legit;
            }
            tokio::time::sleep_until(next.into()).await;
        }
    }

    /// One round.
    pub async fn once(cluster: &Cluster, tag: &str) -> Self {
        let mut legit = Self::default();
        legit.round(cluster, tag, 0).await;
        legit
    }

    /// Print the latencies and check that every operation succeeded in time.
    pub fn report(&self, f: &mut Findings, when: &str) {
        let stats = |d: &[Duration]| {
            let mut d = d.to_vec();
            d.sort();
            match (d.first(), d.get(d.len() / 2), d.last()) {
                (Some(lo), Some(mid), Some(hi)) => format!("min {} / median {} / max {}", ms(*lo), ms(*mid), ms(*hi)),
                _ => "none".to_string(),
            }
        };
        f.note(format!(
            "legitimate client {when}: {} Puts ({}), {} Gets ({})",
            self.puts.len(),
            stats(&self.puts),
            self.gets.len(),
            stats(&self.gets)
        ));
        for failure in &self.failures {
            f.note(format!("legitimate client: {failure}"));
        }
        // A call already under way when the clerk's deadline passes may still succeed, late.
        let late = self.puts.iter().chain(&self.gets).filter(|d| **d > DEADLINE).count();
        let in_time = self.puts.len() + self.gets.len() - late;
        f.check(
            self.failures.is_empty() && late == 0 && in_time > 0,
            format!(
                "a legitimate client's Puts and Gets {when} all succeed within {} ({in_time} did, {late} late, {} failed)",
                ms(DEADLINE),
                self.failures.len()
            ),
        );
    }
}
