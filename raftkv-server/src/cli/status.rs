//! `raftkv status`: every node's view of itself — the controllers, and the
//! servers of every group in the latest configuration.

use std::sync::Arc;

use raftkv_core::api::{ApiError, NodeStatus, ServiceClient, ServiceRequest, ServiceResponse};
use raftkv_core::client::CtrlClerk;

/// Ask each controller and each server of every group for its status.
pub async fn collect(
    net: Arc<dyn ServiceClient>,
    ctrl_peers: &[String],
    ctrl: &mut CtrlClerk,
) -> Vec<(String, Result<NodeStatus, String>)> {
    let mut nodes: Vec<String> = ctrl_peers.to_vec();
    if let Ok(config) = ctrl.query(None).await {
        nodes.extend(config.groups.values().flatten().cloned());
    }
    let mut out = Vec::with_capacity(nodes.len());
    for addr in nodes {
        let answer = match net.call_service(&addr, ServiceRequest::Status).await {
            Ok(ServiceResponse::Status(Ok(s))) => Ok(s),
            Ok(ServiceResponse::Status(Err(e))) => Err(refusal(&e)),
            Ok(other) => Err(format!("unexpected answer {other:?}")),
            Err(e) => Err(e.to_string()),
        };
        out.push((addr, answer));
    }
    out
}

fn refusal(e: &ApiError) -> String {
    e.to_string()
}
