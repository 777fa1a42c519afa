//! Byte layout of the write-ahead log, format 2: the file header, the
//! record framing, and the checks that tell a torn record from a damaged one.
//!
//! ```text
//! offset 0   file header (40 bytes): "RKVWAL02" | epoch u64 | previous epoch u64
//!            | first batch number u64 | reserved u32 (0) | crc32c of the 36 bytes before
//! offset 64  records, each starting at a multiple of 16 bytes:
//!              header (16 bytes): body length u32 | batch number u64
//!                                 | crc32c(epoch ‖ the 12 bytes before)
//!              payload: body | crc32c(epoch ‖ batch number ‖ body) u32 | zeros up to
//!                       a multiple of 16 bytes — all XORed with a keystream of
//!                       (epoch, batch number)
//! ```
//!
//! Integers are little-endian. The writer keeps every byte past the last
//! record zero on disk before it writes there (see [`super::Wal`]), so
//! whatever a crash interrupted reads as zeros where it did not reach:
//!
//! - A record header is 16 bytes at a multiple of 16, so it never straddles
//!   a 512-byte sector (written whole or not at all, even by a power loss)
//!   nor a page (where a killed `write` stops). All zero: the log ends there.
//!   Not zero and its checksum fails: it is damaged.
//! - A payload whose checksum fails is torn if it ends past the end of the
//!   file, or if one of its pieces in a 512-byte sector is all zero (a sector
//!   that was never written). Otherwise it is damaged. The keystream makes a
//!   stored piece of zeros (at least 16 bytes: records start and end at
//!   multiples of 16) as unlikely as a checksum collision, so a record whose
//!   contents hold zeros is not mistaken for a torn one.
//! - The epoch, chosen at random for each generation of the log, is mixed
//!   into every checksum: a record of an older generation, or of another
//!   database, never reads as one of this generation.

use std::ops::Range;

/// First bytes of a format-2 log.
pub(crate) const MAGIC: &[u8; 8] = b"RKVWAL02";
/// Bytes of the file header.
pub(crate) const FILE_HEADER_LEN: usize = 40;
/// Offset of the first record.
pub(crate) const FIRST_RECORD: u64 = 64;
/// Bytes of a record header.
pub(crate) const RECORD_HEADER_LEN: u64 = 16;
/// Records start and end at multiples of this.
pub(crate) const ALIGN: u64 = 16;
/// The unit a disk writes whole (or not at all).
pub(crate) const SECTOR: u64 = 512;

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Whether every byte of `bytes` is zero.
pub(crate) fn is_zero(bytes: &[u8]) -> bool {
    let mut words = bytes.chunks_exact(8);
    words.all(|w| w == [0u8; 8]) && words.remainder().iter().all(|&b| b == 0)
}

/// The file header: which generation of the log the file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileHeader {
    /// This generation's epoch.
    pub epoch: u64,
    /// The epoch of the generation before it.
    pub prev_epoch: u64,
    /// Number of the first batch of this generation.
    pub start_seq: u64,
}

impl FileHeader {
    pub(crate) fn encode(self) -> [u8; FILE_HEADER_LEN] {
        let mut out = [0u8; FILE_HEADER_LEN];
        out[..8].copy_from_slice(MAGIC);
        out[8..16].copy_from_slice(&self.epoch.to_le_bytes());
        out[16..24].copy_from_slice(&self.prev_epoch.to_le_bytes());
        out[24..32].copy_from_slice(&self.start_seq.to_le_bytes());
        let crc = crc32c::crc32c(&out[..36]);
        out[36..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// The header at the start of `file`: `Ok(None)` when it is all zero or
    /// shorter than a header (a generation whose header never reached the
    /// disk), an error saying what is wrong when it is damaged or not a
    /// format-2 header.
    pub(crate) fn decode(file: &[u8]) -> Result<Option<Self>, String> {
        let Some(bytes) = file.get(..FILE_HEADER_LEN) else {
            return if is_zero(file) { Ok(None) } else { Err(format!("file header cut short ({} bytes)", file.len())) };
        };
        if is_zero(bytes) {
            return Ok(None);
        }
        let stored = u32_at(bytes, 36);
        let computed = crc32c::crc32c(&bytes[..36]);
        if &bytes[..8] != MAGIC {
            if bytes[..6] == MAGIC[..6] && stored == computed {
                let version = String::from_utf8_lossy(&bytes[6..8]).into_owned();
                return Err(format!(
                    "write-ahead log format {version} is not supported (this version reads format 02)"
                ));
            }
            if stored != computed {
                return Err(format!(
                    "damaged file header (checksum mismatch: stored {stored:#010x}, computed {computed:#010x})"
                ));
            }
            return Err("not a RaftKV write-ahead log (bad magic)".to_owned());
        }
        if stored != computed {
            return Err(format!(
                "damaged file header (checksum mismatch: stored {stored:#010x}, computed {computed:#010x})"
            ));
        }
        let reserved = &file[FILE_HEADER_LEN..file.len().min(FIRST_RECORD as usize)];
        if !is_zero(reserved) {
            return Err("damaged file header (the reserved bytes after it are not zero)".to_owned());
        }
        Ok(Some(Self { epoch: u64_at(bytes, 8), prev_epoch: u64_at(bytes, 16), start_seq: u64_at(bytes, 24) }))
    }
}

/// Bytes a record with a body of `body_len` bytes takes.
pub(crate) fn record_len(body_len: u64) -> u64 {
    RECORD_HEADER_LEN + (body_len + 4).div_ceil(ALIGN) * ALIGN
}

fn header_crc(epoch: u64, header: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&epoch.to_le_bytes()), &header[..12])
}

fn body_crc(epoch: u64, seq: u64, body: &[u8]) -> u32 {
    let mut head = [0u8; 16];
    head[..8].copy_from_slice(&epoch.to_le_bytes());
    head[8..].copy_from_slice(&seq.to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&head), body)
}

/// XORs `payload` with the keystream of record `seq` of generation `epoch`
/// (SplitMix64; its own inverse).
fn whiten(payload: &mut [u8], epoch: u64, seq: u64) {
    let mut state = epoch ^ seq.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    for chunk in payload.chunks_mut(8) {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        for (byte, key) in chunk.iter_mut().zip(z.to_le_bytes()) {
            *byte ^= key;
        }
    }
}

/// The record of batch `seq` of generation `epoch` holding `body`; `None`
/// when the body is too large for its 32-bit length.
pub(crate) fn encode(epoch: u64, seq: u64, body: &[u8]) -> Option<Vec<u8>> {
    let len = u32::try_from(body.len()).ok()?;
    let total = usize::try_from(record_len(u64::from(len))).ok()?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    let crc = header_crc(epoch, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&body_crc(epoch, seq, body).to_le_bytes());
    out.resize(total, 0);
    whiten(&mut out[RECORD_HEADER_LEN as usize..], epoch, seq);
    Some(out)
}

/// What the 16 bytes at a record boundary hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Header {
    /// Nothing was written there.
    Zero,
    /// An intact header of this generation.
    Valid {
        /// Body length.
        len: u64,
        /// Batch number.
        seq: u64,
    },
    /// Neither: damaged, or not a record of this generation.
    Invalid,
}

/// Reads the record header in `bytes` (16 bytes) for generation `epoch`.
pub(crate) fn header(bytes: &[u8], epoch: u64) -> Header {
    if is_zero(bytes) {
        Header::Zero
    } else if header_crc(epoch, bytes) == u32_at(bytes, 12) {
        Header::Valid { len: u64::from(u32_at(bytes, 0)), seq: u64_at(bytes, 4) }
    } else {
        Header::Invalid
    }
}

/// The body in `payload` (a record's bytes after its header) if its checksum holds.
pub(crate) fn body(payload: &[u8], epoch: u64, seq: u64, len: u64) -> Option<Vec<u8>> {
    let len = usize::try_from(len).ok()?;
    let mut plain = payload.to_vec();
    whiten(&mut plain, epoch, seq);
    let stored = plain.get(len..len + 4).map(|b| u32_at(b, 0))?;
    // The padding is not covered by the checksum, but it must still be zero.
    if !is_zero(&plain[len + 4..]) {
        return None;
    }
    plain.truncate(len);
    (body_crc(epoch, seq, &plain) == stored).then_some(plain)
}

/// Whether one of the pieces that the 512-byte sectors of the file cut
/// `range` into is all zero (`bytes` is the whole file).
pub(crate) fn has_zero_sector(bytes: &[u8], range: Range<u64>) -> bool {
    let mut at = range.start;
    while at < range.end {
        let next = ((at / SECTOR + 1) * SECTOR).min(range.end);
        let piece = usize::try_from(at).ok().zip(usize::try_from(next).ok()).and_then(|(a, b)| bytes.get(a..b));
        if piece.is_some_and(is_zero) {
            return true;
        }
        at = next;
    }
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_hide_their_zeros() {
        let zeros = vec![0u8; 2000];
        let record = encode(7, 3, &zeros).unwrap();
        assert_eq!(record.len() as u64, record_len(2000));
        assert_eq!(record.len() % ALIGN as usize, 0);
        assert_eq!(header(&record[..16], 7), Header::Valid { len: 2000, seq: 3 });
        assert_eq!(header(&record[..16], 8), Header::Invalid, "another generation's record");
        assert_eq!(header(&[0; 16], 7), Header::Zero);
        assert_eq!(body(&record[16..], 7, 3, 2000).unwrap(), zeros);
        // The zeros of the body are not stored as zeros.
        assert!(!has_zero_sector(&record, 16..record.len() as u64));
        assert!(body(&record[16..], 7, 4, 2000).is_none(), "another batch's keystream");
    }

    #[test]
    fn file_headers_round_trip_and_damage_is_told_from_absence() {
        let h = FileHeader { epoch: 1, prev_epoch: 2, start_seq: 3 };
        let mut bytes = h.encode().to_vec();
        assert_eq!(FileHeader::decode(&bytes), Ok(Some(h)));
        assert_eq!(FileHeader::decode(&[0; 64]), Ok(None));
        assert_eq!(FileHeader::decode(&[]), Ok(None));
        bytes[20] ^= 1;
        assert!(FileHeader::decode(&bytes).unwrap_err().contains("checksum"));
        assert!(FileHeader::decode(b"garbage!garbage!garbage!garbage!garbage!").unwrap_err().contains("damaged"));
    }

    #[test]
    fn a_zero_piece_of_a_sector_is_found() {
        let mut file = vec![1u8; 2048];
        assert!(!has_zero_sector(&file, 100..1500));
        file[1024..1040].fill(0);
        assert!(!has_zero_sector(&file, 100..1500), "16 zero bytes inside a sector are not a sector");
        file[1024..1536].fill(0);
        assert!(has_zero_sector(&file, 100..1500), "the piece 1024..1500 is zero");
        let mut file = vec![1u8; 2048];
        file[1024..1040].fill(0);
        assert!(has_zero_sector(&file, 100..1040), "the last piece 1024..1040 is zero");
    }
}
