//! [`listen`]: accept connections (TLS if configured) and hand each to a
//! handler on its own task, within the connection limits of [`ConnTable`]
//! (each connection is closed when its [`Conn::watch`] says so);
//! [`ServerHandle::stop`] closes the listener and every connection at once.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::net::{CertIdentity, Credentials, NetConfig, ServerLimits};

use super::connections::{Conn, ConnCounts, ConnTable};
use super::tls::{cert_identity, server_config, TlsError};
use super::NetStream;

/// What is known of an accepted connection: where it comes from, what its
/// verified client certificate (if it sent one) says of its holder, and its
/// place in the server's connection limits (every request must be
/// registered with [`Conn::request`]).
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// The remote address.
    pub remote: SocketAddr,
    /// The verified client certificate's identity.
    pub cert: Option<Arc<CertIdentity>>,
    /// The connection's state in the server's table.
    pub conn: Arc<Conn>,
}

impl ConnInfo {
    /// The credentials of a request on this connection that sent `token`
    /// (the value of its [`TOKEN_HEADER`](crate::net::TOKEN_HEADER), if any).
    #[must_use]
    pub fn credentials(&self, token: Option<&[u8]>) -> Credentials {
        Credentials { cert: self.cert.clone(), token: token.map(<[u8]>::to_vec), remote: Some(self.remote) }
    }
}

/// A running server: its address, and the means to stop it.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    table: Arc<ConnTable>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// The address the server listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's connections, counted by kind.
    #[must_use]
    pub fn connections(&self) -> ConnCounts {
        self.table.counts()
    }

    /// Stop accepting, close every connection, and wait until the port is free.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How a server accepts connections.
#[derive(Clone, Debug)]
pub struct ListenOptions {
    /// TLS settings; `None` is plaintext.
    pub tls: Option<Arc<ServerConfig>>,
    /// A TLS handshake must finish within this.
    pub handshake_timeout: Duration,
    /// Kernel send and receive buffers of every accepted connection, if set.
    pub socket_buffer: Option<u32>,
    /// Connection limits and deadlines.
    pub limits: ServerLimits,
}

impl ListenOptions {
    /// The options `cfg` asks for, offering the ALPN protocols `alpn` over TLS.
    pub fn new(cfg: &NetConfig, alpn: &[&[u8]]) -> Result<Self, TlsError> {
        Ok(Self {
            tls: cfg.tls.as_ref().map(|t| server_config(t, alpn)).transpose()?,
            handshake_timeout: cfg.connect_timeout,
            socket_buffer: cfg.socket_buffer_bytes,
            limits: cfg.server.clone(),
        })
    }
}

fn bind(addr: SocketAddr, buffer: Option<u32>) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    if let Some(bytes) = buffer {
        // Accepted connections inherit the listener's buffers.
        socket.set_send_buffer_size(bytes)?;
        socket.set_recv_buffer_size(bytes)?;
    }
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Listen on `addr`; every accepted connection is set to no-delay, wrapped
/// in TLS when configured (the handshake within its deadline), then served
/// by `handler` on a task of its own.
pub async fn listen<H, Fut>(addr: SocketAddr, options: ListenOptions, handler: H) -> std::io::Result<ServerHandle>
where
    H: Fn(NetStream, ConnInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let ListenOptions { tls, handshake_timeout, socket_buffer, limits } = options;
    let listener = bind(addr, socket_buffer)?;
    let addr = listener.local_addr()?;
    let table = ConnTable::new(limits);
    let accepting = table.clone();
    let (shutdown, mut stopped) = oneshot::channel();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let handler = Arc::new(handler);
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                _ = &mut stopped => break,
                accepted = listener.accept() => accepted,
            };
            while connections.try_join_next().is_some() {}
            let (tcp, peer) = match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(%addr, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(conn) = accepting.admit() else {
                // No room, not even by closing a silent connection: close this one at once.
                tracing::debug!(%addr, %peer, "connection refused: the server holds its maximum");
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, handler) = (acceptor.clone(), handler.clone());
            connections.spawn(async move {
                let watched = conn.clone();
                let served = async move {
                    let stream = match acceptor {
                        None => NetStream::Plain(tcp),
                        Some(acceptor) => match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                            Ok(Ok(s)) => NetStream::Server(Box::new(s)),
                            Ok(Err(e)) => {
                                tracing::debug!(%addr, %peer, error = %e, "tls handshake refused");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%addr, %peer, "tls handshake timed out");
                                return;
                            }
                        },
                    };
                    let cert = match &stream {
                        NetStream::Server(tls) => tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|chain| chain.first())
                            .map(|leaf| Arc::new(cert_identity(leaf))),
                        _ => None,
                    };
                    handler(stream, ConnInfo { remote: peer, cert, conn }).await;
                };
                tokio::select! {
                    () = served => {}
                    reason = watched.watch() => {
                        tracing::debug!(%addr, %peer, ?reason, "connection closed by the server");
                    }
                }
                watched.release();
            });
        }
        drop(listener);
        connections.shutdown().await;
    });
    Ok(ServerHandle { addr, table, shutdown: Some(shutdown), task })
}
