//! [`Peer`]: whom a call was addressed to, for errors and traces.

use std::fmt;

use crate::types::NodeId;

/// The target of a call: a Raft member, a network address, or both.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    /// The member, when the call was addressed to one.
    pub node: Option<NodeId>,
    /// The network address, when the transport has one.
    pub addr: Option<String>,
}

impl Peer {
    /// A member known by id only (in-process and simulated transports).
    #[must_use]
    pub fn node(node: NodeId) -> Self {
        Self { node: Some(node), addr: None }
    }

    /// A server known by address only (service calls).
    #[must_use]
    pub fn addr(addr: impl Into<String>) -> Self {
        Self { node: None, addr: Some(addr.into()) }
    }

    /// A member and the address it is reached at.
    #[must_use]
    pub fn node_at(node: NodeId, addr: impl Into<String>) -> Self {
        Self { node: Some(node), addr: Some(addr.into()) }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.node, &self.addr) {
            (Some(n), Some(a)) => write!(f, "node {n} at {a}"),
            (Some(n), None) => write!(f, "node {n}"),
            (None, Some(a)) => f.write_str(a),
            (None, None) => f.write_str("unknown peer"),
        }
    }
}

impl From<NodeId> for Peer {
    fn from(node: NodeId) -> Self {
        Self::node(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_what_is_known() {
        assert_eq!(Peer::node(NodeId(2)).to_string(), "node 2");
        assert_eq!(Peer::addr("10.0.0.1:7000").to_string(), "10.0.0.1:7000");
        assert_eq!(Peer::node_at(NodeId(3), "h:1").to_string(), "node 3 at h:1");
    }
}
