//! External commands with a deadline: the docker tasks never wait on a child
//! process without a bound, and a command that overruns is killed and
//! reported with what it printed so far.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// What a finished (or killed) command did.
#[derive(Debug)]
pub struct Output {
    /// The exit status; `None` if it was killed at its deadline.
    pub status: Option<ExitStatus>,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl Output {
    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// A short account for an error message: how it ended and what it printed.
    pub fn describe(&self) -> String {
        let ended = match self.status {
            Some(s) => s.to_string(),
            None => "killed at its deadline".to_string(),
        };
        format!("{ended}\n--- stdout\n{}\n--- stderr\n{}", self.stdout.trim_end(), self.stderr.trim_end())
    }
}

/// `cmd` as a shell would show it, for messages.
pub fn display(cmd: &Command) -> String {
    let mut words = vec![cmd.get_program().to_string_lossy().into_owned()];
    words.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

fn reader(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Wait for `child` at most `limit`; kill it when the limit passes.
fn wait_bounded(child: &mut Child, limit: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().context("waiting for a child process")? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Run `cmd` with `input` on its stdin (none: stdin is empty), capturing its
/// output, for at most `limit`.
pub fn capture(cmd: &mut Command, input: Option<&str>, limit: Duration) -> Result<Output> {
    let shown = display(cmd);
    let mut child = cmd
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{shown}`"))?;
    let feeder = match (child.stdin.take(), input) {
        (Some(mut stdin), Some(text)) => {
            let text = text.to_string();
            // Dropping `stdin` at the end closes it: the command sees the end of its input.
            Some(std::thread::spawn(move || {
                let _ = stdin.write_all(text.as_bytes());
            }))
        }
        _ => None,
    };
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let status = wait_bounded(&mut child, limit)?;
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    Ok(Output { status, stdout, stderr })
}

/// Run `cmd` with `input` on its stdin until its stdout contains `marker`
/// (then kill it: for a program that would wait for more input), it exits,
/// or `limit` passes; whether the marker was seen, and the output.
pub fn capture_until(cmd: &mut Command, input: &str, marker: &str, limit: Duration) -> Result<(bool, Output)> {
    let shown = display(cmd);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{shown}`"))?;
    // Kept open until the end: a terminal session may end at end of input.
    let mut stdin = child.stdin.take();
    if let Some(pipe) = stdin.as_mut() {
        let _ = pipe.write_all(input.as_bytes());
        let _ = pipe.flush();
    }
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let out = child.stdout.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        })
    });
    let err = reader(child.stderr.take());
    let deadline = Instant::now() + limit;
    let mut stdout = Vec::new();
    let mut status = None;
    while Instant::now() < deadline {
        stdout.extend(rx.try_iter().flatten());
        if String::from_utf8_lossy(&stdout).contains(marker) {
            break;
        }
        if let Some(s) = child.try_wait().context("waiting for a child process")? {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    drop(stdin);
    if let Some(t) = out {
        let _ = t.join();
    }
    stdout.extend(rx.try_iter().flatten());
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    let stderr = err.join().unwrap_or_default();
    Ok((stdout.contains(marker), Output { status, stdout, stderr }))
}

/// Run `cmd` with `input`, for at most `limit`; its stdout if it exits with
/// status 0, otherwise an error naming the command and what it printed.
pub fn checked(cmd: &mut Command, input: Option<&str>, limit: Duration) -> Result<String> {
    let out = capture(cmd, input, limit)?;
    if !out.success() {
        bail!("`{}` failed: {}", display(cmd), out.describe());
    }
    Ok(out.stdout)
}

/// Run `cmd` with the terminal's stdin, stdout and stderr, for at most
/// `limit`; an error unless it exits with status 0.
pub fn inherit(cmd: &mut Command, limit: Duration) -> Result<()> {
    let shown = display(cmd);
    let mut child = cmd.spawn().with_context(|| format!("cannot start `{shown}`"))?;
    match wait_bounded(&mut child, limit)? {
        Some(s) if s.success() => Ok(()),
        Some(s) => bail!("`{shown}` failed: {s}"),
        None => bail!("`{shown}` did not finish within {limit:?} and was killed"),
    }
}
