//! The admin HTTP endpoint (`admin_listen`): `/metrics` (Prometheus text),
//! `/health` (503 without a leader or a quorum), `/livez`, `/readyz` and
//! `/status` (JSON), covering every node of the process.

mod health;
mod prometheus;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cli::format::node_json;
use crate::node::NodeProbe;

/// A client that has not sent its request head by then is dropped.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A running admin endpoint.
#[derive(Debug)]
pub struct AdminServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl AdminServer {
    /// Listen on `addr` and answer for `nodes`.
    pub async fn start(addr: SocketAddr, nodes: Vec<NodeProbe>) -> Result<Self> {
        let listener = TcpListener::bind(addr).await.with_context(|| format!("admin endpoint: listening on {addr}"))?;
        let addr = listener.local_addr().context("admin endpoint: local address")?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept(listener, Arc::new(nodes), stopped));
        Ok(Self { addr, stop, task })
    }

    /// The address it listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop listening and drop open connections.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn accept(listener: TcpListener, nodes: Arc<Vec<NodeProbe>>, mut stopped: watch::Receiver<bool>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of file descriptors, say: let connections close before trying again.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let nodes = nodes.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let nodes = nodes.clone();
                        async move { Ok::<_, Infallible>(answer(&req, &nodes).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_READ_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

fn verdict(checks: &[health::Check]) -> Response<Full<Bytes>> {
    let status = if health::all_ok(checks) { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = serde_json::json!({ "ok": health::all_ok(checks), "nodes": checks }).to_string();
    reply(status, "application/json", body)
}

async fn answer(req: &Request<Incoming>, nodes: &[NodeProbe]) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "only GET is served here\n".into());
    }
    match req.uri().path() {
        "/metrics" => {
            let mut samples = Vec::with_capacity(nodes.len());
            for probe in nodes {
                samples.push(prometheus::Sample { probe, status: probe.status().await });
            }
            reply(StatusCode::OK, "text/plain; version=0.0.4", prometheus::render(&samples))
        }
        "/health" => {
            let checks = futures::future::join_all(nodes.iter().map(health::health)).await;
            verdict(&checks)
        }
        "/livez" => verdict(&nodes.iter().map(health::live).collect::<Vec<_>>()),
        "/readyz" => verdict(&futures::future::join_all(nodes.iter().map(health::ready)).await),
        "/status" => {
            let mut items = Vec::with_capacity(nodes.len());
            for probe in nodes {
                let addr = probe.addr.to_string();
                items.push(match probe.status().await {
                    Some(s) => node_json(&addr, &s),
                    None => serde_json::json!({ "address": addr, "error": "the node does not answer" }),
                });
            }
            reply(StatusCode::OK, "application/json", serde_json::Value::from(items).to_string())
        }
        other => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            format!("no such endpoint {other}; try /metrics, /health, /livez, /readyz or /status\n"),
        ),
    }
}
