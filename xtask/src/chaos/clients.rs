//! The chaos run's clients: concurrent clerks running Get, Put, Append and
//! Delete on a small, rotating set of keys, each operation recorded (call;
//! return with a Get's value; definite failure; or unknown when the clerk
//! gave up). Keys rotate every few seconds so that each key's history stays
//! small enough for the linearizability search.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftkv_core::client::{ClerkError, KvClerk};
use raftkv_testkit::linearizability::{KvInput, Recorder};

use crate::rng::Rng;

/// Keys in use at a time.
pub const ACTIVE_KEYS: u64 = 8;
/// How long one set of keys is used.
pub const KEY_LIFETIME: Duration = Duration::from_secs(6);

/// How long a client's clerk retries one operation before giving up (the
/// outcome is then unknown). Shorter than most faults, so that histories
/// hold operations of unknown outcome.
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(3);

/// Makes clerks (each with a fresh client id).
pub type Clerks = Arc<dyn Fn() -> KvClerk + Send + Sync>;

/// What one client saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    pub ok: u64,
    pub failed: u64,
    pub unknown: u64,
}

/// Shared by the clients.
pub struct Workload {
    pub recorder: Recorder,
    pub stop: AtomicBool,
    started: Instant,
    /// Numbers the recorded clients and the appended tokens.
    next: AtomicU64,
}

impl Workload {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            recorder: Recorder::new(),
            stop: AtomicBool::new(false),
            started: Instant::now(),
            next: AtomicU64::new(1),
        })
    }

    fn next(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// The key a client uses now for draw `x`, and whether the key is in
    /// the first half of its life.
    fn key(&self, x: u64) -> (Bytes, bool) {
        let ms = self.started.elapsed().as_millis();
        let life = KEY_LIFETIME.as_millis();
        (Bytes::from(format!("k{}.{}", ms / life, x % ACTIVE_KEYS)), ms % life < life / 2)
    }
}

/// Run one client until the workload stops, an operation every few ms: in
/// the first half of a key's life 30 % Get, 45 % Append, 15 % Put, 10 %
/// Delete; in the second half only Get and Append (so that the appends of
/// the second half must all be in the key's final value). After an unknown outcome it goes on as
/// a new client (a new clerk), as a real client would after a timeout.
pub async fn client(work: Arc<Workload>, clerks: Clerks, seed: u64) -> Counts {
    let mut rng = Rng(seed | 1);
    let mut clerk = clerks();
    let mut me = work.next();
    let mut counts = Counts::default();
    while !work.stop.load(Ordering::Relaxed) {
        let x = rng.next();
        let (key, young) = work.key(x >> 8);
        let input = match (x % 100, young) {
            (0..=29, _) => KvInput::Get,
            (30..=74, _) | (_, false) => KvInput::Append(Bytes::from(format!("a{};", work.next()))),
            (75..=89, true) => KvInput::Put(Bytes::from(format!("p{};", work.next()))),
            (_, true) => KvInput::Delete,
        };
        let op = work.recorder.call(me, key.clone(), input.clone());
        let result = match input {
            KvInput::Get => clerk.get(key).await,
            KvInput::Append(v) => clerk.append(key, v).await.map(|()| None),
            KvInput::Put(v) => clerk.put(key, v).await.map(|()| None),
            KvInput::Delete => clerk.delete(key).await.map(|()| None),
        };
        match result {
            Ok(value) => {
                work.recorder.returned(op, value);
                counts.ok += 1;
            }
            Err(ClerkError::Invalid(_)) => {
                work.recorder.failed(op);
                counts.failed += 1;
            }
            Err(_) => {
                counts.unknown += 1;
                clerk = clerks();
                me = work.next();
            }
        }
        tokio::time::sleep(Duration::from_millis(2 + rng.next() % 10)).await;
    }
    counts
}

/// Read every key of the history once more, after healing, as one more
/// recorded client; an error names a key that could not be read.
pub async fn final_reads(work: &Workload, clerks: &Clerks) -> anyhow::Result<usize> {
    let mut keys: Vec<Bytes> = work.recorder.operations().into_iter().map(|o| o.key).collect();
    keys.sort();
    keys.dedup();
    let mut clerk = clerks();
    let me = work.next();
    for key in &keys {
        let op = work.recorder.call(me, key.clone(), KvInput::Get);
        match clerk.get(key.clone()).await {
            Ok(value) => work.recorder.returned(op, value),
            Err(e) => anyhow::bail!("the final read of {key:?} failed after healing: {e}"),
        }
    }
    Ok(keys.len())
}
