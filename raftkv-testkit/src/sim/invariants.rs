//! Raft safety invariants, checked after every step of every member.

use std::collections::BTreeMap;
use std::sync::Mutex;

use raftkv_core::raft::core::Role;
use raftkv_core::raft::driver::{RaftObserver, StepReport};
use raftkv_core::raft::{Entry, EntryPayload};
use raftkv_core::types::{GroupId, LogIndex, NodeId, Term};

#[derive(Default)]
struct State {
    /// Leader of each term.
    leaders: BTreeMap<(GroupId, Term), NodeId>,
    /// Every committed entry seen: index → (term, payload hash).
    committed: BTreeMap<(GroupId, LogIndex), (Term, u64)>,
    /// Every durable entry seen: (index, term) → payload hash.
    entries: BTreeMap<(GroupId, LogIndex, Term), u64>,
    violations: Vec<String>,
    steps: u64,
}

/// Records violations of Election Safety, Log Matching, Leader Completeness
/// and State Machine Safety as members report their steps.
#[derive(Default)]
pub struct InvariantChecker {
    state: Mutex<State>,
}

impl std::fmt::Debug for InvariantChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvariantChecker").finish_non_exhaustive()
    }
}

fn payload_hash(e: &Entry) -> u64 {
    match &e.payload {
        EntryPayload::Blank => 0,
        EntryPayload::Command(b) => {
            b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)) | 1
        }
    }
}

impl InvariantChecker {
    /// Violations found so far.
    #[must_use]
    pub fn violations(&self) -> Vec<String> {
        self.state.lock().map(|s| s.violations.clone()).unwrap_or_default()
    }

    /// Steps observed so far.
    #[must_use]
    pub fn steps(&self) -> u64 {
        self.state.lock().map(|s| s.steps).unwrap_or(0)
    }

    /// Highest committed index seen in `group`.
    #[must_use]
    pub fn max_committed(&self, group: GroupId) -> LogIndex {
        self.state
            .lock()
            .ok()
            .and_then(|s| {
                s.committed.range((group, LogIndex(0))..=(group, LogIndex(u64::MAX))).next_back().map(|(k, _)| k.1)
            })
            .unwrap_or(LogIndex(0))
    }
}

impl RaftObserver for InvariantChecker {
    fn on_step(&self, r: &StepReport<'_>) {
        let Ok(mut st) = self.state.lock() else { return };
        st.steps += 1;
        let g = r.group;
        if r.role == Role::Leader {
            let first_seen = match st.leaders.get(&(g, r.term)) {
                Some(&other) if other != r.node => {
                    let v = format!("election safety: nodes {other} and {} both lead term {}", r.node, r.term);
                    st.violations.push(v);
                    false
                }
                Some(_) => false,
                None => {
                    st.leaders.insert((g, r.term), r.node);
                    true
                }
            };
            if first_seen {
                // Leader completeness: the new leader holds every entry committed so far.
                let latest = st.committed.range((g, LogIndex(0))..=(g, LogIndex(u64::MAX))).next_back();
                if let Some((&(_, index), &(term, _))) = latest {
                    let held = r.log.term(index);
                    let compacted = index < r.log.snapshot().last_index;
                    if !compacted && held != Some(term) {
                        let v = format!(
                            "leader completeness: node {} leads term {} without committed entry {index} (term {term}); it holds {held:?}",
                            r.node, r.term
                        );
                        st.violations.push(v);
                    }
                }
            }
        }
        for e in r.persisted {
            let h = payload_hash(e);
            if let Some(&old) = st.entries.get(&(g, e.index, e.term)) {
                if old != h {
                    let v = format!("log matching: two different entries at index {} term {}", e.index, e.term);
                    st.violations.push(v);
                }
            } else {
                st.entries.insert((g, e.index, e.term), h);
            }
        }
        for e in r.committed {
            let h = payload_hash(e);
            match st.committed.get(&(g, e.index)) {
                Some(&(term, old)) if term != e.term || old != h => {
                    let v = format!(
                        "state machine safety: node {} applies index {} term {} but term {term} was committed there",
                        r.node, e.index, e.term
                    );
                    st.violations.push(v);
                }
                Some(_) => {}
                None => {
                    st.committed.insert((g, e.index), (e.term, h));
                }
            }
        }
        if r.commit > r.last.0 {
            let v = format!("node {} commits {} beyond its last index {}", r.node, r.commit, r.last.0);
            st.violations.push(v);
        }
    }
}
