//! Trace context across RPCs.
//!
//! The core only emits `tracing` spans; whoever exports them (the server,
//! with OpenTelemetry) registers a [`Propagator`] that turns the current
//! span into a W3C `traceparent` and back. Transports carry that string with
//! every Raft message (in its route) and every service call (gRPC metadata
//! or an HTTP header), and open the receiving side's span with
//! [`raft_rpc_span`] or [`service_span`], so the receiver's spans become
//! children of the sender's. Without a propagator nothing is carried and
//! nothing costs more than one atomic load.

use std::sync::OnceLock;

use tracing::Span;

use crate::types::{GroupId, NodeId};

/// The header and metadata key the trace context travels under.
pub const TRACEPARENT: &str = "traceparent";

/// Converts between spans and W3C `traceparent` strings.
pub trait Propagator: Send + Sync + 'static {
    /// The `traceparent` of `span`, if it is part of an exported trace.
    fn inject(&self, span: &Span) -> Option<String>;
    /// Make the remote span `traceparent` names the parent of `span`.
    fn extract(&self, span: &Span, traceparent: &str);
}

static PROPAGATOR: OnceLock<Box<dyn Propagator>> = OnceLock::new();

/// Register the process's propagator; `false` if one was registered already.
pub fn set_propagator(propagator: impl Propagator) -> bool {
    PROPAGATOR.set(Box::new(propagator)).is_ok()
}

/// The `traceparent` of the current span, to send with an outgoing RPC.
#[must_use]
pub fn current() -> Option<String> {
    PROPAGATOR.get()?.inject(&Span::current())
}

/// Parent `span` on the remote span `traceparent` names (if any, and if a
/// propagator is registered); returns `span`.
pub fn continue_from(span: Span, traceparent: Option<&str>) -> Span {
    if let (Some(p), Some(tp)) = (PROPAGATOR.get(), traceparent.filter(|t| !t.is_empty())) {
        p.extract(&span, tp);
    }
    span
}

/// The receiving side's span of a Raft message of kind `rpc` (`append`,
/// `heartbeat`, `vote`, `install_snapshot`, `timeout_now`) from member
/// `from` to member `to` of `group`.
#[must_use]
pub fn raft_rpc_span(rpc: &'static str, group: GroupId, from: NodeId, to: NodeId, traceparent: Option<&str>) -> Span {
    let span = tracing::debug_span!("raft_rpc", rpc, group = %group, from = %from, node = %to);
    continue_from(span, traceparent)
}

/// The receiving side's span of a service call (`kv.put`, `migration.pull_shards`, …).
#[must_use]
pub fn service_span(method: &'static str, traceparent: Option<&str>) -> Span {
    let span = tracing::info_span!("service_rpc", method);
    continue_from(span, traceparent)
}
