//! Helpers of the TLS end-to-end tests: certificates made by `raftkv cert`,
//! a `raftkv-server dev` process started with `RAFTKV_NET__TLS__*`, and CLI
//! runs with extra environment variables.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::support::{backend, free_ports, read_until_ready};

/// The files `raftkv cert` made for a dev cluster: a CA, one member
/// certificate naming every member of the dev topology, a client certificate.
pub struct Certs {
    /// `ca.pem`.
    pub ca: PathBuf,
    /// The members' certificate and key.
    pub member: (PathBuf, PathBuf),
    /// A client certificate and key.
    pub client: (PathBuf, PathBuf),
}

/// Run `raftkv` with `args` (no `--transport`: `cert` takes none) and expect success.
pub fn raftkv_ok(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_raftkv")).args(args).output().expect("raftkv runs");
    assert!(out.status.success(), "raftkv {args:?}: {out:?}");
    out
}

/// Make, with `raftkv cert`, the certificates of a dev cluster (3
/// controllers, 2 groups of 3) on 127.0.0.1, in `dir`.
pub fn dev_certs(dir: &Path) -> Certs {
    let ca_dir = dir.join("ca");
    let d = |p: &Path| p.display().to_string();
    raftkv_ok(&["cert", "ca", "--out", &d(&ca_dir)]);
    let mut args = vec!["cert".to_string(), "member".into(), "--ca".into(), d(&ca_dir)];
    for group in 0..=2 {
        for node in 1..=3 {
            args.extend(["--member".to_string(), format!("{group}:{node}")]);
        }
    }
    args.extend(["--host", "127.0.0.1", "--host", "localhost", "--out"].map(String::from));
    args.push(d(&dir.join("dev")));
    raftkv_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    raftkv_ok(&["cert", "client", "--ca", &d(&ca_dir), "--name", "test client", "--out", &d(&dir.join("client"))]);
    Certs {
        ca: ca_dir.join("ca.pem"),
        member: (dir.join("dev.pem"), dir.join("dev-key.pem")),
        client: (dir.join("client.pem"), dir.join("client-key.pem")),
    }
}

/// A `raftkv-server dev` process with `env` set, killed when dropped.
pub struct EnvDev {
    child: Child,
    /// The `ctrl-peers:` line's value.
    pub ctrl_peers: String,
}

impl EnvDev {
    /// Start a dev cluster on free ports with its data in `dir` and `env` set;
    /// returns once it printed `ready`.
    pub fn start(dir: &Path, env: &[(&str, &Path)]) -> Self {
        let (transport, storage) = backend();
        let base = free_ports(9).to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_raftkv-server"))
            .args(["dev", "--base-port", &base, "--data-dir", &dir.display().to_string()])
            .args(["--transport", &transport, "--storage", &storage, "--log", "warn"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_os_str())))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("raftkv-server starts");
        let banner = read_until_ready(&mut child, Duration::from_secs(60));
        let ctrl_peers = banner
            .iter()
            .find_map(|l| l.strip_prefix("ctrl-peers: "))
            .unwrap_or_else(|| panic!("no ctrl-peers line in {banner:?}"))
            .to_string();
        Self { child, ctrl_peers }
    }
}

impl Drop for EnvDev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run the `raftkv` CLI with `args` (and the transport under test) and `env`
/// set, with every `RAFTKV_NET__*` variable of the test process removed.
pub fn cli_env(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let (transport, _) = backend();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_raftkv"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("RAFTKV_NET__") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .args(["--transport", &transport])
        .envs(env.iter().map(|(k, v)| (*k, v.as_os_str())))
        .stdin(Stdio::null())
        .output()
        .expect("raftkv runs")
}
