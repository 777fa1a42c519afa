//! The test state machine of the Raft lab: it records every applied command
//! into a view the tester shares, and checks that all members agree.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::{Buf, BufMut, Bytes, BytesMut};

use raftkv_core::state_machine::{Committed, SnapshotImage, StateMachine, StateMachineError};
use raftkv_core::storage::SnapshotReader;
use raftkv_core::types::LogIndex;

/// Encode a numeric test command.
#[must_use]
pub fn cmd(v: u64) -> Bytes {
    Bytes::copy_from_slice(&v.to_le_bytes())
}

/// Decode a numeric test command (`None` if it is not 8 bytes).
#[must_use]
pub fn cmd_value(b: &Bytes) -> Option<u64> {
    let arr: [u8; 8] = b.as_ref().try_into().ok()?;
    Some(u64::from_le_bytes(arr))
}

#[derive(Default)]
struct ViewState {
    /// Per member: index → command, as the tester believes it applied.
    logs: BTreeMap<usize, BTreeMap<LogIndex, Bytes>>,
    errors: Vec<String>,
}

/// What every member applied, shared by the members' state machines and the tester.
#[derive(Clone, Default)]
pub struct AppliedView {
    inner: Arc<Mutex<ViewState>>,
}

impl std::fmt::Debug for AppliedView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppliedView").finish_non_exhaustive()
    }
}

impl AppliedView {
    fn lock(&self) -> MutexGuard<'_, ViewState> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many members applied `index`, and the command there. Records an
    /// error if members disagree.
    #[must_use]
    pub fn n_committed(&self, index: LogIndex) -> (usize, Option<Bytes>) {
        let mut st = self.lock();
        let mut count = 0;
        let mut value: Option<Bytes> = None;
        let mut disagreement = None;
        for (member, log) in &st.logs {
            if let Some(v) = log.get(&index) {
                if let Some(prev) = &value {
                    if prev != v {
                        disagreement = Some(format!("members disagree at index {index} (member {member})"));
                    }
                }
                count += 1;
                value = Some(v.clone());
            }
        }
        if let Some(d) = disagreement {
            st.errors.push(d);
        }
        (count, value)
    }

    /// Apply-order or agreement errors seen so far.
    #[must_use]
    pub fn errors(&self) -> Vec<String> {
        self.lock().errors.clone()
    }

    /// Highest index member `i` applied.
    #[must_use]
    pub fn last_applied(&self, member: usize) -> LogIndex {
        self.lock().logs.get(&member).and_then(|l| l.keys().next_back().copied()).unwrap_or_default()
    }

    fn record(&self, member: usize, index: LogIndex, command: &Bytes) {
        let mut st = self.lock();
        let conflict = st.logs.iter().find(|(_, log)| log.get(&index).is_some_and(|v| v != command)).map(|(m, _)| *m);
        if let Some(other) = conflict {
            st.errors.push(format!("member {member} applied a different command at index {index} than member {other}"));
        }
        st.logs.entry(member).or_default().insert(index, command.clone());
    }

    fn reset(&self, member: usize, log: BTreeMap<LogIndex, Bytes>) {
        self.lock().logs.insert(member, log);
    }

    fn error(&self, e: String) {
        self.lock().errors.push(e);
    }
}

/// A state machine that records applied commands into an [`AppliedView`].
/// Its snapshot holds every command applied so far (as the lab's does).
#[derive(Debug)]
pub struct RecordingStateMachine {
    member: usize,
    view: AppliedView,
    applied: BTreeMap<LogIndex, Bytes>,
    last: LogIndex,
}

impl RecordingStateMachine {
    /// A fresh incarnation of member `member`.
    #[must_use]
    pub fn new(member: usize, view: AppliedView) -> Self {
        Self { member, view, applied: BTreeMap::new(), last: LogIndex(0) }
    }
}

#[async_trait]
impl StateMachine for RecordingStateMachine {
    type Response = LogIndex;

    async fn apply(&mut self, batch: Vec<Committed>) -> Result<Vec<LogIndex>, StateMachineError> {
        let mut out = Vec::with_capacity(batch.len());
        for c in batch {
            if c.index <= self.last {
                self.view.error(format!("member {} applied index {} after {}", self.member, c.index, self.last));
            }
            self.last = c.index;
            self.view.record(self.member, c.index, &c.command);
            self.applied.insert(c.index, c.command);
            out.push(c.index);
        }
        Ok(out)
    }

    async fn snapshot(&mut self) -> Result<Box<dyn SnapshotImage>, StateMachineError> {
        let mut buf = BytesMut::new();
        buf.put_u64_le(self.last.0);
        buf.put_u64_le(self.applied.len() as u64);
        for (index, command) in &self.applied {
            buf.put_u64_le(index.0);
            buf.put_u32_le(
                u32::try_from(command.len()).map_err(|_| StateMachineError::Failed("command too large".into()))?,
            );
            buf.put_slice(command);
        }
        Ok(Box::new(buf.freeze()))
    }

    async fn restore(&mut self, input: &mut dyn SnapshotReader) -> Result<(), StateMachineError> {
        let mut data = raftkv_core::state_machine::read_snapshot(input).await?;
        let bad = || StateMachineError::MalformedSnapshot("truncated recording snapshot".into());
        if data.remaining() < 16 {
            return Err(bad());
        }
        let last = LogIndex(data.get_u64_le());
        let n = data.get_u64_le();
        let mut applied = BTreeMap::new();
        for _ in 0..n {
            if data.remaining() < 12 {
                return Err(bad());
            }
            let index = LogIndex(data.get_u64_le());
            let len = data.get_u32_le() as usize;
            if data.remaining() < len {
                return Err(bad());
            }
            applied.insert(index, data.split_to(len));
        }
        self.last = last;
        self.view.reset(self.member, applied.clone());
        self.applied = applied;
        Ok(())
    }
}
