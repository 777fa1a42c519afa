//! [`Dialer`]: connecting to a peer — resolve `host:port`, TCP, TLS — within
//! the connect deadline, with errors that name the address.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::net::{NetConfig, TlsConfig};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use tokio::net::{TcpSocket, TcpStream};

use super::tls::{client_config, server_name, TlsError};
use super::NetStream;

/// Why a connection could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DialError {
    /// The address is not `host:port`.
    #[error("`{addr}` is not a host:port address")]
    BadAddress {
        /// The address.
        addr: String,
    },
    /// The host name does not resolve.
    #[error("cannot resolve `{addr}`: {reason}")]
    Resolve {
        /// The address.
        addr: String,
        /// The resolver's answer.
        reason: String,
    },
    /// No TCP connection (refused, unreachable).
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The TLS handshake failed (untrusted certificate, refused client certificate, …).
    #[error("tls handshake with {addr} failed: {reason}")]
    Tls {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// Connecting took longer than the connect deadline.
    #[error("connecting to {addr} timed out after {after:?}")]
    Timeout {
        /// The address.
        addr: String,
        /// The deadline.
        after: Duration,
    },
}

#[derive(Clone)]
struct ClientTls {
    config: Arc<ClientConfig>,
    settings: TlsConfig,
}

/// Dials peers in plaintext or TLS.
#[derive(Clone)]
pub struct Dialer {
    tls: Option<ClientTls>,
    connect_timeout: Duration,
    socket_buffer: Option<u32>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("tls", &self.tls.is_some())
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// A seed for reconnect jitter that differs between processes and runs
/// (clock nanoseconds): real peers must not back off in lockstep.
#[must_use]
pub fn jitter_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos() & u128::from(u64::MAX)).unwrap_or(0))
}

/// The host part of `host:port` (brackets of an IPv6 literal removed).
#[must_use]
pub fn host_of(addr: &str) -> Option<&str> {
    let (host, port) = addr.rsplit_once(':')?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return None;
    }
    Some(host.trim_start_matches('[').trim_end_matches(']'))
}

impl Dialer {
    /// A dialer for `cfg`'s TLS settings and connect deadline, asking for
    /// the ALPN protocols `alpn` over TLS.
    pub fn new(cfg: &NetConfig, alpn: &[&[u8]]) -> Result<Self, TlsError> {
        let tls = match &cfg.tls {
            Some(settings) => Some(ClientTls { config: client_config(settings, alpn)?, settings: settings.clone() }),
            None => None,
        };
        Ok(Self { tls, connect_timeout: cfg.connect_timeout, socket_buffer: cfg.socket_buffer_bytes })
    }

    /// Whether connections use TLS.
    #[must_use]
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Connect to `addr` (`host:port`).
    pub async fn dial(&self, addr: &str) -> Result<NetStream, DialError> {
        let after = self.connect_timeout;
        tokio::time::timeout(after, self.dial_now(addr))
            .await
            .unwrap_or_else(|_| Err(DialError::Timeout { addr: addr.to_string(), after }))
    }

    async fn dial_now(&self, addr: &str) -> Result<NetStream, DialError> {
        let host = host_of(addr).ok_or_else(|| DialError::BadAddress { addr: addr.to_string() })?;
        let mut candidates = tokio::net::lookup_host(addr)
            .await
            .map_err(|e| DialError::Resolve { addr: addr.to_string(), reason: e.to_string() })?
            .peekable();
        if candidates.peek().is_none() {
            return Err(DialError::Resolve { addr: addr.to_string(), reason: "no address found".into() });
        }
        let mut last = String::new();
        let mut tcp = None;
        for sa in candidates {
            match connect_tcp(sa, self.socket_buffer).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = e.to_string(),
            }
        }
        let tcp = tcp.ok_or_else(|| DialError::Connect { addr: addr.to_string(), reason: last })?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.tls else { return Ok(NetStream::Plain(tcp)) };
        let name = server_name(&tls.settings, host)
            .map_err(|e| DialError::Tls { addr: addr.to_string(), reason: e.to_string() })?;
        let stream = tokio_rustls::TlsConnector::from(tls.config.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| DialError::Tls { addr: addr.to_string(), reason: e.to_string() })?;
        Ok(NetStream::Client(Box::new(stream)))
    }
}

/// A TCP connection to `addr`, with kernel buffers of `buffer` bytes if given.
async fn connect_tcp(addr: std::net::SocketAddr, buffer: Option<u32>) -> std::io::Result<TcpStream> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(bytes) = buffer {
        socket.set_send_buffer_size(bytes)?;
        socket.set_recv_buffer_size(bytes)?;
    }
    socket.connect(addr).await
}

/// A [`Dialer`] as a `tower` service from URIs (`scheme://host:port/…`) to
/// connections, for HTTP clients (hyper, tonic).
#[derive(Clone, Debug)]
pub struct DialService(pub Dialer);

impl tower_service::Service<http::Uri> for DialService {
    type Response = TokioIo<NetStream>;
    type Error = DialError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, DialError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), DialError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let dialer = self.0.clone();
        Box::pin(async move {
            let addr = uri.authority().map(ToString::to_string).unwrap_or_default();
            dialer.dial(&addr).await.map(TokioIo::new)
        })
    }
}
