//! What an outsider presents when it forges peer traffic: no cluster token,
//! or a wrong one; how a server's refusal for lack of credentials looks to
//! the caller; and the check that every member refused a forgery.

use std::fmt::Debug;
use std::time::Duration;

use anyhow::Result;
use raftkv_core::transport::TransportError;
use raftkv_wire::net::{ClusterToken, NetConfig};

use super::findings::Findings;

/// A token of the right shape that is not the cluster's.
pub const WRONG_TOKEN: &str = "not-the-cluster-token-0123456789";

/// The credentials an attacker can present.
pub const ATTEMPTS: [(&str, Option<&str>); 2] = [("no token", None), ("a wrong token", Some(WRONG_TOKEN))];

/// A network config presenting `token`.
pub fn net_config(token: Option<&str>) -> Result<NetConfig> {
    let cluster_token = token.map(ClusterToken::new).transpose()?;
    Ok(NetConfig { cluster_token, request_timeout: Duration::from_secs(2), ..NetConfig::default() })
}

/// Whether `result` is the server's refusal for lack of credentials.
pub fn refused<T>(result: &Result<T, TransportError>) -> bool {
    matches!(result, Err(TransportError::Rejected { reason, .. }) if reason.contains("refused"))
}

/// One answer in words.
fn outcome<T: Debug>(result: &Result<T, TransportError>) -> String {
    match result {
        Err(TransportError::Rejected { reason, .. }) => format!("rejected: {reason}"),
        Err(e) => format!("failed: {e}"),
        Ok(answer) => format!("DELIVERED, answered {answer:?}"),
    }
}

/// Print the answers to forgery `what` (by the member that gave it; each
/// distinct answer once) and check that every one is a refusal.
pub fn check_refused<T: Debug>(f: &mut Findings, what: &str, answers: &[(String, Result<T, TransportError>)]) {
    let mut seen: Vec<(String, Vec<&str>)> = Vec::new();
    for (member, result) in answers {
        let text = outcome(result);
        match seen.iter_mut().find(|(t, _)| *t == text) {
            Some((_, members)) => members.push(member),
            None => seen.push((text, vec![member])),
        }
    }
    for (text, members) in &seen {
        f.note(format!("{what} → {}: {text}", members.join(", ")));
    }
    let names: Vec<&str> = answers.iter().map(|(m, _)| m.as_str()).collect();
    let refusals = answers.iter().filter(|(_, r)| refused(r)).count();
    f.check(
        refusals == answers.len() && !answers.is_empty(),
        format!("{what} is refused by {} ({refusals} of {})", names.join(", "), answers.len()),
    );
}
