//! Server processes of a benchmark: spawned with their output in a log file,
//! killed when dropped; free loopback ports; resident memory from `/proc`.

use std::fs::File;
use std::net::{TcpListener, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A running server process.
pub struct Proc {
    pub name: String,
    pub addr: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Start `cmd` as `name`, its stdout and stderr going to `<dir>/<name>.log`.
    pub fn spawn(name: &str, addr: &str, mut cmd: Command, dir: &Path) -> Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("cloning a log file handle")?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {}", crate::process::display(&cmd)))?;
        Ok(Self { name: name.to_string(), addr: addr.to_string(), child, log })
    }

    /// Wait until the process accepts TCP connections on `addr`.
    pub fn wait_listening(&mut self, limit: Duration) -> Result<()> {
        let addr = self.addr.clone();
        let waited =
            wait_until_listening(&addr, limit, || match self.child.try_wait().context("waiting for a server")? {
                Some(status) => bail!("exited with {status} before listening"),
                None => Ok(()),
            });
        waited.with_context(|| format!("{}:\n{}", self.name, self.log_text()))
    }

    /// Whether it still runs (an error with its log if it exited).
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait().context("waiting for a server")? {
            bail!("{} exited with {status}:\n{}", self.name, self.log_text());
        }
        Ok(())
    }

    /// The last lines of its log.
    pub fn log_text(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `addr` every 20 ms until it accepts a TCP connection, for at most
/// `limit`; `alive` is asked first each time and ends the wait with its error
/// (the server exited).
pub fn wait_until_listening(addr: &str, limit: Duration, mut alive: impl FnMut() -> Result<()>) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        alive()?;
        let connected = addr
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_ok());
        if connected {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("did not listen on {addr} within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `VmRSS` of process `pid`, in bytes.
pub fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `n` loopback addresses whose ports were free a moment ago.
pub fn free_addrs(n: usize) -> Result<Vec<String>> {
    let listeners: Vec<TcpListener> =
        (0..n).map(|_| TcpListener::bind("127.0.0.1:0")).collect::<std::io::Result<_>>().context("binding a port")?;
    listeners.iter().map(|l| Ok(l.local_addr().context("a bound port")?.to_string())).collect()
}

/// Where benchmarks put their data: `$CARGO_TARGET_DIR` if set (and
/// creatable: a real disk, where `/tmp` may be a tmpfs), else the system
/// temp dir.
pub fn scratch_base() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(dir) if std::fs::create_dir_all(&dir).is_ok() => dir,
        _ => std::env::temp_dir(),
    }
}

/// A fresh directory for the servers' data under [`scratch_base`], removed when dropped.
pub fn data_root(what: &str) -> Result<tempfile::TempDir> {
    let base = scratch_base();
    tempfile::Builder::new().prefix(what).tempdir_in(&base).with_context(|| format!("a temp dir in {}", base.display()))
}

/// User + system CPU time of process `pid` so far (`/proc/<pid>/stat`,
/// assuming the usual 100 Hz clock tick).
pub fn cpu_of(pid: u32) -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(std::time::Duration::from_millis((utime + stime) * 10))
}
