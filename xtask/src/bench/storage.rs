//! `cargo xtask bench storage`: append throughput and latency of the durable
//! log stores (redb, SQLite) with fsync on, group commit under 16 concurrent
//! appenders, and the raw `write + fdatasync` latency of the same filesystem.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use raftkv_core::raft::{Entry, EntryPayload};
use raftkv_core::storage::LogStore;
use raftkv_core::{GroupId, LogIndex, NodeId, Term};
use raftkv_storage_redb::{RedbOptions, RedbStorage};
use raftkv_storage_sqlite::{SqliteOptions, SqliteStorage};

use crate::args::Flags;
use crate::bench::hist::Histogram;

const WORKER_THREADS: usize = 2;
const PAYLOAD_BYTES: usize = 256;
const BATCHES: [usize; 3] = [1, 16, 256];
const CONCURRENT_APPENDERS: u64 = 16;
/// Group-commit target: 16 appenders reach at least this many times the
/// entries/s of one appender (both with batches of one entry).
const GROUP_COMMIT_TARGET: f64 = 8.0;
/// Untimed appends before each measurement (creates the member's rows, warms caches).
const WARMUP_APPENDS: u64 = 5;

/// A storage backend under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Redb,
    Sqlite,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Redb => "redb",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// Arguments of `bench storage`.
pub struct StorageBenchArgs {
    duration: Duration,
    backends: Vec<Backend>,
}

impl StorageBenchArgs {
    pub fn parse(args: &[&str]) -> Result<Self> {
        let flags = Flags::parse(args, &["--duration-secs", "--backend"])?;
        let secs: f64 = flags.get("--duration-secs")?.unwrap_or(3.0);
        if !(secs.is_finite() && secs > 0.0 && secs < 86_400.0) {
            bail!("need a positive --duration-secs (under a day)");
        }
        let duration = Duration::from_secs_f64(secs);
        let backend: String = flags.get("--backend")?.unwrap_or_else(|| "all".to_string());
        let backends = match backend.as_str() {
            "redb" => vec![Backend::Redb],
            "sqlite" => vec![Backend::Sqlite],
            "all" => vec![Backend::Redb, Backend::Sqlite],
            other => bail!("unknown backend `{other}` (expected redb, sqlite or all)"),
        };
        Ok(Self { duration, backends })
    }
}

/// One open storage of either backend.
enum Storage {
    Redb(RedbStorage),
    Sqlite(SqliteStorage),
}

impl Storage {
    async fn open(backend: Backend, dir: &Path) -> Result<Self> {
        Ok(match backend {
            Backend::Redb => {
                Storage::Redb(RedbStorage::open(dir, RedbOptions::default()).await.context("open redb storage")?)
            }
            Backend::Sqlite => Storage::Sqlite(
                SqliteStorage::open(dir, SqliteOptions::default()).await.context("open sqlite storage")?,
            ),
        })
    }

    async fn member(&self, group: GroupId, node: NodeId) -> Result<Arc<dyn LogStore>> {
        Ok(match self {
            Storage::Redb(s) => Arc::new(s.member(group, node).await.context("open redb member")?.0),
            Storage::Sqlite(s) => Arc::new(s.member(group, node).await.context("open sqlite member")?.0),
        })
    }

    fn commits(&self) -> u64 {
        match self {
            Storage::Redb(s) => s.commits(),
            Storage::Sqlite(s) => s.commits(),
        }
    }

    async fn close(self) {
        match self {
            Storage::Redb(s) => drop(s),
            Storage::Sqlite(s) => s.close().await,
        }
    }
}

/// A fresh directory for one measurement, removed when dropped.
fn fresh_dir(base: &Path) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("raftkv-bench-storage-")
        .tempdir_in(base)
        .with_context(|| format!("create a temp dir in {}", base.display()))
}

/// Entries `first..first + n`, term 1, each a 256-byte command sharing one buffer.
fn entries(first: u64, n: usize, payload: &Bytes) -> Vec<Entry> {
    (first..first + n as u64)
        .map(|i| Entry { term: Term(1), index: LogIndex(i), payload: EntryPayload::Command(payload.clone()) })
        .collect()
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// What one appender measured.
struct Appended {
    appends: u64,
    entries: u64,
    hist: Histogram,
}

/// Appends batches of `batch` entries to `log` (starting after its warm-up)
/// until `deadline`; every append is timed.
async fn appender(log: Arc<dyn LogStore>, batch: usize, deadline: Instant) -> Result<Appended> {
    let payload = Bytes::from(vec![0x5Au8; PAYLOAD_BYTES]);
    let mut next = log.state().await.context("read log state")?.last_index.0 + 1;
    let mut out = Appended { appends: 0, entries: 0, hist: Histogram::default() };
    while Instant::now() < deadline {
        let batch_entries = entries(next, batch, &payload);
        let t0 = Instant::now();
        log.append(batch_entries).await.with_context(|| format!("append at index {next}"))?;
        out.hist.record(nanos(t0.elapsed()));
        out.appends += 1;
        out.entries += batch as u64;
        next += batch as u64;
    }
    Ok(out)
}

/// Untimed appends of single entries so the member exists on disk.
async fn warm_up(log: &Arc<dyn LogStore>) -> Result<()> {
    let payload = Bytes::from(vec![0x5Au8; PAYLOAD_BYTES]);
    for i in 1..=WARMUP_APPENDS {
        log.append(entries(i, 1, &payload)).await.context("warm-up append")?;
    }
    Ok(())
}

/// One measured row.
struct Row {
    label: String,
    appends: u64,
    entries: u64,
    elapsed: Duration,
    hist: Histogram,
    commits: u64,
}

impl Row {
    fn appends_per_sec(&self) -> f64 {
        self.appends as f64 / self.elapsed.as_secs_f64()
    }

    fn entries_per_sec(&self) -> f64 {
        self.entries as f64 / self.elapsed.as_secs_f64()
    }
}

/// One appender on a fresh storage, batches of `batch`.
async fn single(backend: Backend, base: &Path, batch: usize, duration: Duration) -> Result<Row> {
    let dir = fresh_dir(base)?;
    let storage = Storage::open(backend, dir.path()).await?;
    let log = storage.member(GroupId(1), NodeId(1)).await?;
    warm_up(&log).await?;
    let commits0 = storage.commits();
    let t0 = Instant::now();
    let out = appender(log, batch, t0 + duration).await?;
    let elapsed = t0.elapsed();
    let commits = storage.commits() - commits0;
    storage.close().await;
    Ok(Row {
        label: format!("1 appender, batch {batch}"),
        appends: out.appends,
        entries: out.entries,
        elapsed,
        hist: out.hist,
        commits,
    })
}

/// `CONCURRENT_APPENDERS` members of one fresh storage, each appending single entries.
async fn concurrent(backend: Backend, base: &Path, duration: Duration) -> Result<Row> {
    let dir = fresh_dir(base)?;
    let storage = Storage::open(backend, dir.path()).await?;
    let mut logs = Vec::new();
    for g in 1..=CONCURRENT_APPENDERS {
        let log = storage.member(GroupId(g), NodeId(1)).await?;
        warm_up(&log).await?;
        logs.push(log);
    }
    let commits0 = storage.commits();
    let t0 = Instant::now();
    let deadline = t0 + duration;
    let tasks: Vec<_> = logs.into_iter().map(|log| tokio::spawn(appender(log, 1, deadline))).collect();
    let mut row = Row {
        label: format!("{CONCURRENT_APPENDERS} appenders, batch 1"),
        appends: 0,
        entries: 0,
        elapsed: Duration::ZERO,
        hist: Histogram::default(),
        commits: 0,
    };
    for task in tasks {
        let out = task.await.context("appender task")??;
        row.appends += out.appends;
        row.entries += out.entries;
        row.hist.merge(&out.hist);
    }
    row.elapsed = t0.elapsed();
    row.commits = storage.commits() - commits0;
    storage.close().await;
    Ok(row)
}

/// Raw `write(256 B) + fdatasync` in a loop on a file in a fresh dir under `base`.
/// `append` grows the file (so the size must be synced too, like a log);
/// otherwise the same 256 bytes at offset 0 are overwritten.
fn raw_fsync(base: &Path, append: bool, duration: Duration) -> Result<(u64, Duration, Histogram)> {
    let dir = fresh_dir(base)?;
    let path = dir.path().join("fsync.bin");
    let mut file =
        OpenOptions::new().create(true).truncate(true).write(true).open(&path).context("create fsync file")?;
    let block = [0xA5u8; PAYLOAD_BYTES];
    if !append {
        file.write_all(&block)?;
        file.sync_all()?;
    }
    let mut hist = Histogram::default();
    let mut n = 0;
    let t0 = Instant::now();
    let deadline = t0 + duration;
    while Instant::now() < deadline {
        let t = Instant::now();
        if !append {
            file.seek(SeekFrom::Start(0))?;
        }
        file.write_all(&block).context("write")?;
        file.sync_data().context("sync_data")?;
        hist.record(nanos(t.elapsed()));
        n += 1;
    }
    Ok((n, t0.elapsed(), hist))
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

fn print_header() {
    println!(
        "| backend | workload                | appends/s | entries/s | p50 µs | p99 µs |  max µs | commits | entries/commit |"
    );
    println!(
        "|---------|-------------------------|----------:|----------:|-------:|-------:|--------:|--------:|---------------:|"
    );
}

fn print_row(backend: Backend, row: &Row) {
    let per_commit = if row.commits == 0 { 0.0 } else { row.entries as f64 / row.commits as f64 };
    println!(
        "| {:<7} | {:<23} | {:>9.0} | {:>9.0} | {:>6.0} | {:>6.0} | {:>7.0} | {:>7} | {:>14.1} |",
        backend.name(),
        row.label,
        row.appends_per_sec(),
        row.entries_per_sec(),
        us(row.hist.quantile(0.50)),
        us(row.hist.quantile(0.99)),
        us(row.hist.max()),
        row.commits,
        per_commit
    );
}

pub fn run(args: &StorageBenchArgs) -> Result<()> {
    let base = crate::cluster::procs::scratch_base();
    let secs = args.duration.as_secs_f64();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(WORKER_THREADS).enable_all().build()?;
    println!(
        "bench storage: fsync on (SyncMode::Always), {PAYLOAD_BYTES}-byte entries, term 1, contiguous indices; \
         fresh temp dir per row under {}; {WORKER_THREADS} tokio worker threads; {secs:.1}s per row \
         (after {WARMUP_APPENDS} untimed appends per member)",
        base.display()
    );
    println!();
    print_header();
    // (backend, single batch-1 entries/s, concurrent row)
    let mut group_commit = Vec::new();
    for &backend in &args.backends {
        let mut batch1 = None;
        for batch in BATCHES {
            let row = rt.block_on(single(backend, &base, batch, args.duration))?;
            print_row(backend, &row);
            if batch == 1 {
                batch1 = Some(row.entries_per_sec());
            }
        }
        let row = rt.block_on(concurrent(backend, &base, args.duration))?;
        print_row(backend, &row);
        group_commit.push((backend, batch1.unwrap_or(0.0), row));
    }
    drop(rt);

    println!();
    println!("Group commit ({CONCURRENT_APPENDERS} appenders on one storage vs 1 appender, batch 1; target ≥ {GROUP_COMMIT_TARGET:.0}×):");
    println!();
    println!("| backend | 1 appender entries/s | {CONCURRENT_APPENDERS} appenders entries/s | ratio | commits | appends/commit | target met |");
    println!(
        "|---------|---------------------:|----------------------:|------:|--------:|---------------:|:----------:|"
    );
    for (backend, single, row) in &group_commit {
        let ratio = if *single > 0.0 { row.entries_per_sec() / single } else { 0.0 };
        let per_commit = if row.commits == 0 { 0.0 } else { row.appends as f64 / row.commits as f64 };
        println!(
            "| {:<7} | {:>20.0} | {:>21.0} | {:>4.1}× | {:>7} | {:>14.1} | {:^10} |",
            backend.name(),
            single,
            row.entries_per_sec(),
            ratio,
            row.commits,
            per_commit,
            if ratio >= GROUP_COMMIT_TARGET { "yes" } else { "NO" }
        );
    }

    println!();
    println!("Raw disk: write {PAYLOAD_BYTES} B + File::sync_data in a loop, same filesystem ({}):", base.display());
    println!();
    println!("| mode                         | fsyncs/s | p50 µs | p99 µs |  max µs |");
    println!("|------------------------------|---------:|-------:|-------:|--------:|");
    for (append, label) in [(true, "append 256 B + sync_data"), (false, "overwrite 256 B + sync_data")] {
        let (n, elapsed, hist) = raw_fsync(&base, append, args.duration)?;
        println!(
            "| {:<28} | {:>8.0} | {:>6.0} | {:>6.0} | {:>7.0} |",
            label,
            n as f64 / elapsed.as_secs_f64(),
            us(hist.quantile(0.50)),
            us(hist.quantile(0.99)),
            us(hist.max())
        );
    }
    Ok(())
}
