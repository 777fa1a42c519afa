//! From a [`Config`] to what the backends take: the transport settings (TLS
//! files read and checked) and the tracing subscriber.

use std::time::Duration;

use anyhow::{Context, Result};
use raftkv_core::transport::{Identity, NetConfig, TlsConfig};

use crate::config::Config;

/// The transport settings of `cfg`, with the TLS files read.
pub fn net_config(cfg: &Config) -> Result<NetConfig> {
    let tls = match &cfg.net.tls {
        Some(t) => {
            let read = |what: &str, p: &std::path::Path| {
                std::fs::read(p)
                    .with_context(|| format!("configuration key `net.tls.{what}`: cannot read {}", p.display()))
            };
            Some(TlsConfig {
                ca_pem: read("ca", &t.ca)?,
                identity: Some(Identity { cert_pem: read("cert", &t.cert)?, key_pem: read("key", &t.key)? }),
                require_client_cert: t.require_client_cert,
                server_name: None,
            })
        }
        None => None,
    };
    Ok(NetConfig {
        connect_timeout: Duration::from_millis(cfg.net.connect_timeout_ms),
        request_timeout: Duration::from_millis(cfg.net.request_timeout_ms),
        max_message_bytes: cfg.net.max_message_bytes,
        tls,
        ..NetConfig::default()
    })
}
