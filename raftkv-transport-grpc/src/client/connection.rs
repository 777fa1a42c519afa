//! [`Connection`]: the one HTTP/2 connection to a peer address, opened on
//! first use, dropped when it fails, and reopened after a backoff with jitter.

use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use raftkv_core::transport::{Peer, TransportError};
use raftkv_wire::net::{error_chain, DialService, Dialer};
use raftkv_wire::net::{NetConfig, Reconnect};
use tonic::transport::Endpoint;

use super::peer_channel::PeerChannel;

use crate::{CONNECTION_WINDOW, KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT, STREAM_WINDOW};

struct State {
    channel: Option<PeerChannel>,
    generation: u64,
    reconnect: Reconnect,
}

/// The connection to one peer address.
pub(crate) struct Connection {
    addr: String,
    endpoint: Result<Endpoint, String>,
    /// The cluster token as a header value, sent with every call.
    token: Option<http::HeaderValue>,
    dialer: Dialer,
    cfg: NetConfig,
    state: Mutex<State>,
    connecting: tokio::sync::Mutex<()>,
}

impl Connection {
    pub(crate) fn new(addr: &str, dialer: Dialer, cfg: NetConfig, seed: u64) -> Self {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map(|e| {
                e.connect_timeout(cfg.connect_timeout)
                    .initial_stream_window_size(STREAM_WINDOW)
                    .initial_connection_window_size(CONNECTION_WINDOW)
                    .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
                    .keep_alive_timeout(KEEPALIVE_TIMEOUT)
                    .keep_alive_while_idle(true)
                    .tcp_nodelay(true)
            })
            .map_err(|e| format!("`{addr}` is not a valid address: {e}"));
        let reconnect = Reconnect::new(cfg.backoff, seed);
        // A token is printable ASCII (checked when it is made), so always a valid header value.
        let token = cfg.cluster_token.as_ref().and_then(|t| http::HeaderValue::from_bytes(t.as_bytes()).ok());
        Self {
            addr: addr.to_string(),
            endpoint,
            token,
            dialer,
            cfg,
            state: Mutex::new(State { channel: None, generation: 0, reconnect }),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    pub(crate) fn cfg(&self) -> &NetConfig {
        &self.cfg
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn current(&self) -> Option<(PeerChannel, u64)> {
        let st = self.lock();
        st.channel.clone().map(|c| (c, st.generation))
    }

    /// The open channel, or a new one (unless the peer is in backoff after
    /// failures). Returns the channel's generation for [`Connection::broken`].
    pub(crate) async fn channel(&self, peer: &Peer) -> Result<(PeerChannel, u64), TransportError> {
        if let Some(open) = self.current() {
            return Ok(open);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(open) = self.current() {
            return Ok(open);
        }
        let failures = {
            let st = self.lock();
            if let Err(wait) = st.reconnect.may_try(Instant::now()) {
                return Err(TransportError::unreachable(
                    peer.clone(),
                    format!("reconnecting in {wait:?} after {} failed attempts", st.reconnect.failures()),
                ));
            }
            st.reconnect.failures()
        };
        let endpoint = self.endpoint.clone().map_err(|e| TransportError::unreachable(peer.clone(), e))?;
        // The whole connection — TCP, TLS and the HTTP/2 handshake — within the
        // connect deadline: a peer that accepts and then says nothing must not
        // hold every caller of this connection.
        let after = self.cfg.connect_timeout;
        let connected = tokio::time::timeout(after, endpoint.connect_with_connector(DialService(self.dialer.clone())))
            .await
            .map_err(|_| format!("connecting to {} timed out after {after:?}", self.addr))
            .and_then(|r| r.map_err(|e| error_chain(&e)));
        match connected {
            Ok(channel) => {
                let channel = PeerChannel::new(channel, self.token.clone());
                let mut st = self.lock();
                st.generation += 1;
                st.channel = Some(channel.clone());
                Ok((channel, st.generation))
            }
            Err(e) => {
                let pause = self.lock().reconnect.failed(Instant::now());
                tracing::debug!(addr = %self.addr, failures = failures + 1, ?pause, error = %e, "connect failed");
                Err(TransportError::unreachable(peer.clone(), e))
            }
        }
    }

    /// A call on channel `generation` failed at the connection level: drop
    /// the channel and back off before reconnecting.
    pub(crate) fn broken(&self, generation: u64) {
        let mut st = self.lock();
        if st.generation == generation && st.channel.is_some() {
            st.channel = None;
            let pause = st.reconnect.failed(Instant::now());
            tracing::debug!(addr = %self.addr, ?pause, "connection dropped");
        }
    }

    /// A call succeeded: the next failure backs off from the start again.
    pub(crate) fn succeeded(&self) {
        let mut st = self.lock();
        if st.reconnect.failures() > 0 {
            st.reconnect.succeeded();
        }
    }
}
