//! Errors of the [`Transport`](super::Transport) and
//! [`ServiceClient`](crate::api::ServiceClient) traits.

use std::time::Duration;

use super::Peer;

/// Why a call did not produce a response.
///
/// An error says nothing about whether the peer processed the request: it may
/// have (a reply lost on the way back looks the same as a request lost on the
/// way out).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The peer could not be reached (connection refused or reset, not
    /// resolvable, down, partitioned, or the transport is backing off before
    /// reconnecting).
    #[error("{peer} is unreachable: {reason}")]
    Unreachable {
        /// The peer.
        peer: Peer,
        /// What failed.
        reason: String,
    },
    /// No response arrived within the deadline.
    #[error("call to {peer} timed out after {after:?}")]
    Timeout {
        /// The peer.
        peer: Peer,
        /// The deadline that passed.
        after: Duration,
    },
    /// The peer answered with an error: the request was malformed, too large,
    /// addressed to a member it does not host, or the member has stopped.
    #[error("{peer} rejected the call: {reason}")]
    Rejected {
        /// The peer.
        peer: Peer,
        /// Why, in the peer's words.
        reason: String,
    },
    /// The message is larger than the configured limit; it was not sent.
    #[error("{what} of {size} bytes exceeds the configured limit of {limit} bytes (max_message_bytes)")]
    TooLarge {
        /// Which message.
        what: &'static str,
        /// Size of the message.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The peer's answer could not be decoded or does not answer the request.
    #[error("malformed reply from {peer}: {reason}")]
    Malformed {
        /// The peer.
        peer: Peer,
        /// What was wrong with it.
        reason: String,
    },
}

impl TransportError {
    /// [`TransportError::Unreachable`] for `peer`.
    #[must_use]
    pub fn unreachable(peer: impl Into<Peer>, reason: impl Into<String>) -> Self {
        Self::Unreachable { peer: peer.into(), reason: reason.into() }
    }

    /// [`TransportError::Rejected`] for `peer`.
    #[must_use]
    pub fn rejected(peer: impl Into<Peer>, reason: impl Into<String>) -> Self {
        Self::Rejected { peer: peer.into(), reason: reason.into() }
    }

    /// [`TransportError::Malformed`] for `peer`.
    #[must_use]
    pub fn malformed(peer: impl Into<Peer>, reason: impl Into<String>) -> Self {
        Self::Malformed { peer: peer.into(), reason: reason.into() }
    }

    /// The peer the failed call was addressed to, if the error names one.
    #[must_use]
    pub fn peer(&self) -> Option<&Peer> {
        match self {
            Self::Unreachable { peer, .. }
            | Self::Timeout { peer, .. }
            | Self::Rejected { peer, .. }
            | Self::Malformed { peer, .. } => Some(peer),
            Self::TooLarge { .. } => None,
        }
    }
}
