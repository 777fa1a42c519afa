//! The server half: [`GrpcServer`] serves a [`Routes`] table over HTTP/2
//! (TLS or mTLS when configured).

mod raft;
mod router;
mod services;
mod stream;

use std::net::SocketAddr;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use raftkv_wire::net::{self, Budgets, ConnCounts, ListenOptions, ServerHandle};
use raftkv_wire::net::{NetConfig, Routes};
use raftkv_wire::pb::{admin_server, calls_server, ctrler_server, kv_server, migration_server, raft_server};

use crate::error::GrpcError;
use crate::{CONNECTION_WINDOW, KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT, STREAM_WINDOW};

/// Most concurrent streams one client connection may open (each costs
/// state and a task even before its messages draw on the byte budgets).
const MAX_CONCURRENT_STREAMS: u32 = 1024;

/// A running gRPC server.
#[derive(Debug)]
pub struct GrpcServer {
    handle: ServerHandle,
}

/// A service server that decodes requests of up to `$decode` bytes and
/// encodes answers of up to `$encode`.
macro_rules! limited {
    ($server:expr, $decode:expr, $encode:expr) => {
        $server.max_decoding_message_size($decode).max_encoding_message_size($encode)
    };
}

impl GrpcServer {
    /// Listen on `addr` (port 0: any free port) and serve `routes` with
    /// `cfg`'s message limit and TLS settings.
    pub async fn start(addr: SocketAddr, routes: Routes, cfg: &NetConfig) -> Result<Self, GrpcError> {
        let options = ListenOptions::new(cfg, &[b"h2"])?;
        routes.set_access(cfg.access_policy());
        let limit = cfg.max_message_bytes;
        let client = cfg.server.max_client_message_bytes.min(limit);
        let api = services::ApiService { routes: routes.clone(), limit };
        let limits = router::RequestLimits {
            max_message: limit,
            max_client_message: client,
            client_deadline: cfg.request_timeout,
            peer_deadline: cfg.snapshot_idle_timeout.max(cfg.request_timeout),
        };
        let router = router::Router {
            conn: None,
            conn_budget: None,
            routes: routes.clone(),
            budgets: Budgets::new(cfg.server.max_buffered_bytes.max(cfg.max_message_bytes)),
            limits,
            raft: limited!(
                raft_server::RaftServer::new(raft::RaftService { routes, snapshot_idle: cfg.snapshot_idle_timeout }),
                limit,
                limit
            ),
            kv: limited!(kv_server::KvServer::new(api.clone()), client, limit),
            ctrler: limited!(ctrler_server::CtrlerServer::new(api.clone()), client, limit),
            migration: limited!(migration_server::MigrationServer::new(api.clone()), client, limit),
            admin: limited!(admin_server::AdminServer::new(api.clone()), client, limit),
            calls: limited!(calls_server::CallsServer::new(api), client, limit),
        };
        let handle = net::listen(addr, options, move |stream, conn| {
            let remote = conn.remote;
            let router = router.with_connection(conn);
            async move {
                let served = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .keep_alive_interval(Some(KEEPALIVE_INTERVAL))
                    .keep_alive_timeout(KEEPALIVE_TIMEOUT)
                    .initial_stream_window_size(STREAM_WINDOW)
                    .initial_connection_window_size(CONNECTION_WINDOW)
                    .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
                    .serve_connection(TokioIo::new(stream), router)
                    .await;
                if let Err(e) = served {
                    tracing::debug!(peer = %remote, error = %e, "grpc connection ended with an error");
                }
            }
        })
        .await
        .map_err(|source| GrpcError::Bind { addr, source })?;
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

    /// Stop: close the listener and every connection (in-flight calls fail
    /// on the client side), and free the port.
    pub async fn stop(self) {
        self.handle.stop().await;
    }
}
