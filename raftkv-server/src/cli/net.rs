//! The CLI's transport settings: the server's `net.*` keys read from the
//! same `RAFTKV_NET__*` environment variables (`RAFTKV_NET__TLS__CA`,
//! `RAFTKV_NET__REQUEST_TIMEOUT_MS`, …), then the `--tls-ca`, `--tls-cert`
//! and `--tls-key` flags over them. Every file is checked here so that an
//! error names the flag or variable it came from and the file.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use figment::providers::{Env, Serialized};
use figment::{Figment, Provider};
use raftkv_wire::net::NetConfig;
use serde::Serialize;

use crate::config::NetSettings;
use crate::setup::net_config_of;

/// The environment variables' prefix: `RAFTKV_NET__TLS__CA` is `tls.ca`.
pub const ENV_PREFIX: &str = "RAFTKV_NET__";

/// The CLI's TLS flags (global: they apply to `ctrl`, `kv` and `status`).
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct TlsFlags {
    /// The cluster CA certificate (PEM): speak TLS and trust the servers it
    /// signed [env: RAFTKV_NET__TLS__CA].
    #[arg(long, value_name = "FILE", global = true)]
    pub tls_ca: Option<PathBuf>,
    /// A client certificate to present (PEM), for clusters that require one
    /// [env: RAFTKV_NET__TLS__CERT].
    #[arg(long, value_name = "FILE", global = true)]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM) [env: RAFTKV_NET__TLS__KEY].
    #[arg(long, value_name = "FILE", global = true)]
    pub tls_key: Option<PathBuf>,
}

/// The flags as a figment layer: only those given.
#[derive(Serialize)]
struct Overlay<'a> {
    #[serde(skip_serializing_if = "TlsOverlay::is_empty")]
    tls: TlsOverlay<'a>,
}

#[derive(Serialize)]
struct TlsOverlay<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    ca: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cert: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a Path>,
}

impl TlsOverlay<'_> {
    fn is_empty(&self) -> bool {
        self.ca.is_none() && self.cert.is_none() && self.key.is_none()
    }
}

/// One TLS file's setting: where it came from (a flag or a variable) and the path.
fn source(flag: Option<&Path>, flag_name: &str, env_name: &str) -> String {
    if flag.is_some() {
        flag_name.to_string()
    } else {
        format!("{ENV_PREFIX}{env_name}")
    }
}

/// The `net.*` settings from `env` (the environment, in production) with
/// `flags` over them, every TLS file checked to be readable.
pub fn settings_from(env: impl Provider, flags: &TlsFlags) -> Result<NetSettings> {
    let overlay = Overlay {
        tls: TlsOverlay { ca: flags.tls_ca.as_deref(), cert: flags.tls_cert.as_deref(), key: flags.tls_key.as_deref() },
    };
    let figment =
        Figment::from(Serialized::defaults(NetSettings::default())).merge(env).merge(Serialized::defaults(overlay));
    let given = |key: &str| figment.find_value(key).is_ok();
    let ca_from = source(flags.tls_ca.as_deref(), "--tls-ca", "TLS__CA");
    let cert_from = source(flags.tls_cert.as_deref(), "--tls-cert", "TLS__CERT");
    let key_from = source(flags.tls_key.as_deref(), "--tls-key", "TLS__KEY");
    if (given("tls.cert") || given("tls.key")) && !given("tls.ca") {
        let what = if given("tls.cert") { cert_from.as_str() } else { key_from.as_str() };
        bail!("{what} needs the cluster CA: give --tls-ca FILE (or {ENV_PREFIX}TLS__CA)");
    }
    let settings: NetSettings = figment.extract().map_err(|e| {
        let text = e.clone().into_iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ");
        anyhow::anyhow!("{ENV_PREFIX}*: {text}")
    })?;
    if let Some(tls) = &settings.tls {
        match (&tls.cert, &tls.key) {
            (Some(_), None) => {
                bail!("{cert_from} needs its private key: give --tls-key FILE (or {ENV_PREFIX}TLS__KEY)")
            }
            (None, Some(_)) => {
                bail!("{key_from} needs its certificate: give --tls-cert FILE (or {ENV_PREFIX}TLS__CERT)")
            }
            _ => {}
        }
        let files = [(Some(&tls.ca), &ca_from), (tls.cert.as_ref(), &cert_from), (tls.key.as_ref(), &key_from)];
        for (path, from) in files {
            if let Some(path) = path {
                std::fs::File::open(path).with_context(|| format!("{from}: cannot read {}", path.display()))?;
            }
        }
    }
    Ok(settings)
}

/// The `net.*` settings of the CLI: [`settings_from`] the process's
/// environment. [`net_config_of`] makes them what the transports take.
pub fn settings(flags: &TlsFlags) -> Result<NetSettings> {
    settings_from(Env::prefixed(ENV_PREFIX).split("__"), flags)
}

/// The transport settings `settings` describe, the TLS files read.
pub fn net_config(settings: &NetSettings) -> Result<NetConfig> {
    net_config_of(settings)
}

/// The TLS files of `settings` with the flag or variable that named each
/// (`--tls-ca /etc/raftkv/ca.pem, RAFTKV_NET__TLS__CERT …`), for an error
/// about their contents.
#[must_use]
pub fn tls_files(settings: &NetSettings, flags: &TlsFlags) -> String {
    let Some(tls) = &settings.tls else { return "none".into() };
    let files = [
        (Some(&tls.ca), source(flags.tls_ca.as_deref(), "--tls-ca", "TLS__CA")),
        (tls.cert.as_ref(), source(flags.tls_cert.as_deref(), "--tls-cert", "TLS__CERT")),
        (tls.key.as_ref(), source(flags.tls_key.as_deref(), "--tls-key", "TLS__KEY")),
    ];
    let named: Vec<String> =
        files.iter().filter_map(|(path, from)| path.map(|p| format!("{from} {}", p.display()))).collect();
    named.join(", ")
}

#[cfg(test)]
mod tests {
    use figment::providers::{Format, Toml};

    use super::*;

    fn flags(ca: Option<&Path>, cert: Option<&Path>, key: Option<&Path>) -> TlsFlags {
        TlsFlags {
            tls_ca: ca.map(Path::to_path_buf),
            tls_cert: cert.map(Path::to_path_buf),
            tls_key: key.map(Path::to_path_buf),
        }
    }

    fn err(r: Result<NetSettings>) -> String {
        r.err().map(|e| format!("{e:#}")).unwrap_or_default()
    }

    #[test]
    fn nothing_given_is_plaintext_with_the_default_deadlines() {
        let s = settings_from(Toml::string(""), &TlsFlags::default()).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(s, NetSettings::default());
    }

    #[test]
    fn variables_give_tls_and_deadlines_and_flags_win() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (a, b) = (dir.path().join("a.pem"), dir.path().join("b.pem"));
        for f in [&a, &b] {
            std::fs::write(f, "x").unwrap_or_else(|e| panic!("{e}"));
        }
        let env = Toml::string(&format!("request_timeout_ms = 700\n[tls]\nca = {:?}\n", a.display().to_string()));
        let s = settings_from(env, &TlsFlags::default()).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(s.request_timeout_ms, 700);
        assert_eq!(s.tls.as_ref().map(|t| t.ca.clone()), Some(a.clone()));
        let env = Toml::string(&format!("[tls]\nca = {:?}\n", a.display().to_string()));
        let s = settings_from(env, &flags(Some(&b), None, None)).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(s.tls.map(|t| t.ca), Some(b.clone()), "the flag wins");
        let s =
            settings_from(Toml::string(""), &flags(Some(&a), Some(&b), Some(&b))).unwrap_or_else(|e| panic!("{e:#}"));
        let tls = s.tls.unwrap_or_else(|| panic!("tls"));
        assert_eq!((tls.cert, tls.key), (Some(b.clone()), Some(b)));
    }

    #[test]
    fn errors_name_the_flag_or_variable_and_the_file() {
        let missing = Path::new("/nonexistent/ca.pem");
        let e = err(settings_from(Toml::string(""), &flags(Some(missing), None, None)));
        assert!(e.starts_with("--tls-ca: cannot read /nonexistent/ca.pem: "), "{e}");
        let e = err(settings_from(Toml::string("[tls]\nca = \"/nonexistent/ca.pem\"\n"), &TlsFlags::default()));
        assert!(e.starts_with("RAFTKV_NET__TLS__CA: cannot read /nonexistent/ca.pem"), "{e}");
        let e = err(settings_from(Toml::string(""), &flags(None, Some(missing), None)));
        assert!(e.contains("--tls-cert needs the cluster CA") && e.contains("--tls-ca"), "{e}");
        let e = err(settings_from(Toml::string(""), &flags(Some(missing), Some(missing), None)));
        assert!(e.contains("--tls-cert needs its private key"), "{e}");
        let e = err(settings_from(Toml::string("connect_timeout_ms = \"soon\""), &TlsFlags::default()));
        assert!(e.starts_with("RAFTKV_NET__*:") && e.contains("connect_timeout_ms"), "{e}");
    }
}
