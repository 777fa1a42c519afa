//! Crash-consistency test for durable [`LogStore`]s: a child process appends
//! and reports every acknowledged write; the parent kills it with SIGKILL at
//! random moments, reopens the store and checks that every acknowledged entry
//! and hard state survived, intact, and that appends continue.
//!
//! A backend's test calls [`crash_test_entry`] from one `#[test]`: run
//! normally it is the parent; re-run by the parent with
//! [`CHILD_ENV`] set it becomes the child.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::raft::{Entry, EntryPayload, HardState};
use crate::rng::DetRng;
use crate::storage::{LogStore, LogWrite, StorageError};
use crate::types::{LogIndex, NodeId, Term};

/// Environment variable naming the store directory when running as the child.
pub const CHILD_ENV: &str = "RAFTKV_CRASH_CHILD_DIR";

/// Shape of a crash test.
#[derive(Clone, Debug)]
pub struct CrashTestConfig {
    /// SIGKILLs to deliver.
    pub kills: usize,
    /// Seeds the kill moments.
    pub seed: u64,
    /// Entries per append.
    pub batch: usize,
    /// Payload bytes per entry.
    pub payload: usize,
    /// Longest a child runs before it is killed.
    pub max_run: Duration,
}

impl Default for CrashTestConfig {
    fn default() -> Self {
        Self { kills: 50, seed: 1, batch: 8, payload: 256, max_run: Duration::from_millis(150) }
    }
}

/// What a crash test saw.
#[derive(Clone, Debug, Default)]
pub struct CrashReport {
    /// Kills delivered.
    pub kills: usize,
    /// Highest index acknowledged by any child.
    pub max_acked: u64,
    /// Kills that landed after at least one acknowledged write in that run.
    pub kills_mid_write: usize,
}

/// The payload every test entry at `index` carries: a pattern derived from the index.
#[must_use]
pub fn payload_for(index: LogIndex, len: usize) -> Bytes {
    let mut rng = DetRng::new(index.0);
    (0..len).map(|_| (rng.next_u64() & 0xff) as u8).collect::<Vec<u8>>().into()
}

fn batch_after(last: LogIndex, term: Term, batch: usize, payload: usize) -> Vec<Entry> {
    (1..=batch as u64)
        .map(|k| {
            let index = LogIndex(last.0 + k);
            Entry { term, index, payload: EntryPayload::Command(payload_for(index, payload)) }
        })
        .collect()
}

/// Child side: append batches forever, printing `ack <index> <term>` once
/// each batch (entries and hard state in one write) is durable.
pub async fn run_child(log: &dyn LogStore, batch: usize, payload: usize) -> Result<(), StorageError> {
    let state = log.state().await?;
    let mut last = state.last_index;
    let term = state.hard_state.term.next();
    let mut out = std::io::stdout();
    loop {
        let entries = batch_after(last, term, batch, payload);
        let next_last = LogIndex(last.0 + batch as u64);
        let hard_state = HardState { term, vote: Some(NodeId(1)), commit: next_last };
        log.write(LogWrite { truncate_after: None, entries, hard_state: Some(hard_state) }).await?;
        last = next_last;
        let _ = writeln!(out, "ack {} {}", last.0, term.0);
        let _ = out.flush();
    }
}

/// Check a reopened store against the highest acknowledged (index, term),
/// then append one more batch. Returns a description of the first problem.
pub async fn verify(log: &dyn LogStore, acked: Option<(u64, u64)>, cfg: &CrashTestConfig) -> Result<(), String> {
    let state = log.state().await.map_err(|e| format!("state after crash: {e}"))?;
    if let Some((index, term)) = acked {
        if state.last_index.0 < index {
            return Err(format!("acknowledged index {index} lost: store ends at {}", state.last_index));
        }
        if state.hard_state.term.0 < term {
            return Err(format!("acknowledged hard state term {term} lost: store has {}", state.hard_state.term));
        }
        let entries = log
            .entries(state.first_index, LogIndex(index + 1))
            .await
            .map_err(|e| format!("reading 1..={index} after crash: {e}"))?;
        for e in &entries {
            let EntryPayload::Command(data) = &e.payload else {
                return Err(format!("entry {} came back as a blank", e.index));
            };
            if *data != payload_for(e.index, cfg.payload) {
                return Err(format!("entry {} came back with different bytes", e.index));
            }
        }
    }
    let term = state.hard_state.term.next();
    let entries = batch_after(state.last_index, term, cfg.batch, cfg.payload);
    let hard_state = HardState { term, vote: Some(NodeId(1)), commit: state.last_index };
    log.write(LogWrite { truncate_after: None, entries, hard_state: Some(hard_state) })
        .await
        .map_err(|e| format!("append after crash: {e}"))
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread().enable_time().build() {
        Ok(rt) => rt,
        Err(e) => panic!("cannot build a tokio runtime: {e}"),
    }
}

fn parse_ack(line: &str) -> Option<(u64, u64)> {
    let mut parts = line.strip_prefix("ack ")?.split_whitespace();
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// One `#[test]` of a backend runs this. As the parent (no [`CHILD_ENV`]) it
/// re-runs the current test binary filtered to `test_name` as the child,
/// kills it `cfg.kills` times and verifies the store with `open` after each
/// kill. As the child it opens the store in the directory from [`CHILD_ENV`]
/// and appends until killed.
///
/// # Panics
/// As the parent, when an acknowledged write is lost or damaged, or the
/// store fails to reopen; the message says which kill and what was wrong.
pub fn crash_test_entry<S, O, F>(test_name: &str, cfg: &CrashTestConfig, dir: &Path, open: O) -> CrashReport
where
    S: LogStore,
    O: Fn(PathBuf) -> F,
    F: std::future::Future<Output = Result<S, StorageError>>,
{
    if let Ok(child_dir) = std::env::var(CHILD_ENV) {
        let result = runtime().block_on(async {
            let log = open(PathBuf::from(child_dir)).await?;
            run_child(&log, cfg.batch, cfg.payload).await
        });
        eprintln!("crash child stopped: {result:?}");
        std::process::exit(2);
    }
    #[allow(clippy::expect_used)]
    let exe = std::env::current_exe().expect("path of the test binary");
    let mut rng = DetRng::new(cfg.seed);
    let mut report = CrashReport::default();
    let mut acked: Option<(u64, u64)> = None;
    for kill in 0..cfg.kills {
        let mut child = match Command::new(&exe)
            .args(["--exact", test_name, "--nocapture", "--test-threads", "1"])
            .env(CHILD_ENV, dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => panic!("kill {kill}: cannot start the child: {e}"),
        };
        let Some(stdout) = child.stdout.take() else { panic!("kill {kill}: child has no stdout") };
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(ack) = parse_ack(&line) {
                    let _ = tx.send(ack);
                }
            }
        });
        // Let the child get going (first ack), then kill it at a random moment.
        let start = Instant::now();
        let first = rx.recv_timeout(Duration::from_secs(20));
        let wait_ms = rng.range_inclusive(0, u64::try_from(cfg.max_run.as_millis()).unwrap_or(150));
        std::thread::sleep(Duration::from_millis(wait_ms));
        let _ = child.kill();
        let _ = child.wait();
        let _ = reader.join();
        let mut run_acks = first.ok().into_iter().collect::<Vec<_>>();
        run_acks.extend(rx.try_iter());
        if let Some(&max) = run_acks.iter().max() {
            report.kills_mid_write += 1;
            acked = Some(acked.map_or(max, |a| a.max(max)));
        } else if start.elapsed() >= Duration::from_secs(20) {
            panic!("kill {kill}: the child never acknowledged a write");
        }
        report.kills += 1;
        // A fresh runtime per check: dropping it ends every task the store
        // spawned, so the next open finds the files free.
        let rt = runtime();
        let checked = rt.block_on(async {
            let log = open(dir.to_path_buf()).await.map_err(|e| format!("reopen after kill: {e}"))?;
            verify(&log, acked, cfg).await?;
            log.state().await.map_err(|e| format!("state after verification: {e}"))
        });
        drop(rt);
        match checked {
            // The verification appended a batch at a new term: it counts as acknowledged.
            Ok(s) => acked = Some((s.last_index.0, s.hard_state.term.0)),
            Err(problem) => panic!("kill {kill} (seed {}): {problem}", cfg.seed),
        }
    }
    report.max_acked = acked.map_or(0, |a| a.0);
    report
}
