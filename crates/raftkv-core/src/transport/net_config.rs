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
            max_message_bytes: 64 << 20,
            backoff: Backoff::default(),
            socket_buffer_bytes: None,
            tls: None,
            cluster_token: None,
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
