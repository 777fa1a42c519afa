//! Recording client histories: each operation's input, output and the
//! interval in which it ran.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

/// One key-value operation as a client issued it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvInput {
    /// Read the key.
    Get,
    /// Set the key.
    Put(Bytes),
    /// Append to the key's value.
    Append(Bytes),
    /// Remove the key.
    Delete,
}

/// What became of an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It returned at `at`; a Get returned `value` (`None`: the key was missing).
    Returned {
        /// Time of the return.
        at: u64,
        /// A Get's result; `None` for writes and for a missing key.
        value: Option<Bytes>,
    },
    /// The client gave up without an answer: it may or may not have taken
    /// effect, at any time after its call.
    Unknown,
}

/// One operation of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The client that issued it (operations of one client never overlap).
    pub client: u64,
    /// The key.
    pub key: Bytes,
    /// What it asked for.
    pub input: KvInput,
    /// Time of the call.
    pub call: u64,
    /// What became of it.
    pub outcome: Outcome,
}

#[derive(Default)]
struct Log {
    ops: Vec<Option<Operation>>,
    /// Last time handed out: times are strictly increasing in record order.
    last: u64,
}

impl Log {
    /// A time for an event recorded now: the clock, but after every time
    /// handed out before. On a simulator's paused clock many events share an
    /// instant; their recording order is their real order (a client records a
    /// return before its next call), and this keeps it.
    fn stamp(&mut self, clock: u64) -> u64 {
        self.last = clock.max(self.last + 1);
        self.last
    }
}

/// A thread-safe recorder of operations; clones share one history. Times
/// are nanoseconds on the clock of the caller's choosing (in the simulator:
/// virtual time).
#[derive(Clone, Default)]
pub struct Recorder {
    log: Arc<Mutex<Log>>,
    epoch: Option<tokio::time::Instant>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").field("ops", &self.lock().ops.len()).finish()
    }
}

/// Handle of an operation that was called and has not finished yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending(usize);

impl Recorder {
    /// An empty history timed by tokio's clock (virtual in the simulator),
    /// from now.
    #[must_use]
    pub fn new() -> Self {
        Self { log: Arc::default(), epoch: Some(tokio::time::Instant::now()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> u64 {
        self.epoch.map_or(0, |e| u64::try_from(e.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// `client` calls `input` on `key` now.
    pub fn call(&self, client: u64, key: Bytes, input: KvInput) -> Pending {
        let clock = self.now();
        let mut log = self.lock();
        let call = log.stamp(clock);
        log.ops.push(Some(Operation { client, key, input, call, outcome: Outcome::Unknown }));
        Pending(log.ops.len() - 1)
    }

    /// The operation returned now (with a Get's value).
    pub fn returned(&self, op: Pending, value: Option<Bytes>) {
        let clock = self.now();
        let mut log = self.lock();
        let at = log.stamp(clock);
        if let Some(Some(o)) = log.ops.get_mut(op.0) {
            o.outcome = Outcome::Returned { at, value };
        }
    }

    /// The operation certainly did not take effect (it was refused before
    /// being proposed): it is left out of the history.
    pub fn failed(&self, op: Pending) {
        if let Some(slot) = self.lock().ops.get_mut(op.0) {
            *slot = None;
        }
    }

    /// The recorded history (operations whose outcome is unknown included).
    #[must_use]
    pub fn operations(&self) -> Vec<Operation> {
        self.lock().ops.iter().flatten().cloned().collect()
    }

    /// Add a finished operation directly (hand-built histories).
    pub fn push(&self, op: Operation) {
        self.lock().ops.push(Some(op));
    }
}
