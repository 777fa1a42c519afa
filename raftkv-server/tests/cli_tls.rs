//! The `raftkv` CLI against a TLS cluster: certificates made by `raftkv
//! cert`, a `raftkv-server dev` started with `RAFTKV_NET__TLS__*`, the CLI
//! with `--tls-ca` (or the same variables), and the errors of a CLI that
//! speaks no TLS or names a file that is not there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
#[path = "support/tls.rs"]
mod tls;

use std::path::Path;
use std::time::{Duration, Instant};

use support::stdout;
use tls::{cli_env, dev_certs, EnvDev};

fn text(out: &std::process::Output) -> String {
    format!("{}{}", stdout(out), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn a_tls_dev_cluster_works_through_the_cli_with_its_ca_and_without_it_the_error_says_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dev_certs(dir.path());
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let dev = EnvDev::start(
        &data,
        &[
            ("RAFTKV_NET__TLS__CA", &certs.ca),
            ("RAFTKV_NET__TLS__CERT", &certs.member.0),
            ("RAFTKV_NET__TLS__KEY", &certs.member.1),
        ],
    );
    let peers = format!("--ctrl-peers={}", dev.ctrl_peers);
    let ca = certs.ca.display().to_string();

    // With the CA as a flag: the cluster answers.
    let out = cli_env(&["--tls-ca", &ca, "kv", &peers, "put", "secret key", "over TLS"], &[]);
    assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(0), "OK\n"), "{out:?}");
    let out = cli_env(&["kv", &peers, "--tls-ca", &ca, "get", "secret key"], &[]);
    assert_eq!(stdout(&out), "Value: over TLS\n", "{out:?}");
    // With the server's own variables, a client certificate presented too.
    let env: [(&str, &Path); 3] = [
        ("RAFTKV_NET__TLS__CA", &certs.ca),
        ("RAFTKV_NET__TLS__CERT", &certs.client.0),
        ("RAFTKV_NET__TLS__KEY", &certs.client.1),
    ];
    let out = cli_env(&["ctrl", &peers, "query"], &env);
    assert!(out.status.success() && stdout(&out).starts_with("Config #2: "), "{out:?}");
    let out = cli_env(&["status", &peers, "-w", "json"], &env);
    assert!(out.status.success(), "{out:?}");
    let nodes: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(nodes.as_array().map(Vec::len), Some(9), "{nodes}");

    // Without the CA: an error that says TLS is needed, after the timeout.
    let started = Instant::now();
    let out = cli_env(&["--timeout-secs", "2", "kv", &peers, "get", "secret key"], &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said = text(&out);
    assert!(said.starts_with("Error: ") && said.contains("speaks TLS") && said.contains("--tls-ca"), "{said}");
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    let out = cli_env(&["--timeout-secs", "2", "status", &peers], &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(text(&out).contains("speaks TLS") && text(&out).contains("--tls-ca"), "{}", text(&out));

    // A CA file that is not there: the flag (or variable) and the file, before any call.
    let out = cli_env(&["--tls-ca", "/nonexistent/ca.pem", "kv", &peers, "get", "k"], &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(said.contains("--tls-ca: cannot read /nonexistent/ca.pem"), "{said}");
    let missing = Path::new("/nonexistent/ca.pem");
    let out = cli_env(&["kv", &peers, "get", "k"], &[("RAFTKV_NET__TLS__CA", missing)]);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(said.contains("RAFTKV_NET__TLS__CA: cannot read /nonexistent/ca.pem"), "{said}");
    // A file that is no certificate.
    let out = cli_env(&["--tls-ca", &certs.member.1.display().to_string(), "kv", &peers, "get", "k"], &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-ca"), "{out:?}");
}

#[test]
fn a_cluster_requiring_client_certificates_takes_the_cli_with_one_and_says_so_without() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dev_certs(dir.path());
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let dev = EnvDev::start(
        &data,
        &[
            ("RAFTKV_NET__TLS__CA", &certs.ca),
            ("RAFTKV_NET__TLS__CERT", &certs.member.0),
            ("RAFTKV_NET__TLS__KEY", &certs.member.1),
            ("RAFTKV_NET__TLS__REQUIRE_CLIENT_CERT", Path::new("true")),
        ],
    );
    let peers = format!("--ctrl-peers={}", dev.ctrl_peers);
    let (ca, cert, key) =
        (certs.ca.display().to_string(), certs.client.0.display().to_string(), certs.client.1.display().to_string());

    let out = cli_env(&["--tls-ca", &ca, "--tls-cert", &cert, "--tls-key", &key, "kv", &peers, "put", "k", "v"], &[]);
    assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(0), "OK\n"), "{out:?}");
    // The key flag and the certificate variable mix, flags and variables alike.
    let out = cli_env(
        &["--tls-key", &key, "kv", &peers, "get", "k"],
        &[("RAFTKV_NET__TLS__CA", &certs.ca), ("RAFTKV_NET__TLS__CERT", &certs.client.0)],
    );
    assert_eq!(stdout(&out), "Value: v\n", "{out:?}");

    let out = cli_env(&["--timeout-secs", "2", "--tls-ca", &ca, "kv", &peers, "get", "k"], &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said = text(&out);
    assert!(said.starts_with("Error: ") && said.contains("--tls-cert FILE and --tls-key FILE"), "{said}");
}
