//! The body of a write-ahead log record: every mutation of one batch.
//!
//! One mutation after another — `group u64 | node u64 | tag u8`, then for a
//! write (tag 1): `flags u8` (1: truncation, 2: hard state),
//! `[truncate_after u64]`, `[term u64, vote u64 (0: none), commit u64]`,
//! `count u32`, then per entry `index u64 | length u32 | entry record`
//! ([`codec::encode_entry`], with its own CRC-32C); for a purge (tag 2):
//! `index u64`. Integers are little-endian. The format is the same in both
//! versions of the log.

use raftkv_core::raft::HardState;
use raftkv_core::storage::{codec, LogWrite};
use raftkv_core::{GroupId, LogIndex, MemberId, NodeId, Term};

use crate::op::WriteOp;

const TAG_WRITE: u8 = 1;
const TAG_PURGE: u8 = 2;
const HAS_TRUNCATE: u8 = 1;
const HAS_HARD_STATE: u8 = 2;

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Append `op` on `log` to a batch body.
pub(crate) fn encode_op(body: &mut Vec<u8>, log: MemberId, op: &WriteOp) {
    body.extend_from_slice(&log.group.0.to_le_bytes());
    body.extend_from_slice(&log.node.0.to_le_bytes());
    match op {
        WriteOp::Write(w) => {
            body.push(TAG_WRITE);
            let flags = if w.truncate_after.is_some() { HAS_TRUNCATE } else { 0 }
                | if w.hard_state.is_some() { HAS_HARD_STATE } else { 0 };
            body.push(flags);
            if let Some(t) = w.truncate_after {
                body.extend_from_slice(&t.0.to_le_bytes());
            }
            if let Some(hs) = &w.hard_state {
                body.extend_from_slice(&hs.term.0.to_le_bytes());
                body.extend_from_slice(&hs.vote.map_or(0, |v| v.0).to_le_bytes());
                body.extend_from_slice(&hs.commit.0.to_le_bytes());
            }
            // A batch never holds 2^32 entries (the engine's appends are far smaller).
            body.extend_from_slice(&(w.entries.len() as u32).to_le_bytes());
            for entry in &w.entries {
                let record = codec::encode_entry(entry);
                body.extend_from_slice(&entry.index.0.to_le_bytes());
                body.extend_from_slice(&(record.len() as u32).to_le_bytes());
                body.extend_from_slice(&record);
            }
        }
        WriteOp::Purge(index) => {
            body.push(TAG_PURGE);
            body.extend_from_slice(&index.0.to_le_bytes());
        }
    }
}

/// A reader over a batch body that names what is missing.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let got = self.bytes.get(self.at..self.at + n).ok_or_else(|| format!("record ends inside {what}"))?;
        self.at += n;
        Ok(got)
    }

    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        u32_at(self.take(4, what)?, 0).ok_or_else(|| format!("record ends inside {what}"))
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        u64_at(self.take(8, what)?, 0).ok_or_else(|| format!("record ends inside {what}"))
    }
}

pub(crate) fn decode_body(bytes: &[u8]) -> Result<Vec<(MemberId, WriteOp)>, String> {
    let mut c = Cursor { bytes, at: 0 };
    let mut ops = Vec::new();
    while c.at < bytes.len() {
        let log = MemberId::new(GroupId(c.u64("a group id")?), NodeId(c.u64("a node id")?));
        let op = match c.u8("a mutation tag")? {
            TAG_WRITE => {
                let flags = c.u8("write flags")?;
                let truncate_after =
                    if flags & HAS_TRUNCATE != 0 { Some(LogIndex(c.u64("a truncation index")?)) } else { None };
                let hard_state = if flags & HAS_HARD_STATE != 0 {
                    let term = Term(c.u64("a hard state")?);
                    let vote = c.u64("a hard state")?;
                    let commit = LogIndex(c.u64("a hard state")?);
                    Some(HardState { term, vote: (vote != 0).then_some(NodeId(vote)), commit })
                } else {
                    None
                };
                let count = c.u32("an entry count")?;
                let mut entries = Vec::with_capacity(count.min(1 << 16) as usize);
                for _ in 0..count {
                    let index = LogIndex(c.u64("an entry index")?);
                    let len = c.u32("an entry length")? as usize;
                    let record = c.take(len, "an entry")?;
                    entries.push(codec::decode_entry(index, record).map_err(|e| format!("entry {}: {e}", index.0))?);
                }
                WriteOp::Write(LogWrite { truncate_after, entries, hard_state })
            }
            TAG_PURGE => WriteOp::Purge(LogIndex(c.u64("a purge index")?)),
            other => return Err(format!("unknown mutation tag {other}")),
        };
        ops.push((log, op));
    }
    Ok(ops)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use bytes::Bytes;
    use raftkv_core::raft::{Entry, EntryPayload};

    use super::*;

    /// Mutations of two logs: a write with everything in it, a purge, an empty write.
    pub(crate) fn ops() -> Vec<(MemberId, WriteOp)> {
        let entry = |i| Entry { term: Term(3), index: LogIndex(i), payload: EntryPayload::Command(Bytes::from("cmd")) };
        vec![
            (
                MemberId::new(GroupId(1), NodeId(2)),
                WriteOp::Write(LogWrite {
                    truncate_after: Some(LogIndex(4)),
                    entries: vec![entry(5), entry(6)],
                    hard_state: Some(HardState { term: Term(3), vote: Some(NodeId(2)), commit: LogIndex(4) }),
                }),
            ),
            (MemberId::new(GroupId(7), NodeId(1)), WriteOp::Purge(LogIndex(9))),
            (MemberId::new(GroupId(7), NodeId(1)), WriteOp::Write(LogWrite::default())),
        ]
    }

    #[test]
    fn bodies_round_trip_and_bad_ones_say_what_is_wrong() {
        let mut body = Vec::new();
        for (log, op) in &ops() {
            encode_op(&mut body, *log, op);
        }
        assert_eq!(format!("{:?}", decode_body(&body).unwrap()), format!("{:?}", ops()));
        assert!(decode_body(&[1, 2, 3]).unwrap_err().contains("group id"));
        let mut bad = Vec::new();
        bad.extend_from_slice(&1u64.to_le_bytes());
        bad.extend_from_slice(&1u64.to_le_bytes());
        bad.push(9);
        assert!(decode_body(&bad).unwrap_err().contains("tag 9"));
    }
}
