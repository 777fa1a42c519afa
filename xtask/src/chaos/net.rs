//! The chaos run's network: one network namespace per node, each joined to
//! the host by a veth pair on a subnet of its own (node `i`: 10.77.i.2, the
//! host side 10.77.i.1), so that every packet between two nodes is routed
//! through the host's `FORWARD` chain. One iptables chain of ours, jumped to
//! first from `FORWARD`, holds every fault: partitions (drops between
//! addresses), packet loss (`statistic` drops) and delay with reordering
//! (`NFQUEUE` to [`super::delay`]). Healing flushes it. Everything made here
//! is removed when the [`Net`] is dropped, and a stale copy left by a killed
//! run is removed before a new one is made.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::process;

/// Our chain in the host's filter table.
const CHAIN: &str = "RKV-CHAOS";
/// Prefix of our namespaces and interfaces.
const PREFIX: &str = "rkvc";
/// All nodes' addresses.
const SUBNET: &str = "10.77.0.0/16";
/// The NFQUEUE number the delay handler reads.
pub const QUEUE: u16 = 77;

fn run(program: &str, args: &[&str]) -> Result<String> {
    process::checked(Command::new(program).args(args), None, Duration::from_secs(20))
}

/// Run and ignore failure (removing what may not exist).
fn run_quiet(program: &str, args: &[&str]) {
    let _ = process::capture(Command::new(program).args(args), None, Duration::from_secs(20));
}

fn ipt(args: &[&str]) -> Result<()> {
    run("iptables", &[&["-w"], args].concat()).map(|_| ())
}

/// One node's place in the network.
#[derive(Clone, Debug)]
pub struct Host {
    /// Its namespace.
    pub netns: String,
    /// Its address.
    pub ip: String,
}

/// The namespaces and the fault chain.
pub struct Net {
    pub hosts: Vec<Host>,
}

impl Net {
    /// Make `n` namespaces (nodes 1..=n) and the chain. Needs root,
    /// iproute2 and iptables.
    pub fn create(n: usize) -> Result<Self> {
        if n == 0 || n > 200 {
            bail!("between 1 and 200 nodes, not {n}");
        }
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let euid = status.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2));
        if euid != Some("0") {
            bail!("the chaos run makes network namespaces and iptables rules: run it as root");
        }
        for tool in ["ip", "iptables"] {
            if process::capture(Command::new(tool).arg("-V"), None, Duration::from_secs(5)).is_err() {
                bail!("`{tool}` is missing: install iproute2 and iptables (`.ci/run` does)");
            }
        }
        remove_stale();
        let mut net = Self { hosts: Vec::new() };
        for i in 1..=n {
            let netns = format!("{PREFIX}-n{i}");
            let (outer, inner) = (format!("{PREFIX}h{i}"), format!("{PREFIX}n{i}"));
            let ip = format!("10.77.{i}.2");
            run("ip", &["netns", "add", &netns])?;
            net.hosts.push(Host { netns: netns.clone(), ip: ip.clone() });
            run("ip", &["link", "add", &outer, "type", "veth", "peer", "name", &inner])?;
            run("ip", &["link", "set", &inner, "netns", &netns])?;
            run("ip", &["addr", "add", &format!("10.77.{i}.1/24"), "dev", &outer])?;
            run("ip", &["link", "set", &outer, "up"])?;
            run("ip", &["-n", &netns, "addr", "add", &format!("{ip}/24"), "dev", &inner])?;
            run("ip", &["-n", &netns, "link", "set", &inner, "up"])?;
            run("ip", &["-n", &netns, "link", "set", "lo", "up"])?;
            run("ip", &["-n", &netns, "route", "add", "default", "via", &format!("10.77.{i}.1")])?;
        }
        let forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
        if forward.trim() != "1" {
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
                .map_err(|e| anyhow::anyhow!("enabling IPv4 forwarding between the namespaces: {e}"))?;
        }
        ipt(&["-N", CHAIN])?;
        ipt(&["-I", "FORWARD", "1", "-j", CHAIN])?;
        net.heal()?;
        Ok(net)
    }

    /// Remove every fault: the chain only accepts traffic between nodes.
    pub fn heal(&self) -> Result<()> {
        ipt(&["-F", CHAIN])?;
        ipt(&["-A", CHAIN, "-s", SUBNET, "-d", SUBNET, "-j", "ACCEPT"])
    }

    /// Cut every link between a node of `a` and a node of `b` (indices into
    /// [`Self::hosts`]), both ways.
    pub fn cut(&self, a: &[usize], b: &[usize]) -> Result<()> {
        for &x in a {
            for &y in b {
                if x == y {
                    continue;
                }
                let (sx, sy) = (&self.hosts[x].ip, &self.hosts[y].ip);
                ipt(&["-I", CHAIN, "1", "-s", sx, "-d", sy, "-j", "DROP"])?;
                ipt(&["-I", CHAIN, "1", "-s", sy, "-d", sx, "-j", "DROP"])?;
            }
        }
        Ok(())
    }

    /// Put `rule` (match and target) first in the chain, for every packet
    /// between two nodes.
    fn between_nodes(&self, rule: &[&str]) -> Result<()> {
        ipt(&[&["-I", CHAIN, "1", "-s", SUBNET, "-d", SUBNET], rule].concat())
    }

    /// Drop each packet between nodes with probability `p`.
    pub fn lose(&self, p: f64) -> Result<()> {
        let p = format!("{:.3}", p.clamp(0.0, 1.0));
        self.between_nodes(&["-m", "statistic", "--mode", "random", "--probability", &p, "-j", "DROP"])
    }

    /// Hand every packet between nodes to the delay handler (which must be
    /// reading [`QUEUE`]; without it the packets pass, `--queue-bypass`).
    pub fn delay(&self) -> Result<()> {
        self.between_nodes(&["-j", "NFQUEUE", "--queue-num", &QUEUE.to_string(), "--queue-bypass"])
    }
}

/// Remove our namespaces, interfaces and chain, if there.
fn remove_stale() {
    while process::capture(
        Command::new("iptables").args(["-w", "-D", "FORWARD", "-j", CHAIN]),
        None,
        Duration::from_secs(20),
    )
    .is_ok_and(|o| o.success())
    {}
    run_quiet("iptables", &["-w", "-F", CHAIN]);
    run_quiet("iptables", &["-w", "-X", CHAIN]);
    if let Ok(list) = run("ip", &["netns", "list"]) {
        for ns in list.lines().filter_map(|l| l.split_whitespace().next()).filter(|n| n.starts_with(PREFIX)) {
            run_quiet("ip", &["netns", "del", ns]);
        }
    }
    if let Ok(links) = run("ip", &["-o", "link", "show"]) {
        for name in links.lines().filter_map(|l| l.split(':').nth(1)).map(|n| n.trim().split('@').next().unwrap_or(""))
        {
            if name.starts_with(&format!("{PREFIX}h")) {
                run_quiet("ip", &["link", "del", name]);
            }
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        remove_stale();
    }
}
