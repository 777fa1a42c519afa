//! Reading a format-1 write-ahead log, to upgrade a database written by an
//! older version.
//!
//! Format 1 had no file header and no keystream: records
//! `body length u32 | crc32c(epoch ‖ batch number ‖ body) u32 | batch number u64 | body`
//! from offset 0, overwritten in place after each checkpoint. Its reader
//! stopped at the first record that is incomplete, fails its checksum or
//! does not follow on; this one does the same, so that an upgrade replays
//! exactly what the older version would have.

use super::body::decode_body;
use super::Recorded;

const HEADER: usize = 16;

fn checksum(epoch: u64, seq: u64, body: &[u8]) -> u32 {
    let mut head = [0u8; 16];
    head[..8].copy_from_slice(&epoch.to_le_bytes());
    head[8..].copy_from_slice(&seq.to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&head), body)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The complete, intact record at `at`: (seq, body, offset after it).
fn frame_at(bytes: &[u8], at: usize, epoch: u64) -> Option<(u64, &[u8], usize)> {
    let len = u32_at(bytes, at)? as usize;
    let crc = u32_at(bytes, at + 4)?;
    let seq = u64_at(bytes, at + 8)?;
    let body = bytes.get(at + HEADER..at + HEADER + len)?;
    (checksum(epoch, seq, body) == crc).then_some((seq, body, at + HEADER + len))
}

/// The batches after `applied` in a format-1 log of generation `epoch`; an
/// error (with the offset) for a record whose body does not decode.
pub(crate) fn read(bytes: &[u8], epoch: u64, applied: u64) -> Result<Vec<Recorded>, (u64, String)> {
    let mut records: Vec<Recorded> = Vec::new();
    let mut at = 0usize;
    while let Some((seq, body, next)) = frame_at(bytes, at, epoch) {
        let expected = records.last().map_or(applied + 1, |(last, _)| last + 1);
        if seq != expected {
            break;
        }
        let ops = decode_body(body).map_err(|why| (at as u64, why))?;
        records.push((seq, ops));
        at = next;
    }
    Ok(records)
}

/// A format-1 record, as older versions wrote it.
#[cfg(test)]
pub(crate) fn encode(epoch: u64, seq: u64, body: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(HEADER + body.len());
    record.extend_from_slice(&(body.len() as u32).to_le_bytes());
    record.extend_from_slice(&checksum(epoch, seq, body).to_le_bytes());
    record.extend_from_slice(&seq.to_le_bytes());
    record.extend_from_slice(body);
    record
}
