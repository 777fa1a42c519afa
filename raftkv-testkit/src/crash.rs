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
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::Bytes;

use raftkv_core::raft::{Entry, EntryPayload, HardState, SnapshotMeta};
use raftkv_core::rng::DetRng;
use raftkv_core::storage::{LogStore, LogWrite, SnapshotStore, StorageError};
use raftkv_core::types::{GroupId, LogIndex, NodeId, Term};

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

// ---------------------------------------------------------------------------
// Several members, kill -9 and damaged copies.
//
// A damage test fills a storage directory with the logs, hard states, purges
// and snapshots of several members ([`write_members`], in the test process
// or in a child killed with SIGKILL by [`kill_members_child`]), then flips
// one byte at a time in copies of that directory ([`check_flips`]) and
// opens each copy: it must either refuse to open with
// [`StorageError::Corrupt`] naming the damaged file, or hold everything
// acknowledged ([`verify_members`]).

/// The members a damage test writes: two of one group and one of another.
pub const DAMAGE_MEMBERS: [(GroupId, NodeId); 3] =
    [(GroupId(1), NodeId(1)), (GroupId(1), NodeId(2)), (GroupId(2), NodeId(1))];

/// The log store and snapshot store of one member, as a damage test opens them.
pub type MemberStores = (Arc<dyn LogStore>, Arc<dyn SnapshotStore>);

/// Shape of the writes of [`write_members`].
#[derive(Clone, Copy, Debug)]
pub struct MembersWorkload {
    /// Entries per write.
    pub batch: usize,
    /// Payload bytes per entry.
    pub payload: usize,
    /// Each member takes a snapshot of its log and purges it every this
    /// many writes (member `k` after `k` more, so that they take turns).
    pub snapshot_every: u64,
    /// Bytes of each snapshot.
    pub snapshot_bytes: usize,
    /// Member 1 rewrites the last two entries of its log (a truncation and an
    /// append in one write, as a follower replacing a conflicting suffix)
    /// every this many writes.
    pub rewrite_every: u64,
}

impl Default for MembersWorkload {
    fn default() -> Self {
        Self { batch: 4, payload: 100, snapshot_every: 7, snapshot_bytes: 3000, rewrite_every: 5 }
    }
}

/// What one member was acknowledged to hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemberAck {
    /// Highest acknowledged last index.
    pub last: u64,
    /// Term of the highest acknowledged hard state (whose commit is `last`).
    pub term: u64,
    /// Highest acknowledged purge.
    pub purged: u64,
    /// Index of the latest finished snapshot.
    pub snapshot: u64,
}

/// The payload of entry `index` of member `member` (members differ, so an
/// entry read from the wrong log is noticed).
#[must_use]
pub fn member_payload(member: usize, index: u64, len: usize) -> Bytes {
    payload_for(LogIndex(index ^ ((member as u64 + 1) << 48)), len)
}

/// The contents of member `member`'s snapshot at `index`.
#[must_use]
pub fn member_snapshot(member: usize, index: u64, len: usize) -> Bytes {
    payload_for(LogIndex(index ^ ((member as u64 + 1) << 56)), len)
}

/// Entries `from..=to` of member `member`, as [`write_members`] writes them.
#[must_use]
pub fn member_entries(member: usize, from: u64, to: u64, term: Term, payload: usize) -> Vec<Entry> {
    (from..=to)
        .map(|i| Entry { term, index: LogIndex(i), payload: EntryPayload::Command(member_payload(member, i, payload)) })
        .collect()
}

/// One acknowledgement of [`write_members`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberEvent {
    /// Entries through `last` and the hard state of `term` (commit `last`) are durable.
    Written {
        /// Last index.
        last: u64,
        /// Hard state term.
        term: u64,
    },
    /// A snapshot at `index` finished.
    Snapshot(u64),
    /// The log was purged through `index`.
    Purged(u64),
}

impl MemberEvent {
    fn line(self, member: usize) -> String {
        match self {
            Self::Written { last, term } => format!("mack {member} written {last} {term}"),
            Self::Snapshot(index) => format!("mack {member} snapshot {index} 0"),
            Self::Purged(index) => format!("mack {member} purged {index} 0"),
        }
    }

    fn parse(line: &str) -> Option<(usize, Self)> {
        let mut parts = line.strip_prefix("mack ")?.split_whitespace();
        let member = parts.next()?.parse().ok()?;
        let kind = parts.next()?;
        let a = parts.next()?.parse().ok()?;
        let b = parts.next()?.parse().ok()?;
        let event = match kind {
            "written" => Self::Written { last: a, term: b },
            "snapshot" => Self::Snapshot(a),
            "purged" => Self::Purged(a),
            _ => return None,
        };
        Some((member, event))
    }

    /// `ack` once this event is acknowledged.
    pub fn apply(self, ack: &mut MemberAck) {
        match self {
            Self::Written { last, term } => {
                ack.last = ack.last.max(last);
                ack.term = ack.term.max(term);
            }
            Self::Snapshot(index) => ack.snapshot = ack.snapshot.max(index),
            Self::Purged(index) => ack.purged = ack.purged.max(index),
        }
    }
}

/// Writes to every member of `stores` concurrently (so that group commits
/// carry several members), `writes` writes each (`None`: until an error),
/// calling `acked(member, event)` as each write becomes durable. Each run
/// writes at the term after the stored one.
///
/// # Errors
/// The first error of a store.
pub async fn write_members(
    stores: &[MemberStores],
    writes: Option<u64>,
    work: MembersWorkload,
    acked: &(dyn Fn(usize, MemberEvent) + Sync),
) -> Result<(), StorageError> {
    let tasks = stores.iter().enumerate().map(|(member, (log, snapshots))| async move {
        let state = log.state().await?;
        let term = state.hard_state.term.next();
        let vote = Some(NodeId(member as u64 + 1));
        let mut last = state.last_index.0;
        let mut round = 0u64;
        while writes.is_none_or(|n| round < n) {
            round += 1;
            let mut write = LogWrite::default();
            let mut from = last + 1;
            if member == 1 && round.is_multiple_of(work.rewrite_every) && last >= state.first_index.0 + 2 {
                // Replace the last two entries (same contents) and append.
                write.truncate_after = Some(LogIndex(last - 2));
                from = last - 1;
            }
            let to = last + work.batch as u64;
            write.entries = member_entries(member, from, to, term, work.payload);
            write.hard_state = Some(HardState { term, vote, commit: LogIndex(to) });
            log.write(write).await?;
            last = to;
            acked(member, MemberEvent::Written { last, term: term.0 });
            if (round + member as u64).is_multiple_of(work.snapshot_every) {
                let meta = SnapshotMeta { last_index: LogIndex(last), last_term: term };
                let mut writer = snapshots.begin(meta).await?;
                writer.write(member_snapshot(member, last, work.snapshot_bytes)).await?;
                if writer.finish().await? {
                    acked(member, MemberEvent::Snapshot(last));
                }
                log.purge_through(LogIndex(last - 2)).await?;
                acked(member, MemberEvent::Purged(last - 2));
            }
        }
        Ok::<(), StorageError>(())
    });
    for result in futures::future::join_all(tasks).await {
        result?;
    }
    Ok(())
}

/// Why a store failed [`verify_members`].
#[derive(Debug)]
pub enum Damage {
    /// The store returned an error (for a damaged copy: it refused to open).
    Refused(StorageError),
    /// The store answered, but something acknowledged is missing or wrong.
    Wrong(String),
}

impl From<StorageError> for Damage {
    fn from(e: StorageError) -> Self {
        Self::Refused(e)
    }
}

async fn read_snapshot(snapshots: &dyn SnapshotStore) -> Result<Option<(SnapshotMeta, Vec<u8>)>, StorageError> {
    let Some((meta, mut reader)) = snapshots.open_latest().await? else { return Ok(None) };
    let mut data = Vec::new();
    while let Some(chunk) = reader.next_chunk(64 << 10).await? {
        data.extend_from_slice(&chunk);
    }
    Ok(Some((meta, data)))
}

/// Checks that every member holds what `acks` says was acknowledged: its
/// entries (all of them, contents included) through at least `last`, a
/// hard state of at least `term`, a purge point of at least `purged`, and a
/// latest snapshot (read to its end) of at least `snapshot` that covers the
/// purged entries. With `exact`, nothing unacknowledged may be there either
/// (after a clean close).
///
/// # Errors
/// [`Damage::Refused`] when a store call fails, [`Damage::Wrong`] when a
/// store answers with less (or other) than was acknowledged.
pub async fn verify_members(
    stores: &[MemberStores],
    acks: &[MemberAck],
    exact: bool,
    work: MembersWorkload,
) -> Result<(), Damage> {
    for (member, ((log, snapshots), ack)) in stores.iter().zip(acks).enumerate() {
        let wrong = |what: String| Damage::Wrong(format!("member {member}: {what} (acknowledged {ack:?})"));
        let state = log.state().await?;
        let (first, last, hs) = (state.first_index.0, state.last_index.0, state.hard_state);
        if last < ack.last || hs.term.0 < ack.term || first < ack.purged + 1 {
            return Err(wrong(format!("store holds {first}..={last}, hard state {hs:?}")));
        }
        if exact && (last != ack.last || hs.term.0 != ack.term || (ack.purged > 0 && first != ack.purged + 1)) {
            return Err(wrong(format!("store holds {first}..={last}, hard state {hs:?} after a clean close")));
        }
        if hs.commit.0 < ack.last.min(last) && hs.term.0 == ack.term {
            return Err(wrong(format!("hard state {hs:?} is older than the acknowledged one")));
        }
        let entries = log.entries(state.first_index, LogIndex(last + 1)).await?;
        for e in &entries {
            let expected = member_payload(member, e.index.0, work.payload);
            if e.payload != EntryPayload::Command(expected) || e.term > hs.term {
                return Err(wrong(format!("entry {} came back different", e.index)));
            }
        }
        let snapshot = read_snapshot(snapshots.as_ref()).await?;
        let snap_index = snapshot.as_ref().map_or(0, |(meta, _)| meta.last_index.0);
        if snap_index < ack.snapshot || snap_index + 1 < first {
            return Err(wrong(format!("latest snapshot ends at {snap_index} but the log starts at {first}")));
        }
        if let Some((meta, data)) = snapshot {
            if data != member_snapshot(member, meta.last_index.0, work.snapshot_bytes) {
                return Err(wrong(format!("snapshot {} came back different", meta.last_index)));
            }
        }
    }
    Ok(())
}

/// Child side of [`kill_members_child`]: writes to every member until killed.
fn members_child(open: &dyn Fn(PathBuf) -> OpenMembers, dir: PathBuf, work: MembersWorkload) -> ! {
    let result = runtime().block_on(async {
        let stores = open(dir).await?;
        let out = std::sync::Mutex::new(std::io::stdout());
        write_members(&stores, None, work, &|member, event| {
            let mut out = out.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = writeln!(out, "{}", event.line(member));
            let _ = out.flush();
        })
        .await
    });
    eprintln!("members child stopped: {result:?}");
    std::process::exit(2);
}

/// Environment variable naming the step a child process runs, when a test
/// runs several children one after another ([`kill_members_child`],
/// [`kill_after`]).
pub const CHILD_STEP_ENV: &str = "RAFTKV_CRASH_CHILD_STEP";

/// Whether this process is a child, and whether it runs `step`.
fn child_step(step: &str) -> Option<bool> {
    std::env::var_os(CHILD_ENV)?;
    Some(std::env::var(CHILD_STEP_ENV).is_ok_and(|s| s == step))
}

/// Re-runs the current test binary filtered to `test_name` as the child of `step`.
fn spawn_child(test_name: &str, step: &str, dir: &Path) -> std::process::Child {
    #[allow(clippy::expect_used)]
    let exe = std::env::current_exe().expect("path of the test binary");
    match Command::new(&exe)
        .args(["--exact", test_name, "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, dir)
        .env(CHILD_STEP_ENV, step)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("cannot start the child of step {step}: {e}"),
    }
}

/// Opens the stores of [`DAMAGE_MEMBERS`] in a storage directory.
pub type OpenMembers = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<MemberStores>, StorageError>>>>;

/// Runs [`write_members`] on the storage in `dir` in a child process (the
/// current test binary re-run filtered to `test_name`) and kills it with
/// SIGKILL once it has acknowledged `acks` events (a crash in the middle of
/// writing); returns what each member was acknowledged. Run as that child
/// ([`CHILD_ENV`] set), it writes until killed and never returns; run as the
/// child of another step, it returns at once (with nothing acknowledged).
///
/// # Panics
/// When the child cannot be started or acknowledges nothing for 60 s.
pub fn kill_members_child(
    test_name: &str,
    dir: &Path,
    acks: usize,
    work: MembersWorkload,
    open: &dyn Fn(PathBuf) -> OpenMembers,
) -> Vec<MemberAck> {
    const STEP: &str = "members";
    match (child_step(STEP), std::env::var(CHILD_ENV)) {
        (Some(true), Ok(child_dir)) => members_child(open, PathBuf::from(child_dir), work),
        (Some(_), _) => return vec![MemberAck::default(); DAMAGE_MEMBERS.len()],
        (None, _) => {}
    }
    let mut child = spawn_child(test_name, STEP, dir);
    let Some(stdout) = child.stdout.take() else { panic!("child has no stdout") };
    let mut result = vec![MemberAck::default(); DAMAGE_MEMBERS.len()];
    let mut seen = 0;
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(event) = MemberEvent::parse(&line) {
                let _ = tx.send(event);
            }
        }
    });
    while seen < acks {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok((member, event)) => {
                if let Some(ack) = result.get_mut(member) {
                    event.apply(ack);
                }
                seen += 1;
            }
            Err(e) => {
                let _ = child.kill();
                panic!("the child stopped acknowledging after {seen} of {acks} events: {e}");
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    // Acknowledgements read after the kill still happened before it.
    for (member, event) in rx.try_iter() {
        if let Some(ack) = result.get_mut(member) {
            event.apply(ack);
        }
    }
    result
}

/// Runs `work` on the storage directory `dir` in a child process (the
/// current test binary re-run filtered to `test_name`, as step `step`) and
/// kills it with SIGKILL once `work` has returned `Ok`, while it holds the
/// storage open: what `work` wrote is on disk as a crash right after it
/// leaves it. `work` returns what it opened (the storage and its stores):
/// it stays alive until the kill, as dropping it could close the storage
/// cleanly. Run as that child, it runs `work` and waits to be killed; as
/// the child of another step, it returns at once.
///
/// # Panics
/// When the child cannot be started, or stops (`work` failed) instead of
/// reporting that it is done, within 60 s.
pub fn kill_after(test_name: &str, step: &str, dir: &Path, work: &dyn Fn(PathBuf) -> ChildWork) {
    const DONE: &str = "child work done";
    match (child_step(step), std::env::var(CHILD_ENV)) {
        (Some(true), Ok(child_dir)) => {
            let rt = runtime();
            let result = rt.block_on(work(PathBuf::from(child_dir)));
            match result {
                Ok(_open) => {
                    println!("{DONE}");
                    let _ = std::io::stdout().flush();
                    // Keep the runtime and the stores alive until killed.
                    loop {
                        std::thread::park();
                    }
                }
                Err(e) => {
                    eprintln!("child work failed: {e}");
                    std::process::exit(2);
                }
            }
        }
        (Some(_), _) => return,
        (None, _) => {}
    }
    let mut child = spawn_child(test_name, step, dir);
    let Some(stdout) = child.stdout.take() else { panic!("child has no stdout") };
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.ends_with(DONE) {
                let _ = tx.send(());
            }
        }
    });
    let done = rx.recv_timeout(Duration::from_secs(60));
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    if let Err(e) = done {
        panic!("the child of step {step} did not finish its work: {e}");
    }
}

/// The work of a [`kill_after`] child: what it opened, kept alive until the kill.
pub type ChildWork = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Box<dyn std::any::Any>, StorageError>>>>;

/// Copies directory `from` (recursively) into a new directory `to`.
///
/// # Errors
/// Any I/O error.
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Every regular file under `dir`, relative to it, sorted.
///
/// # Errors
/// Any I/O error.
pub fn files_under(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                walk(root, &entry.path(), out)?;
            } else if let Ok(rel) = entry.path().strip_prefix(root) {
                out.push(rel.to_path_buf());
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
}

/// Byte positions to damage in a file of `len` bytes: every byte of the
/// ranges in `dense`, and every `stride`-th byte elsewhere (from an offset
/// chosen by `seed`), sorted.
#[must_use]
pub fn flip_positions(len: u64, dense: &[std::ops::Range<u64>], stride: u64, seed: u64) -> Vec<u64> {
    let mut out: Vec<u64> = dense.iter().flat_map(|r| r.start.min(len)..r.end.min(len)).collect();
    let stride = stride.max(1);
    out.extend((DetRng::new(seed).next_u64() % stride..len).step_by(usize::try_from(stride).unwrap_or(1)));
    out.sort_unstable();
    out.dedup();
    out
}

/// What [`check_flips`] saw.
#[derive(Clone, Debug, Default)]
pub struct FlipReport {
    /// Damaged copies that opened with everything acknowledged.
    pub intact: usize,
    /// Damaged copies that refused to open, naming the file.
    pub refused: usize,
}

/// For each `(file, positions)` of `plan` and each position, copies `dir`
/// to a fresh directory under `scratch`, flips the bits of that byte of the
/// file (relative to `dir`) and runs `check` on the copy. Each check must
/// pass, or fail with [`Damage::Refused`] holding a
/// [`StorageError::Corrupt`] whose text names the damaged file.
///
/// # Panics
/// On the first damaged copy that loses or changes something acknowledged,
/// or is refused with another error or one that does not name the file.
pub fn check_flips(
    dir: &Path,
    scratch: &Path,
    plan: &[(PathBuf, Vec<u64>)],
    check: &(dyn Fn(&Path) -> Result<(), Damage> + Sync),
) -> FlipReport {
    let jobs: Vec<(usize, &Path, u64)> = plan
        .iter()
        .enumerate()
        .flat_map(|(n, (file, positions))| positions.iter().map(move |&at| (n, file.as_path(), at)))
        .collect();
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get).min(8);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let report = std::sync::Mutex::new(FlipReport::default());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&(n, file, at)) = jobs.get(k) else { break };
                let refused = check_flip(dir, &scratch.join(format!("flip-{n}-{k}")), file, at, check);
                let mut report = report.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if refused {
                    report.refused += 1;
                } else {
                    report.intact += 1;
                }
            });
        }
    });
    report.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One damaged copy of [`check_flips`]; returns whether it was refused.
fn check_flip(
    dir: &Path,
    copy: &Path,
    file: &Path,
    at: u64,
    check: &(dyn Fn(&Path) -> Result<(), Damage> + Sync),
) -> bool {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if let Err(e) = copy_dir(dir, copy) {
        panic!("cannot copy {} to {}: {e}", dir.display(), copy.display());
    }
    let path = copy.join(file);
    let flipped = std::fs::read(&path).and_then(|mut bytes| {
        if let Some(byte) = usize::try_from(at).ok().and_then(|i| bytes.get_mut(i)) {
            *byte ^= 0xff;
        }
        std::fs::write(&path, &bytes)
    });
    if let Err(e) = flipped {
        panic!("cannot damage {}: {e}", path.display());
    }
    let outcome = check(copy);
    let _ = std::fs::remove_dir_all(copy);
    match outcome {
        Ok(()) => false,
        Err(Damage::Refused(e @ StorageError::Corrupt { .. })) if e.to_string().contains(&name) => true,
        Err(Damage::Refused(e)) => {
            panic!(
                "byte {at} of {} flipped: refused with an error that is not Corrupt naming {name}: {e:?}",
                file.display()
            )
        }
        Err(Damage::Wrong(what)) => panic!("byte {at} of {} flipped: opened without error but {what}", file.display()),
    }
}

/// A tmpfs of a given size mounted on a fresh directory, for full-disk
/// tests; unmounted (and the directory removed) when dropped.
#[derive(Debug)]
pub struct Tmpfs {
    dir: PathBuf,
}

/// Whether this process runs as root (its effective user id is 0).
#[must_use]
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
            .unwrap_or(false)
    })
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` bytes. Returns `None`, printing why, when
    /// not root (mounting needs it): the caller skips its test.
    ///
    /// # Panics
    /// As root, when the mount fails.
    #[must_use]
    pub fn mount(bytes: u64) -> Option<Self> {
        if !is_root() {
            eprintln!("SKIPPED: mounting a tmpfs for a full-disk test needs root");
            return None;
        }
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("raftkv-tmpfs-{}-{n}", std::process::id()));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        let status =
            Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"]).arg(&dir).status();
        match status {
            Ok(s) if s.success() => Some(Self { dir }),
            other => {
                let _ = std::fs::remove_dir(&dir);
                panic!("mount -t tmpfs on {} failed: {other:?}", dir.display())
            }
        }
    }

    /// Where it is mounted.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Fills the file system with a file of zeros (`filler`) until a write
    /// fails for want of space; returns its path.
    ///
    /// # Panics
    /// When a write fails for another reason.
    #[must_use]
    pub fn fill(&self) -> PathBuf {
        let path = self.dir.join("filler");
        let mut file = match std::fs::File::create(&path) {
            Ok(f) => f,
            Err(e) => panic!("cannot create {}: {e}", path.display()),
        };
        let chunk = vec![0u8; 64 << 10];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) || e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        // Byte-sized leftovers too.
        while file.write(&[0u8; 512]).is_ok_and(|n| n > 0) {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}
