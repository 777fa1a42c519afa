//! The nemesis schedule: a sequence of faults drawn from the run's seed,
//! and beside it a sequence of reconfigurations. The same seed gives the
//! same schedule (printed before the run); which node is "the leader" is
//! resolved when the step runs.

use std::fmt;
use std::time::Duration;

use super::delay::Delay;
use super::nodes::Role;
use crate::rng::Rng;

/// Whom a process fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The current leader of the group.
    Leader(Role),
    /// Node `i` (index into the run's node list).
    Node(usize),
}

/// The shape of a partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Partition {
    /// The group's leader cut off from every other node.
    IsolateLeader(Role),
    /// These nodes on one side, the rest on the other.
    Split(Vec<usize>),
    /// A chain: each node reaches only its neighbours in this order (for
    /// three members of a group: the middle one sees both, the ends only it).
    Bridge(Vec<usize>),
}

/// One fault, held for `hold` and then healed.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// SIGKILL, and restart after `hold`.
    Kill(Target),
    /// SIGSTOP, and SIGCONT after `hold`.
    Pause(Target),
    Partition(Partition),
    /// Drop this share of the packets between nodes.
    Loss(f64),
    /// Hold packets between nodes (they overtake each other).
    Delay(Delay),
}

impl Fault {
    /// Its kind, for the tallies.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kill(_) => "kill -9 + restart",
            Self::Pause(_) => "pause (SIGSTOP/SIGCONT)",
            Self::Partition(Partition::IsolateLeader(_)) => "partition: isolate leader",
            Self::Partition(Partition::Split(_)) => "partition: majority/minority",
            Self::Partition(Partition::Bridge(_)) => "partition: bridge",
            Self::Loss(_) => "packet loss",
            Self::Delay(_) => "delay + reordering",
        }
    }
}

/// Every fault kind, in the order of [`Fault::kind`]'s table in the report.
pub const KINDS: [&str; 7] = [
    "kill -9 + restart",
    "pause (SIGSTOP/SIGCONT)",
    "partition: isolate leader",
    "partition: majority/minority",
    "partition: bridge",
    "packet loss",
    "delay + reordering",
];

/// A fault and how long it lasts; the next one starts `gap` after this one
/// has healed and service came back.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub fault: Fault,
    pub hold: Duration,
    pub gap: Duration,
}

/// A reconfiguration; `roll` picks what it does when it runs: Leave a group
/// if two serve, Join it back if one does, otherwise Move a shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reconfig {
    /// Seconds since the start of the run.
    pub at: Duration,
    pub roll: u64,
}

/// The whole schedule.
pub struct Schedule {
    pub seed: u64,
    pub steps: Vec<Step>,
    pub reconfigs: Vec<Reconfig>,
}

impl Schedule {
    /// Draw the schedule of a run of `duration` from `seed`, for `nodes`
    /// (their roles, in node order).
    pub fn draw(seed: u64, duration: Duration, nodes: &[Role]) -> Self {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let pick = |rng: &mut Rng, n: usize| (rng.next() % n as u64) as usize;
        let groups: Vec<Role> = {
            let mut g: Vec<Role> = nodes.to_vec();
            g.dedup();
            g
        };
        let members = |role: Role| -> Vec<usize> { (0..nodes.len()).filter(|&i| nodes[i] == role).collect() };
        let ms = |rng: &mut Rng, lo: u64, hi: u64| Duration::from_millis(lo + rng.next() % (hi - lo + 1));
        let mut steps = Vec::new();
        let mut t = Duration::ZERO;
        // Each kind in turn first (every kind shows up in a short run), then at random.
        let mut k = 0;
        while t < duration {
            let kind = if k < KINDS.len() { k } else { pick(&mut rng, KINDS.len()) };
            k += 1;
            let role = groups[pick(&mut rng, groups.len())];
            let target = if rng.next().is_multiple_of(2) {
                Target::Leader(role)
            } else {
                let m = members(role);
                Target::Node(m[pick(&mut rng, m.len())])
            };
            let fault = match kind {
                0 => Fault::Kill(target),
                1 => Fault::Pause(target),
                2 => Fault::Partition(Partition::IsolateLeader(role)),
                3 => {
                    // A minority of every group on one side: one member each, at random.
                    let side = groups
                        .iter()
                        .map(|&g| {
                            let m = members(g);
                            m[pick(&mut rng, m.len())]
                        })
                        .collect();
                    Fault::Partition(Partition::Split(side))
                }
                4 => {
                    let mut m = members(role);
                    let first = pick(&mut rng, m.len());
                    m.rotate_left(first);
                    Fault::Partition(Partition::Bridge(m))
                }
                5 => Fault::Loss(0.05 + (rng.next() % 26) as f64 / 100.0),
                _ => Fault::Delay(Delay { base_ms: 5 + rng.next() % 20, jitter_ms: 10 + rng.next() % 60 }),
            };
            let hold = ms(&mut rng, 1_000, 4_000);
            let gap = ms(&mut rng, 300, 1_500);
            t += hold + gap;
            steps.push(Step { fault, hold, gap });
        }
        let mut reconfigs = Vec::new();
        let mut at = ms(&mut rng, 2_000, 4_000);
        while at < duration {
            reconfigs.push(Reconfig { at, roll: rng.next() });
            at += ms(&mut rng, 3_000, 7_000);
        }
        Self { seed, steps, reconfigs }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = |t: &Target| match t {
            Target::Leader(r) => format!("the leader of the {r}"),
            Target::Node(i) => format!("node #{i}"),
        };
        match &self.fault {
            Fault::Kill(t) => write!(f, "kill -9 {}, restart after", target(t))?,
            Fault::Pause(t) => write!(f, "SIGSTOP {}, SIGCONT after", target(t))?,
            Fault::Partition(Partition::IsolateLeader(r)) => write!(f, "isolate the leader of the {r} for")?,
            Fault::Partition(Partition::Split(side)) => write!(f, "split nodes {side:?} from the rest for")?,
            Fault::Partition(Partition::Bridge(chain)) => {
                write!(f, "bridge: nodes {chain:?} reach only their neighbours for")?
            }
            Fault::Loss(p) => write!(f, "drop {:.0} % of packets between nodes for", p * 100.0)?,
            Fault::Delay(d) => {
                write!(f, "delay packets {}–{} ms (reordering) for", d.base_ms, d.base_ms + d.jitter_ms)?
            }
        }
        write!(f, " {:.1} s; then {:.1} s calm", self.hold.as_secs_f64(), self.gap.as_secs_f64())
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "nemesis schedule of seed {} ({} faults, {} reconfigurations):",
            self.seed,
            self.steps.len(),
            self.reconfigs.len()
        )?;
        for (i, s) in self.steps.iter().enumerate() {
            writeln!(f, "  fault {:>3}: {s}", i + 1)?;
        }
        for r in &self.reconfigs {
            writeln!(f, "  reconfiguration at {:>6.1} s (roll {})", r.at.as_secs_f64(), r.roll % 100)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles() -> Vec<Role> {
        let mut r = vec![Role::Ctrl; 3];
        r.extend([Role::Kv(1); 3]);
        r.extend([Role::Kv(2); 3]);
        r
    }

    #[test]
    fn the_same_seed_draws_the_same_schedule_and_another_seed_another() {
        let a = Schedule::draw(7, Duration::from_secs(120), &roles());
        let b = Schedule::draw(7, Duration::from_secs(120), &roles());
        let c = Schedule::draw(8, Duration::from_secs(120), &roles());
        assert_eq!(a.to_string(), b.to_string());
        assert_ne!(a.to_string(), c.to_string());
    }

    #[test]
    fn a_short_run_has_every_fault_kind_and_reconfigurations() {
        let s = Schedule::draw(1, Duration::from_secs(60), &roles());
        for kind in KINDS {
            assert!(s.steps.iter().any(|st| st.fault.kind() == kind), "{kind} missing:\n{s}");
        }
        assert!(!s.reconfigs.is_empty(), "{s}");
        let total: Duration = s.steps.iter().map(|st| st.hold + st.gap).sum();
        assert!(total >= Duration::from_secs(60), "the faults cover the run");
    }

    #[test]
    fn a_split_leaves_a_majority_of_every_group_together() {
        for seed in 0..50 {
            let nodes = roles();
            for st in Schedule::draw(seed, Duration::from_secs(60), &nodes).steps {
                if let Fault::Partition(Partition::Split(side)) = st.fault {
                    for g in [Role::Ctrl, Role::Kv(1), Role::Kv(2)] {
                        assert_eq!(side.iter().filter(|&&i| nodes[i] == g).count(), 1, "seed {seed}: {side:?}");
                    }
                }
            }
        }
    }
}
