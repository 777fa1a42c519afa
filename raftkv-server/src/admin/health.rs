//! `/health`, `/livez` and `/readyz`: what a load balancer or an
//! orchestrator asks of a node.

use std::time::Duration;

use raftkv_core::raft::core::Role;
use serde::Serialize;

use crate::node::NodeProbe;

/// One node's verdict.
#[derive(Debug, Serialize)]
pub(crate) struct Check {
    group: u64,
    node: u64,
    ok: bool,
    reason: String,
}

/// How long a leader may take to confirm its quorum.
const QUORUM_LIMIT: Duration = Duration::from_secs(1);

/// Healthy: the member runs, its log writes pass, and it knows a leader of
/// its current term; a leader also confirms, by a ReadIndex round, that a
/// quorum still follows it.
pub(crate) async fn health(probe: &NodeProbe) -> Check {
    let verdict = async {
        if !probe.is_running() {
            return Err("the Raft member stopped".to_owned());
        }
        if let Some(fault) = probe.fault() {
            return Err(fault);
        }
        let status = probe.raft_status().await.ok_or("the Raft member does not answer")?;
        if let Some(error) = &status.storage_failing {
            return Err(format!("log writes fail and are retried (writes refused, reads go on): {error}"));
        }
        match (status.role, status.leader) {
            (Role::Leader, _) if probe.confirm_leadership(QUORUM_LIMIT).await => Ok(()),
            (Role::Leader, _) => Err(format!("leader of term {} without a quorum", status.term)),
            (_, Some(_)) => Ok(()),
            (_, None) => Err(format!("no leader in term {}", status.term)),
        }
    };
    check(probe, verdict.await)
}

/// Live: the process and its Raft member run (restart it otherwise).
pub(crate) fn live(probe: &NodeProbe) -> Check {
    check(probe, if probe.is_running() { Ok(()) } else { Err("the Raft member stopped".to_owned()) })
}

/// Ready: it takes requests — not draining, and it knows a leader.
pub(crate) async fn ready(probe: &NodeProbe) -> Check {
    let verdict = async {
        if probe.is_draining() {
            return Err("shutting down".to_owned());
        }
        let status = probe.raft_status().await.ok_or("the Raft member does not answer")?;
        match status.leader {
            Some(_) => Ok(()),
            None => Err(format!("no leader in term {}", status.term)),
        }
    };
    check(probe, verdict.await)
}

fn check(probe: &NodeProbe, verdict: Result<(), String>) -> Check {
    let (ok, reason) = match verdict {
        Ok(()) => (true, "ok".to_owned()),
        Err(reason) => (false, reason),
    };
    Check { group: probe.group.0, node: probe.me.0, ok, reason }
}

/// Whether every check passed.
pub(crate) fn all_ok(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.ok)
}
