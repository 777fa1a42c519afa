//! rustls configurations from a [`TlsConfig`] (PEM data), with the ring
//! provider: a server that presents the node's certificate and verifies
//! client certificates against the cluster CA (requiring one for mTLS,
//! otherwise taking one if offered), and a client that verifies servers
//! against the cluster CA (and presents the node's certificate). And
//! [`cert_identity`]: what a verified certificate says of its holder.

use std::sync::Arc;

use crate::net::{parse_member_uri, CertIdentity, Identity, TlsConfig};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Why TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM block could not be read.
    #[error("tls: cannot read {what}: {reason}")]
    Pem {
        /// Which input (`ca_pem`, `identity.cert_pem`, `identity.key_pem`).
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A PEM input held no certificate.
    #[error("tls: {0} holds no certificate")]
    NoCertificate(&'static str),
    /// Serving TLS needs the node's certificate and key.
    #[error("tls: a server needs `identity` (its certificate and key)")]
    NoIdentity,
    /// rustls refused the settings (a key that does not match, a CA that is not one, …).
    #[error("tls: {0}")]
    Rustls(String),
    /// The host to verify the server against is not a valid DNS name or IP address.
    #[error("tls: `{0}` is not a valid server name")]
    BadServerName(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(what: &'static str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem { what, reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(what));
    }
    Ok(certs)
}

fn key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::Pem { what: "identity.key_pem", reason: e.to_string() })
}

fn roots(ca_pem: &[u8]) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs("ca_pem", ca_pem)? {
        roots.add(cert).map_err(|e| TlsError::Rustls(format!("ca_pem: {e}")))?;
    }
    Ok(Arc::new(roots))
}

fn identity(id: &Identity) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    Ok((certs("identity.cert_pem", &id.cert_pem)?, key(&id.key_pem)?))
}

/// The server side of `cfg`, offering the ALPN protocols `alpn`.
pub fn server_config(cfg: &TlsConfig, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsError> {
    let (chain, key) = identity(cfg.identity.as_ref().ok_or(TlsError::NoIdentity)?)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    // A client certificate is always verified when offered (a member proves
    // itself with one); mTLS makes it required of every client.
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(&cfg.ca_pem)?, provider());
    let verifier = if cfg.require_client_cert { verifier } else { verifier.allow_unauthenticated() };
    let verifier = verifier.build().map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = builder.with_client_cert_verifier(verifier);
    let mut config = builder.with_single_cert(chain, key).map_err(|e| TlsError::Rustls(e.to_string()))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The client side of `cfg`, asking for the ALPN protocols `alpn`.
pub fn client_config(cfg: &TlsConfig, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_root_certificates(roots(&cfg.ca_pem)?);
    let mut config = match &cfg.identity {
        Some(id) => {
            let (chain, key) = identity(id)?;
            builder.with_client_auth_cert(chain, key).map_err(|e| TlsError::Rustls(e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// What the verified leaf certificate `der` says of its holder: the members
/// its URI subject alternative names name, and its subject. A certificate
/// that cannot be parsed names no member.
#[must_use]
pub fn cert_identity(der: &[u8]) -> CertIdentity {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return CertIdentity { subject: "an unreadable certificate".into(), ..CertIdentity::default() };
    };
    let mut members = std::collections::BTreeSet::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::URI(uri) = name {
                members.extend(parse_member_uri(uri));
            }
        }
    }
    CertIdentity { members, subject: cert.subject().to_string() }
}

/// The name a client verifies the server at `host` against.
pub fn server_name(cfg: &TlsConfig, host: &str) -> Result<ServerName<'static>, TlsError> {
    let name = cfg.server_name.as_deref().unwrap_or(host);
    let name = name.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(name.to_string()).map_err(|_| TlsError::BadServerName(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(ca: &[u8], identity: Option<Identity>) -> TlsConfig {
        TlsConfig { ca_pem: ca.to_vec(), identity, require_client_cert: true, server_name: None }
    }

    #[test]
    fn unusable_settings_are_errors_naming_the_input() {
        let garbage = b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n";
        let e = client_config(&cfg(garbage, None), &[]).unwrap_err().to_string();
        assert!(e.contains("ca_pem"), "{e}");
        let e = client_config(&cfg(b"", None), &[]).unwrap_err().to_string();
        assert!(e.contains("ca_pem") && e.contains("no certificate"), "{e}");
        let e = server_config(&cfg(b"", None), &[]).unwrap_err().to_string();
        assert!(e.contains("identity"), "{e}");
        let id = Identity { cert_pem: b"nothing".to_vec(), key_pem: b"nothing".to_vec() };
        let e = server_config(&cfg(b"", Some(id)), &[]).unwrap_err().to_string();
        assert!(e.contains("identity.cert_pem"), "{e}");
        let e = server_name(&cfg(b"", None), "bad host name!").unwrap_err().to_string();
        assert!(e.contains("bad host name!"), "{e}");
    }
}
