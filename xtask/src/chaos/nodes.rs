//! The chaos run's server processes: each `raftkv-server` runs in its own
//! namespace (`ip netns exec` replaces itself with the server, so the pid
//! is the server's), appends its output to one log file across restarts,
//! and can be killed with SIGKILL, paused with SIGSTOP, resumed, restarted
//! on its data directory, or stopped with SIGTERM.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Which Raft group a node belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// The controller group.
    Ctrl,
    /// ShardKV group `gid`.
    Kv(u64),
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ctrl => write!(f, "controllers"),
            Self::Kv(g) => write!(f, "group {g}"),
        }
    }
}

/// One server.
pub struct Node {
    /// `ctrl-1`, `g1-2`, ….
    pub name: String,
    pub role: Role,
    /// Its member id in its group (1-based).
    pub me: u64,
    pub data: PathBuf,
    pub log: PathBuf,
    netns: String,
    args: Vec<String>,
    binary: PathBuf,
    child: Option<Child>,
    paused: bool,
    /// Times it was started.
    pub starts: u32,
}

impl Node {
    pub fn new(name: String, role: Role, me: u64, netns: String, binary: &Path, args: Vec<String>, dir: &Path) -> Self {
        Self {
            data: dir.join(&name),
            log: dir.join(format!("{name}.log")),
            name,
            role,
            me,
            netns,
            args,
            binary: binary.to_path_buf(),
            child: None,
            paused: false,
            starts: 0,
        }
    }

    /// Start it (again) on its data directory.
    pub fn start(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("{} is already running", self.name);
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let err = log.try_clone().context("cloning a log file handle")?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns]).arg(&self.binary).args(&self.args).arg("--data-dir").arg(&self.data);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {}", crate::process::display(&cmd)))?;
        self.child = Some(child);
        self.paused = false;
        self.starts += 1;
        Ok(())
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn signal(&self, sig: &str) -> Result<()> {
        let Some(pid) = self.pid() else { bail!("{} is not running", self.name) };
        crate::process::checked(Command::new("kill").args([sig, &pid.to_string()]), None, Duration::from_secs(5))?;
        Ok(())
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().with_context(|| format!("killing {}", self.name))?;
            child.wait().with_context(|| format!("reaping {}", self.name))?;
        }
        self.paused = false;
        Ok(())
    }

    /// SIGSTOP.
    pub fn pause(&mut self) -> Result<()> {
        self.signal("-STOP")?;
        self.paused = true;
        Ok(())
    }

    /// SIGCONT.
    pub fn resume(&mut self) -> Result<()> {
        if self.paused {
            self.signal("-CONT")?;
            self.paused = false;
        }
        Ok(())
    }

    /// SIGTERM and wait up to `limit` for a clean exit; an error if it did
    /// not exit cleanly (it is killed then).
    pub fn stop(&mut self, limit: Duration) -> Result<()> {
        self.resume()?;
        let Some(mut child) = self.child.take() else { return Ok(()) };
        let pid = child.id().to_string();
        crate::process::checked(Command::new("kill").args(["-TERM", &pid]), None, Duration::from_secs(5))?;
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().context("waiting for a server")? {
                if !status.success() {
                    bail!("{} exited with {status} on SIGTERM", self.name);
                }
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{} did not exit within {limit:?} of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// An error if it exited by itself (a crash).
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(child) = &mut self.child {
            if let Some(status) = child.try_wait().context("waiting for a server")? {
                self.child = None;
                bail!("{} exited by itself with {status}", self.name);
            }
        }
        Ok(())
    }

    /// Lines of its output that show a panic or a corruption report.
    pub fn alarming_lines(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter(|l| {
                let l = l.to_ascii_lowercase();
                l.contains("panicked") || l.contains("corrupt") || l.contains("checksum")
            })
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.resume();
        let _ = self.kill();
    }
}
