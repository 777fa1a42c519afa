//! The on-disk encoding of log entries and hard state, shared by every
//! durable backend so that their files are compatible and checked alike.
//!
//! Entry value (the index is the key): `crc32c(u32 LE) | kind(u8) | term(u64 LE) | payload`.
//! Hard state: `crc32c | term(u64 LE) | vote(u64 LE, 0 = none) | commit(u64 LE)`.
//! Every record carries a CRC-32C of the bytes after it, so a damaged record
//! is reported as corrupt, naming the index, instead of being misread.
//!
//! A backend whose files do not checksum the keys a record is stored under
//! (SQLite's pages carry no checksum) uses the *keyed* variants
//! ([`encode_entry_keyed`], [`seal_keyed`]): the CRC-32C then covers the key
//! bytes too (`crc32c(key ‖ body)`), so a record whose key was damaged —
//! moved to another log or index — fails its check instead of silently
//! becoming another entry. A record keyed with no key bytes is the plain
//! record.

use bytes::Bytes;

use crate::raft::{Entry, EntryPayload, HardState};
use crate::types::{LogIndex, NodeId, Term};

const KIND_BLANK: u8 = 0;
const KIND_COMMAND: u8 = 1;

/// Why a stored record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The record is shorter than its fixed header.
    #[error("record is truncated: {len} bytes, need at least {need}")]
    Truncated {
        /// Bytes present.
        len: usize,
        /// Bytes required.
        need: usize,
    },
    /// The checksum does not match the contents.
    #[error("checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Checksum {
        /// Checksum stored in the record.
        stored: u32,
        /// Checksum of the contents.
        computed: u32,
    },
    /// Unknown entry kind.
    #[error("unknown entry kind {0}")]
    UnknownKind(u8),
}

/// CRC-32C (Castagnoli) of `data` (hardware-accelerated where the CPU has it).
#[must_use]
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// A record buffer with room for its checksum in front: write the body
/// after the first 4 bytes, then [`seal`] it (no copy of the body).
fn record(body_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + body_len);
    out.extend_from_slice(&[0; 4]);
    out
}

/// Fill in the checksum of `key` and the body after the first 4 bytes.
fn seal(mut out: Vec<u8>, key: &[u8]) -> Vec<u8> {
    let crc = crc32c::crc32c_append(crc32c(key), &out[4..]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
    out
}

fn open<'a>(record: &'a [u8], key: &[u8], need: usize) -> Result<&'a [u8], CodecError> {
    if record.len() < 4 + need {
        return Err(CodecError::Truncated { len: record.len(), need: 4 + need });
    }
    let stored = u32::from_le_bytes([record[0], record[1], record[2], record[3]]);
    let body = &record[4..];
    let computed = crc32c::crc32c_append(crc32c(key), body);
    if stored != computed {
        return Err(CodecError::Checksum { stored, computed });
    }
    Ok(body)
}

/// A record of `body` stored under `key`: `crc32c(key ‖ body) u32 LE | body`.
#[must_use]
pub fn seal_keyed(key: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = record(body.len());
    out.extend_from_slice(body);
    seal(out, key)
}

/// The body of a record made by [`seal_keyed`] with `key`, at least `need` bytes long.
pub fn open_keyed<'a>(key: &[u8], record: &'a [u8], need: usize) -> Result<&'a [u8], CodecError> {
    open(record, key, need)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut arr = [0u8; 8];
    arr.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(arr)
}

/// Encode an entry's value (its index is stored as the key).
#[must_use]
pub fn encode_entry(entry: &Entry) -> Vec<u8> {
    encode_entry_keyed(&[], entry)
}

/// Encode an entry's value whose checksum also covers `key`, the bytes of
/// the key it is stored under (see the module docs).
#[must_use]
pub fn encode_entry_keyed(key: &[u8], entry: &Entry) -> Vec<u8> {
    let (kind, payload): (u8, &[u8]) = match &entry.payload {
        EntryPayload::Blank => (KIND_BLANK, &[]),
        EntryPayload::Command(b) => (KIND_COMMAND, b.as_ref()),
    };
    let mut body = record(9 + payload.len());
    body.push(kind);
    body.extend_from_slice(&entry.term.0.to_le_bytes());
    body.extend_from_slice(payload);
    seal(body, key)
}

/// Decode the entry stored under `index`.
pub fn decode_entry(index: LogIndex, record: &[u8]) -> Result<Entry, CodecError> {
    decode_entry_keyed(&[], index, record)
}

/// Decode the entry stored under `index` whose checksum covers `key` too
/// ([`encode_entry_keyed`]).
pub fn decode_entry_keyed(key: &[u8], index: LogIndex, record: &[u8]) -> Result<Entry, CodecError> {
    let body = open(record, key, 9)?;
    let term = Term(u64_at(body, 1));
    let payload = match body[0] {
        KIND_BLANK => EntryPayload::Blank,
        KIND_COMMAND => EntryPayload::Command(Bytes::copy_from_slice(&body[9..])),
        other => return Err(CodecError::UnknownKind(other)),
    };
    Ok(Entry { term, index, payload })
}

/// Encode a hard state.
#[must_use]
pub fn encode_hard_state(hs: &HardState) -> Vec<u8> {
    let mut body = record(24);
    body.extend_from_slice(&hs.term.0.to_le_bytes());
    body.extend_from_slice(&hs.vote.map_or(0, |v| v.0).to_le_bytes());
    body.extend_from_slice(&hs.commit.0.to_le_bytes());
    seal(body, &[])
}

/// Decode a hard state. Node id 0 is reserved for "no vote".
pub fn decode_hard_state(record: &[u8]) -> Result<HardState, CodecError> {
    let body = open(record, &[], 24)?;
    let vote = u64_at(body, 8);
    Ok(HardState {
        term: Term(u64_at(body, 0)),
        vote: (vote != 0).then_some(NodeId(vote)),
        commit: LogIndex(u64_at(body, 16)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn entries_and_hard_state_round_trip_and_damage_is_detected() {
        let e =
            Entry { term: Term(7), index: LogIndex(42), payload: EntryPayload::Command(Bytes::from_static(b"x=1")) };
        let mut rec = encode_entry(&e);
        assert_eq!(decode_entry(LogIndex(42), &rec), Ok(e));
        let blank = Entry { term: Term(1), index: LogIndex(1), payload: EntryPayload::Blank };
        assert_eq!(decode_entry(LogIndex(1), &encode_entry(&blank)), Ok(blank));
        let last = rec.len() - 1;
        rec[last] ^= 0xff;
        assert!(matches!(decode_entry(LogIndex(42), &rec), Err(CodecError::Checksum { .. })));
        assert!(matches!(decode_entry(LogIndex(42), &rec[..6]), Err(CodecError::Truncated { .. })));
        let hs = HardState { term: Term(3), vote: Some(NodeId(2)), commit: LogIndex(9) };
        assert_eq!(decode_hard_state(&encode_hard_state(&hs)), Ok(hs));
        let none = HardState { vote: None, ..hs };
        assert_eq!(decode_hard_state(&encode_hard_state(&none)), Ok(none));
    }

    #[test]
    fn keyed_records_check_their_key_and_an_empty_key_is_the_plain_record() {
        let e = Entry { term: Term(2), index: LogIndex(5), payload: EntryPayload::Command(Bytes::from_static(b"y")) };
        assert_eq!(encode_entry_keyed(&[], &e), encode_entry(&e));
        let rec = encode_entry_keyed(b"log 1", &e);
        assert_eq!(decode_entry_keyed(b"log 1", LogIndex(5), &rec), Ok(e));
        assert!(matches!(decode_entry_keyed(b"log 2", LogIndex(5), &rec), Err(CodecError::Checksum { .. })));
        assert!(matches!(decode_entry(LogIndex(5), &rec), Err(CodecError::Checksum { .. })));
        let sealed = seal_keyed(b"k", b"body");
        assert_eq!(open_keyed(b"k", &sealed, 4), Ok(&b"body"[..]));
        assert!(open_keyed(b"j", &sealed, 4).is_err());
        assert!(matches!(open_keyed(b"k", &sealed, 5), Err(CodecError::Truncated { .. })));
    }
}
