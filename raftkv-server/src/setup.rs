//! From a [`Config`] to what the backends take: the transport settings (TLS
//! files read and checked) and the tracing subscriber.

use std::time::Duration;

use anyhow::{Context, Result};
use raftkv_wire::net::{ClusterToken, Identity, NetConfig, ServerLimits, TlsConfig};

use crate::config::{Config, NetSettings, Role};

/// Descriptors kept for everything but accepted connections: members'
/// connections to their peers, the database, snapshots, logs.
const RESERVED_DESCRIPTORS: u64 = 512;

/// The transport settings of `cfg`, with the TLS and token files read, and
/// each listener's connections capped so that all of the process's
/// listeners together leave descriptors for everything else.
pub fn net_config(cfg: &Config) -> Result<NetConfig> {
    let mut net = net_config_of(&cfg.net)?;
    let listeners = match cfg.role {
        Role::Dev => cfg.dev.ctrlers + cfg.dev.groups * cfg.dev.replicas,
        Role::Ctrler | Role::Shardkv => 1,
    };
    if let Some(limit) = descriptor_limit() {
        let share = usize::try_from(limit.saturating_sub(RESERVED_DESCRIPTORS) / listeners.max(1) as u64)
            .unwrap_or(usize::MAX)
            .max(16);
        let server = &mut net.server;
        if server.max_connections > share {
            tracing::warn!(
                configured = server.max_connections,
                allowed = share,
                descriptors = limit,
                "net.max_connections lowered to fit the process's file descriptor limit"
            );
            server.max_connections = share;
            server.reserved_for_peers = server.reserved_for_peers.min(share / 4);
            server.max_silent_connections = server.max_silent_connections.min(share / 2).max(1);
        }
    }
    Ok(net)
}

/// Raise this process's soft limit of open file descriptors to its hard
/// limit (a server holds a descriptor per connection); the limit now.
pub fn raise_descriptor_limit() -> Option<u64> {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    if let (Some(current), Some(max)) = (limit.current, limit.maximum) {
        if current < max {
            let raised = rustix::process::Rlimit { current: Some(max), maximum: Some(max) };
            if rustix::process::setrlimit(rustix::process::Resource::Nofile, raised).is_err() {
                return Some(current);
            }
        }
    }
    descriptor_limit()
}

/// This process's soft limit of open file descriptors (`None`: unlimited).
fn descriptor_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// The transport settings `net` describes (keys `net.*`), with the TLS and
/// token files read: what the server and the CLI both use.
pub fn net_config_of(net: &NetSettings) -> Result<NetConfig> {
    let tls = match &net.tls {
        Some(t) => {
            let read = |what: &str, p: &std::path::Path| {
                std::fs::read(p)
                    .with_context(|| format!("configuration key `net.tls.{what}`: cannot read {}", p.display()))
            };
            let identity = match (&t.cert, &t.key) {
                (Some(cert), Some(key)) => Some(Identity { cert_pem: read("cert", cert)?, key_pem: read("key", key)? }),
                (None, None) => None,
                (Some(_), None) => {
                    anyhow::bail!("configuration key `net.tls.key` is missing: `net.tls.cert` needs its key")
                }
                (None, Some(_)) => {
                    anyhow::bail!("configuration key `net.tls.cert` is missing: `net.tls.key` needs its certificate")
                }
            };
            Some(TlsConfig {
                ca_pem: read("ca", &t.ca)?,
                identity,
                require_client_cert: t.require_client_cert,
                server_name: None,
            })
        }
        None => None,
    };
    let cluster_token = match &net.cluster_token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("configuration key `net.cluster_token_file`: cannot read {}", path.display())
            })?;
            Some(ClusterToken::new(&text).with_context(|| {
                format!("configuration key `net.cluster_token_file`: {} holds no usable token", path.display())
            })?)
        }
        None => None,
    };
    Ok(NetConfig {
        connect_timeout: Duration::from_millis(net.connect_timeout_ms),
        request_timeout: Duration::from_millis(net.request_timeout_ms),
        max_message_bytes: net.max_message_bytes,
        tls,
        cluster_token,
        server: ServerLimits {
            max_connections: net.max_connections,
            reserved_for_peers: net.reserved_for_peers,
            max_silent_connections: net.max_silent_connections,
            first_request_timeout: Duration::from_millis(net.first_request_timeout_ms),
            idle_timeout: Duration::from_millis(net.idle_timeout_ms),
            max_client_message_bytes: net.max_client_message_bytes,
            max_buffered_bytes: net.max_buffered_bytes,
        },
        ..NetConfig::default()
    })
}
