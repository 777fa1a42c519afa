//! Helpers of the end-to-end tests: the backend under test, free ports, a
//! `raftkv-server dev` process, and runs of the `raftkv` CLI.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The transport and storage under test: `TEST_RAFTKV_TRANSPORT` /
/// `TEST_RAFTKV_STORAGE` if set, else the first compiled in (grpc before
/// http; redb, sqlite, mem). `cargo xtask test-matrix` builds one of each.
pub fn backend() -> (String, String) {
    let transport = std::env::var("TEST_RAFTKV_TRANSPORT")
        .unwrap_or_else(|_| if cfg!(feature = "grpc") { "grpc" } else { "http" }.to_string());
    let storage = std::env::var("TEST_RAFTKV_STORAGE").unwrap_or_else(|_| {
        if cfg!(feature = "redb") {
            "redb"
        } else if cfg!(feature = "sqlite") {
            "sqlite"
        } else {
            "mem"
        }
        .to_string()
    });
    (transport, storage)
}

/// Whether the storage under test keeps data across a restart.
pub fn durable() -> bool {
    backend().1 != "mem"
}

/// A first port such that `count` consecutive ports from it are free now.
pub fn free_ports(count: u16) -> u16 {
    let seed = u64::from(std::process::id()).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    for attempt in 0..200u64 {
        let base = 20_000 + ((seed.wrapping_add(attempt * 7919)) % 30_000) as u16;
        let held: Vec<_> = (0..count).map_while(|i| TcpListener::bind(("127.0.0.1", base + i)).ok()).collect();
        if held.len() == usize::from(count) {
            return base;
        }
    }
    panic!("no {count} consecutive free ports found");
}

/// A running `raftkv-server dev`, killed when dropped.
pub struct Dev {
    child: Child,
    /// Its stdout up to `ready`.
    pub banner: Vec<String>,
    /// The `ctrl-peers:` line's value.
    pub ctrl_peers: String,
    /// First port.
    pub base_port: u16,
}

/// Wait for lines of `child`'s stdout until `ready`; panics after `limit`.
pub fn read_until_ready(child: &mut Child, limit: Duration) -> Vec<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + limit;
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line == "ready" => return lines,
            Ok(line) => lines.push(line),
            Err(_) => {
                let _ = child.kill();
                let out = child.wait_with_output_stderr();
                panic!("raftkv-server dev did not print `ready` in {limit:?}; stdout so far: {lines:?}; stderr: {out}");
            }
        }
    }
}

trait StderrOf {
    fn wait_with_output_stderr(&mut self) -> String;
}

impl StderrOf for Child {
    fn wait_with_output_stderr(&mut self) -> String {
        let _ = self.wait();
        let mut s = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
        }
        s
    }
}

impl Dev {
    /// Start a dev cluster on free ports with its data in `dir`, with `extra` flags.
    pub fn start(dir: &Path, extra: &[&str]) -> Self {
        Self::start_on(dir, free_ports(9), extra)
    }

    /// Start a dev cluster from port `base_port`.
    pub fn start_on(dir: &Path, base_port: u16, extra: &[&str]) -> Self {
        let base = base_port.to_string();
        let mut args = vec!["dev", "--base-port", &base];
        args.extend_from_slice(extra);
        let mut dev = Self::spawn(dir, &args);
        dev.ctrl_peers = dev
            .banner
            .iter()
            .find_map(|l| l.strip_prefix("ctrl-peers: "))
            .unwrap_or_else(|| panic!("no ctrl-peers line in {:?}", dev.banner))
            .to_string();
        dev.base_port = base_port;
        dev
    }

    /// Start `raftkv-server` with `args` (a role and its flags) on the
    /// backend under test, with its data in `dir`; returns once it printed `ready`.
    pub fn spawn(dir: &Path, args: &[&str]) -> Self {
        let (transport, storage) = backend();
        let mut child = Command::new(env!("CARGO_BIN_EXE_raftkv-server"))
            .args(args)
            .args(["--data-dir", &dir.display().to_string()])
            .args(["--transport", &transport, "--storage", &storage, "--log", "warn"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("raftkv-server starts");
        let banner = read_until_ready(&mut child, Duration::from_secs(60));
        Self { child, banner, ctrl_peers: String::new(), base_port: 0 }
    }

    /// The admin endpoint's address, from the `admin:` banner line.
    pub fn admin(&self) -> String {
        self.banner
            .iter()
            .find_map(|l| l.strip_prefix("admin: http://"))
            .and_then(|l| l.split(' ').next())
            .unwrap_or_else(|| panic!("no admin line in {:?}", self.banner))
            .to_string()
    }

    /// Kill the process at once (SIGKILL).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The address of the `i`-th server (controllers first, then each group's replicas).
    pub fn addr(&self, i: u16) -> String {
        format!("127.0.0.1:{}", self.base_port + i)
    }

    /// Send `signal` (`TERM`, `INT`, `KILL`) and wait for the exit, at most `limit`.
    pub fn signal_and_wait(mut self, signal: &str, limit: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args([&format!("-{signal}"), &pid]).status().expect("kill runs");
        assert!(sent.success(), "kill -{signal} {pid} failed");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "raftkv-server did not exit within {limit:?} of SIG{signal}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run the `raftkv` CLI with `args` and `stdin`.
pub fn cli(args: &[&str], stdin: &str) -> Output {
    cli_named(env!("CARGO_BIN_EXE_raftkv"), args, stdin)
}

/// Run the CLI binary at `program` (a copy under another name, say).
pub fn cli_named(program: impl AsRef<std::ffi::OsStr>, args: &[&str], stdin: &str) -> Output {
    let (transport, _) = backend();
    let mut child = Command::new(program)
        .args(args)
        .args(["--transport", &transport])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("raftkv starts");
    child.stdin.take().expect("piped stdin").write_all(stdin.as_bytes()).expect("stdin written");
    child.wait_with_output().expect("raftkv finishes")
}

/// Stdout of `out` as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `method path` against the HTTP server at `addr`: (status code, body).
pub fn http(addr: &str, method: &str, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout set");
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .expect("request written");
    let mut raw = String::new();
    std::io::Read::read_to_string(&mut stream, &mut raw).expect("response read");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header end in {raw:?}"));
    let code =
        head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("bad status line in {head:?}"));
    (code, body.to_string())
}

/// Poll `GET path` on `addr` until it answers `code`; panics after `limit`.
pub fn wait_for_status(addr: &str, path: &str, code: u16, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let (got, body) = http(addr, "GET", path);
        if got == code {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} on {addr} answered {got}, not {code}, for {limit:?}: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Run `raftkv-server` with `args` (a role and its flags) on the backend
/// under test, with its data in `dir` (created if missing), and wait for it
/// to exit by itself; it is killed and the test fails after `limit`.
pub fn run_to_exit(dir: &Path, args: &[&str], limit: Duration) -> Output {
    std::fs::create_dir_all(dir).expect("data dir created");
    let (transport, storage) = backend();
    let mut child = Command::new(env!("CARGO_BIN_EXE_raftkv-server"))
        .args(args)
        .args(["--data-dir", &dir.display().to_string()])
        .args(["--transport", &transport, "--storage", &storage, "--log", "warn"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("raftkv-server starts");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "raftkv-server {args:?} was still running after {limit:?}; stdout: {}; stderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// Stderr of `out` as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every file under `dir` (recursively) with its bytes, to compare a data
/// dir before and after something that must not touch it.
pub fn files_under(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("readable dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("readable file");
                files.insert(path, bytes);
            }
        }
    }
    files
}

impl Dev {
    /// Read the process's stderr until a line contains `needle`, and return
    /// that line; panics after `limit` (or if stderr was already taken).
    pub fn stderr_line(&mut self, needle: &str, limit: Duration) -> String {
        let stderr = self.child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!("no stderr line with {needle:?} within {limit:?}; stderr so far: {seen:?}"),
            }
        }
    }
}
