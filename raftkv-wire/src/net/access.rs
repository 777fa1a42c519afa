//! Who may send what to a network server: the credentials a request
//! presents ([`Credentials`]), who the server takes its sender for
//! ([`Caller`]), and the rules ([`AccessPolicy`]) that [`Routes`](super::Routes)
//! applies before a request reaches a member or the service.
//!
//! Peer traffic (Raft RPCs and shard migration) and client traffic (key-value,
//! controller and status calls) share a listener but not their rights:
//! - **Raft RPCs** are delivered only from a caller proven to be a member:
//!   with TLS, a certificate of the cluster CA that names the sending member
//!   (`route.from` of `route.group`) in a URI subject alternative name
//!   ([`member_uri`]); with a cluster token, the token. The sender named in a
//!   message is never trusted on its own.
//! - **Migration RPCs** need the same proof that the caller is a member of
//!   the cluster; a delete must come from a member of the group it names.
//! - **Client RPCs** are open to anyone who can connect (with mTLS required,
//!   the TLS layer has already refused clients without a certificate).
//!
//! With neither TLS nor a token ([`AccessPolicy::open`]), every caller counts
//! as a member: anyone who can reach the port can act as one. That is for
//! trusted networks only, and the server says so when it starts.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use raftkv_core::{GroupId, NodeId};

/// Header (gRPC metadata key) carrying the cluster token on every request.
pub const TOKEN_HEADER: &str = "x-raftkv-token";

/// Prefix of the URI subject alternative name that names a member in its
/// certificate: `urn:raftkv:member:<group>:<node>`.
pub const MEMBER_URI_PREFIX: &str = "urn:raftkv:member:";

/// The URI a member's certificate carries to name member `node` of `group`.
#[must_use]
pub fn member_uri(group: GroupId, node: NodeId) -> String {
    format!("{MEMBER_URI_PREFIX}{}:{}", group.0, node.0)
}

/// The member a URI names, if it is a member URI ([`member_uri`]).
#[must_use]
pub fn parse_member_uri(uri: &str) -> Option<(GroupId, NodeId)> {
    let rest = uri.strip_prefix(MEMBER_URI_PREFIX)?;
    let (group, node) = rest.split_once(':')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(group) || !digits(node) {
        return None;
    }
    let node = node.parse().ok().filter(|&n| n > 0)?;
    Some((GroupId(group.parse().ok()?), NodeId(node)))
}

/// What a verified certificate says of its holder: the members it names
/// (none for a client certificate).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertIdentity {
    /// The members named by the certificate's member URIs.
    pub members: BTreeSet<(GroupId, NodeId)>,
    /// The certificate's subject, for logs.
    pub subject: String,
}

impl CertIdentity {
    /// Whether the certificate names member `node` of `group`.
    #[must_use]
    pub fn names(&self, group: GroupId, node: NodeId) -> bool {
        self.members.contains(&(group, node))
    }

    /// Whether the certificate names any member of `group`.
    #[must_use]
    pub fn names_group(&self, group: GroupId) -> bool {
        self.members.range((group, NodeId(0))..=(group, NodeId(u64::MAX))).next().is_some()
    }
}

/// The cluster's shared secret: peers present it with every request when
/// the cluster runs without TLS (or besides it). Compared in constant time;
/// never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterToken(Arc<[u8]>);

/// Fewest bytes a cluster token may have.
pub const MIN_TOKEN_BYTES: usize = 16;

/// Why a cluster token cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Too short to resist guessing.
    #[error("the cluster token has {len} bytes; at least {MIN_TOKEN_BYTES} are needed")]
    TooShort {
        /// Its length.
        len: usize,
    },
    /// Not printable ASCII (it travels in a header).
    #[error("the cluster token must be printable ASCII without spaces (it travels in a request header)")]
    NotPrintable,
}

impl ClusterToken {
    /// A token from its text (surrounding whitespace, such as a file's final
    /// newline, is dropped).
    pub fn new(text: &str) -> Result<Self, TokenError> {
        let text = text.trim();
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::NotPrintable);
        }
        if text.len() < MIN_TOKEN_BYTES {
            return Err(TokenError::TooShort { len: text.len() });
        }
        Ok(Self(Arc::from(text.as_bytes())))
    }

    /// The token as sent on the wire.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether `presented` is this token, in time that does not depend on
    /// where they differ.
    #[must_use]
    pub fn matches(&self, presented: &[u8]) -> bool {
        let mine = &self.0;
        let mut diff = u8::from(mine.len() != presented.len());
        for (i, &b) in mine.iter().enumerate() {
            diff |= b ^ presented.get(i).copied().unwrap_or(!b);
        }
        diff == 0
    }
}

impl std::fmt::Debug for ClusterToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterToken({} bytes)", self.0.len())
    }
}

/// What one request presented: the connection's verified certificate, the
/// token sent with the request, and where it came from.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// The certificate the TLS handshake verified, if the client sent one.
    pub cert: Option<Arc<CertIdentity>>,
    /// The cluster token sent with the request, if any.
    pub token: Option<Vec<u8>>,
    /// The remote address, for logs.
    pub remote: Option<SocketAddr>,
}

impl Credentials {
    /// Credentials of an in-process caller that proves nothing (tests, local use).
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }
}

/// Who a server takes a request's sender for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// Proved nothing.
    Anonymous,
    /// Presented a certificate of the cluster CA that names no member.
    Client(Arc<CertIdentity>),
    /// Presented the cluster token: some member of the cluster.
    Peer,
    /// Presented a certificate naming these members.
    Member(Arc<CertIdentity>),
    /// The server checks nothing ([`AccessPolicy::open`]).
    Unchecked,
}

impl Caller {
    /// Whether the caller proved to be a member of the cluster.
    #[must_use]
    pub fn is_peer(&self) -> bool {
        matches!(self, Self::Peer | Self::Member(_) | Self::Unchecked)
    }

    /// Whether the caller may send Raft RPCs as member `from` of `group`.
    #[must_use]
    pub fn may_act_as(&self, group: GroupId, from: NodeId) -> bool {
        match self {
            Self::Peer | Self::Unchecked => true,
            Self::Member(id) => id.names(group, from),
            Self::Anonymous | Self::Client(_) => false,
        }
    }

    /// Whether the caller may speak for group `group` (a shard delete).
    #[must_use]
    pub fn may_speak_for(&self, group: GroupId) -> bool {
        match self {
            Self::Peer | Self::Unchecked => true,
            Self::Member(id) => id.names_group(group),
            Self::Anonymous | Self::Client(_) => false,
        }
    }

    /// A short description, for refusals and logs.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Anonymous => "a caller with no credentials".into(),
            Self::Client(id) => format!("a client certificate ({})", id.subject),
            Self::Peer => "a holder of the cluster token".into(),
            Self::Member(id) => {
                let names: Vec<String> = id.members.iter().map(|(g, n)| format!("member {n} of group {g}")).collect();
                format!("a certificate of {}", names.join(", "))
            }
            Self::Unchecked => "an unchecked caller".into(),
        }
    }
}

/// A server's rules for telling peers from clients.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    /// The cluster token; a request presenting it is a peer's.
    pub token: Option<ClusterToken>,
    /// Whether connections are TLS: a certificate that names a member proves
    /// that member.
    pub member_certs: bool,
}

impl AccessPolicy {
    /// No checks at all: every caller may act as any member. Only for
    /// networks where every host that can reach the port is trusted.
    #[must_use]
    pub fn open() -> Self {
        Self::default()
    }

    /// Whether every caller counts as a member.
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.token.is_none() && !self.member_certs
    }

    /// Who `creds` make their sender.
    #[must_use]
    pub fn caller(&self, creds: &Credentials) -> Caller {
        if self.is_open() {
            return Caller::Unchecked;
        }
        if let (Some(token), Some(presented)) = (&self.token, &creds.token) {
            if token.matches(presented) {
                return Caller::Peer;
            }
        }
        match &creds.cert {
            Some(cert) if self.member_certs && !cert.members.is_empty() => Caller::Member(cert.clone()),
            Some(cert) => Caller::Client(cert.clone()),
            None => Caller::Anonymous,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(members: &[(u64, u64)]) -> Arc<CertIdentity> {
        Arc::new(CertIdentity {
            members: members.iter().map(|&(g, n)| (GroupId(g), NodeId(n))).collect(),
            subject: "CN=test".into(),
        })
    }

    fn creds(cert: Option<Arc<CertIdentity>>, token: Option<&str>) -> Credentials {
        Credentials { cert, token: token.map(|t| t.as_bytes().to_vec()), remote: None }
    }

    #[test]
    fn member_uris_round_trip_and_reject_lookalikes() {
        assert_eq!(member_uri(GroupId(2), NodeId(3)), "urn:raftkv:member:2:3");
        assert_eq!(parse_member_uri("urn:raftkv:member:2:3"), Some((GroupId(2), NodeId(3))));
        assert_eq!(parse_member_uri("urn:raftkv:member:0:1"), Some((GroupId(0), NodeId(1))));
        for bad in [
            "urn:raftkv:member:2",
            "urn:raftkv:member:2:0",
            "urn:raftkv:member:2:3:4",
            "urn:raftkv:member:+2:3",
            "urn:raftkv:member:2: 3",
            "urn:raftkv:member::3",
            "urn:raftkv:client:2:3",
            "https://example.com",
            "urn:raftkv:member:99999999999999999999:1",
        ] {
            assert_eq!(parse_member_uri(bad), None, "{bad}");
        }
    }

    #[test]
    fn tokens_are_checked_whole_and_never_printed() {
        let token = ClusterToken::new("0123456789abcdef-secret\n").unwrap();
        assert!(token.matches(b"0123456789abcdef-secret"));
        assert!(!token.matches(b"0123456789abcdef-secreT"));
        assert!(!token.matches(b"0123456789abcdef-secret-and-more"));
        assert!(!token.matches(b"0123456789abcdef"));
        assert!(!token.matches(b""));
        assert!(!format!("{token:?}").contains("secret"));
        assert_eq!(ClusterToken::new("short"), Err(TokenError::TooShort { len: 5 }));
        assert_eq!(ClusterToken::new("has a space in the middle"), Err(TokenError::NotPrintable));
    }

    #[test]
    fn an_open_policy_lets_everyone_act_as_any_member() {
        let caller = AccessPolicy::open().caller(&Credentials::none());
        assert_eq!(caller, Caller::Unchecked);
        assert!(caller.may_act_as(GroupId(1), NodeId(2)) && caller.may_speak_for(GroupId(9)));
    }

    #[test]
    fn with_a_token_only_its_holders_are_peers() {
        let policy =
            AccessPolicy { token: Some(ClusterToken::new("the-cluster-token-1").unwrap()), member_certs: false };
        assert_eq!(policy.caller(&creds(None, Some("the-cluster-token-1"))), Caller::Peer);
        for wrong in [None, Some("the-cluster-token-2"), Some("")] {
            let caller = policy.caller(&creds(None, wrong));
            assert_eq!(caller, Caller::Anonymous, "{wrong:?}");
            assert!(!caller.is_peer() && !caller.may_act_as(GroupId(1), NodeId(1)));
        }
        // A certificate proves nothing about membership without TLS member checks.
        let caller = policy.caller(&creds(Some(cert(&[(1, 1)])), None));
        assert!(!caller.may_act_as(GroupId(1), NodeId(1)));
    }

    #[test]
    fn with_tls_a_certificate_proves_only_the_members_it_names() {
        let policy = AccessPolicy { token: None, member_certs: true };
        let member = policy.caller(&creds(Some(cert(&[(1, 2), (0, 1)])), None));
        assert!(member.may_act_as(GroupId(1), NodeId(2)));
        assert!(member.may_act_as(GroupId(0), NodeId(1)));
        assert!(!member.may_act_as(GroupId(1), NodeId(1)), "another member of the same group");
        assert!(!member.may_act_as(GroupId(2), NodeId(2)), "the same id in another group");
        assert!(member.may_speak_for(GroupId(1)) && !member.may_speak_for(GroupId(2)));
        let client = policy.caller(&creds(Some(cert(&[])), None));
        assert!(matches!(client, Caller::Client(_)));
        assert!(!client.is_peer() && !client.may_act_as(GroupId(1), NodeId(1)));
        assert_eq!(policy.caller(&Credentials::none()), Caller::Anonymous);
    }
}
