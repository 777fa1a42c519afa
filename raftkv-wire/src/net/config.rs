//! [`NetConfig`]: the settings every network transport honours — deadlines,
//! message limits, reconnect backoff and TLS.

use std::time::Duration;

use super::{AccessPolicy, Backoff, ClusterToken};

/// Settings of a network transport (client and server halves).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// Longest wait for a connection (TCP, plus the TLS handshake) to a peer.
    pub connect_timeout: Duration,
    /// Deadline of one call, from sending the request to receiving the reply.
    pub request_timeout: Duration,
    /// A snapshot stream fails when no chunk moves for this long.
    pub snapshot_idle_timeout: Duration,
    /// Largest encoded message either side sends or accepts; a snapshot is
    /// streamed in chunks, each of which must fit.
    pub max_message_bytes: usize,
    /// Pause between attempts to reconnect to a peer that failed.
    pub backoff: Backoff,
    /// Kernel send and receive buffer of every connection (`SO_SNDBUF`,
    /// `SO_RCVBUF`); `None` leaves them to the kernel's autotuning. Caps the
    /// bytes a connection can hold in the kernel, per direction.
    pub socket_buffer_bytes: Option<u32>,
    /// TLS (and mTLS); `None` is plaintext.
    pub tls: Option<TlsConfig>,
    /// The cluster's shared secret: sent with every request, and required
    /// of peer traffic by servers ([`AccessPolicy`]).
    pub cluster_token: Option<ClusterToken>,
    /// What a server holds for its callers at most.
    pub server: ServerLimits,
}

/// Bounds on what callers can make a server hold: connections, time, and
/// bytes of requests still arriving.
///
/// Peers (callers proven members, see [`AccessPolicy`]) keep priority:
/// part of the connections and a budget of their own are theirs, so a flood
/// of clients or strangers cannot keep a group from talking to itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// Most connections open at once. Past it, the oldest connection that
    /// has not yet sent a request makes room, or the new one is closed.
    pub max_connections: usize,
    /// Of `max_connections`, how many only peers may use.
    pub reserved_for_peers: usize,
    /// Most connections that have not yet sent a request; past it the
    /// oldest of them is closed.
    pub max_silent_connections: usize,
    /// A connection must finish its TLS handshake and send its first request within this.
    pub first_request_timeout: Duration,
    /// A connection with no request in progress for this long is closed.
    pub idle_timeout: Duration,
    /// Largest client request (key-value, controller, status and migration
    /// requests); Raft messages may be up to `max_message_bytes`.
    pub max_client_message_bytes: usize,
    /// Most bytes of requests still arriving that clients' connections may
    /// hold at once, all together; peers have a budget of the same size of
    /// their own. A request waits (its sender is slowed by flow control)
    /// while the budget is spent, and fails if it does not arrive whole
    /// within its deadline.
    pub max_buffered_bytes: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            reserved_for_peers: 256,
            max_silent_connections: 1024,
            first_request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            max_client_message_bytes: 4 << 20,
            max_buffered_bytes: 256 << 20,
        }
    }
}

impl NetConfig {
    /// The rules a server with these settings applies: with TLS, a
    /// certificate naming a member proves it; with a token, the token proves
    /// a peer; with neither, nothing is checked.
    #[must_use]
    pub fn access_policy(&self) -> AccessPolicy {
        AccessPolicy { token: self.cluster_token.clone(), member_certs: self.tls.is_some() }
    }
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(3),
            snapshot_idle_timeout: Duration::from_secs(10),
            max_message_bytes: raftkv_core::transport::DEFAULT_MAX_MESSAGE_BYTES,
            backoff: Backoff::default(),
            socket_buffer_bytes: None,
            tls: None,
            cluster_token: None,
            server: ServerLimits::default(),
        }
    }
}

/// A certificate chain and its private key, PEM-encoded.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// Certificate chain (leaf first).
    pub cert_pem: Vec<u8>,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("cert_pem", &format!("{} bytes", self.cert_pem.len())).finish_non_exhaustive()
    }
}

/// TLS settings, as PEM data (loading files is the caller's business).
///
/// A server presents `identity`; a client trusts servers whose certificate
/// chains to `ca_pem` and matches the host it dialled. With
/// `require_client_cert`, a server refuses clients that do not present a
/// certificate signed by `ca_pem` (mTLS), and a client presents `identity`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// The cluster CA certificate(s).
    pub ca_pem: Vec<u8>,
    /// This node's certificate and key (required to serve, and for mTLS clients).
    pub identity: Option<Identity>,
    /// Require and verify client certificates (mTLS).
    pub require_client_cert: bool,
    /// Name to verify servers against instead of the dialled host.
    pub server_name: Option<String>,
}
