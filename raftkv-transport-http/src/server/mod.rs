//! The server half: [`HttpServer`] serves a [`Routes`] table over HTTP/1.1
//! with keep-alive (TLS or mTLS when configured).

mod handler;

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use raftkv_wire::net::{self, Budgets, ConnCounts, ListenOptions, Pool, ServerHandle};
use raftkv_wire::net::{NetConfig, Routes};

use crate::error::HttpError;

/// The longest a connection may wait for (the headers of) its next request.
const SERVER_IDLE_CLOSE: std::time::Duration = std::time::Duration::from_secs(60);

/// A running HTTP server.
#[derive(Debug)]
pub struct HttpServer {
    handle: ServerHandle,
}

impl HttpServer {
    /// Listen on `addr` (port 0: any free port) and serve `routes` with
    /// `cfg`'s deadlines, message limit and TLS settings.
    pub async fn start(addr: SocketAddr, routes: Routes, cfg: &NetConfig) -> Result<Self, HttpError> {
        let options = ListenOptions::new(cfg, &[b"http/1.1"])?;
        routes.set_access(cfg.access_policy());
        let ctx = Arc::new(handler::Context {
            routes,
            limit: cfg.max_message_bytes,
            client_limit: cfg.server.max_client_message_bytes.min(cfg.max_message_bytes),
            budgets: Budgets::new(cfg.server.max_buffered_bytes.max(cfg.max_message_bytes)),
            body_timeout: cfg.request_timeout,
            snapshot_idle: cfg.snapshot_idle_timeout,
        });
        // Idle keep-alive connections are closed by the client's pool (after
        // `IDLE_TIMEOUT` in the client), before this: a request never races a
        // server-side close.
        let header_timeout = cfg.request_timeout.max(SERVER_IDLE_CLOSE);
        let handle = net::listen(addr, options, move |stream, conn| {
            let ctx = ctx.clone();
            let peer = conn.remote;
            // What this connection's partial requests may hold (one at a time on HTTP/1.1).
            let conn_budget = Pool::new(ctx.limit);
            async move {
                let service = service_fn(move |request| {
                    let (ctx, conn, conn_budget) = (ctx.clone(), conn.clone(), conn_budget.clone());
                    async move { handler::handle(&ctx, &conn, &conn_budget, request).await }
                });
                let served = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "http connection ended with an error");
                }
            }
        })
        .await
        .map_err(|source| HttpError::Bind { addr, source })?;
        Ok(Self { handle })
    }

    /// The address the server listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.handle.addr()
    }

    /// Its connections, counted by kind.
    #[must_use]
    pub fn connections(&self) -> ConnCounts {
        self.handle.connections()
    }

    /// Stop: close the listener and every connection, and free the port.
    pub async fn stop(self) {
        self.handle.stop().await;
    }
}
