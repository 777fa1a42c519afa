//! From a [`Config`] to what the backends take: the transport settings (TLS
//! files read and checked) and the tracing subscriber.

use std::time::Duration;

use anyhow::{Context, Result};
use raftkv_core::transport::{ClusterToken, Identity, NetConfig, TlsConfig};

use crate::config::{Config, NetSettings};

/// The transport settings of `cfg`, with the TLS and token files read.
pub fn net_config(cfg: &Config) -> Result<NetConfig> {
    net_config_of(&cfg.net)
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
        ..NetConfig::default()
    })
}
