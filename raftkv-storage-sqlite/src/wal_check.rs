//! Verifying SQLite's write-ahead log (`raftkv.sqlite-wal`) before SQLite
//! opens it.
//!
//! SQLite reads its log up to the first frame that fails its checksum and
//! silently ignores the rest, committed transactions included: one flipped
//! byte would make acknowledged writes vanish. So [`check`] reads the log
//! first ([format](https://www.sqlite.org/fileformat2.html#walformat)): a
//! 32-byte header (magic `0x377f0682` or `0x377f0683`, which says whether
//! checksums read the words little- or big-endian; version; page size;
//! checkpoint number; two salts; a checksum of the header), then frames of
//! a 24-byte header (page number; database size for a commit frame, else
//! 0; the salts; a checksum) and a page. Each frame's checksum covers its
//! first 8 header bytes and its page, seeded with the previous frame's (the
//! header's for the first), so the checksums form one chain.
//!
//! # Damage or a torn end?
//!
//! SQLite writes the header of a new generation of the log (new salts) with
//! its first frames, and appends each transaction's frames, the commit frame
//! last, syncing before the commit returns; a crash can only interrupt the
//! transaction being written, which was never acknowledged. Going through
//! the frames of the header's salts:
//!
//! - A frame that does not fit in the file is the end (torn).
//! - A frame whose checksum continues the chain but whose salts differ has
//!   damaged salts (a frame of an older generation never continues this
//!   chain): damage. One whose salts differ and whose checksum does not
//!   continue the chain is an older generation's: the end.
//! - A frame of this generation whose checksum fails is **damaged** if the
//!   mismatch is what one changed 32-bit word (of the frame, or of its stored
//!   checksum) produces — the checksum is a sum, so that can be computed
//!   exactly — or if the next frame's checksum continues the chain from the
//!   stored one (damage in the middle). Otherwise it is a **torn** write: a
//!   crash between writing a frame's header and its page leaves the page's
//!   old bytes (or the end of the file) under a new header, which differs in
//!   hundreds of words, and a power loss leaves whole sectors unwritten. A
//!   torn frame passes for one changed word by chance once in about 2^22
//!   (one 32-bit constraint per word position): such a crash would refuse
//!   to open instead of dropping its unacknowledged transaction.
//! - A header that is not all zero (an unwritten one) and fails its checksum
//!   or its format is damage.
//!
//! So a byte flipped anywhere, even in the last frame of the last
//! acknowledged transaction, is found and reported as
//! [`StorageError::Corrupt`] naming the file and the byte offset, while the
//! tail a crash tore is left for SQLite to drop. Damage that changes several
//! words of the very last frame cannot be told from a torn write; it is
//! dropped like one (the one limit of this check).

use std::path::Path;

use raftkv_core::storage::StorageError;

const HEADER: usize = 32;
const FRAME_HEADER: usize = 24;
const MAGIC_LE: u32 = 0x377f_0682;
const MAGIC_BE: u32 = 0x377f_0683;
const VERSION: u32 = 3_007_000;

fn be32(b: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(word)
}

/// SQLite's WAL checksum of `data` (a multiple of 8 bytes) seeded with `seed`.
fn checksum(seed: (u32, u32), data: &[u8], big_endian: bool) -> (u32, u32) {
    let (mut s0, mut s1) = seed;
    for pair in data.chunks_exact(8) {
        let (a, b) = if big_endian { (be32(pair, 0), be32(pair, 4)) } else { (le32(pair, 0), le32(pair, 4)) };
        s0 = s0.wrapping_add(a).wrapping_add(s1);
        s1 = s1.wrapping_add(b).wrapping_add(s0);
    }
    (s0, s1)
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(word)
}

/// Whether `computed - stored` (the checksums of `pairs` word pairs) is what
/// changing one word of them, or one stored checksum word, produces.
///
/// Adding `d` to the first word of a pair changes the running sums by
/// `(d, d)`, to the second by `(0, d)`; each later pair maps a difference
/// `(e0, e1)` to `(e0 + e1, e0 + 2 e1)`, whose inverse is
/// `(2 e0 - e1, e1 - e0)`. So walking back from the final difference, one
/// pair at a time, finds the pattern if a single word changed.
fn one_word_changed(computed: (u32, u32), stored: (u32, u32), pairs: usize) -> bool {
    let (mut e0, mut e1) = (computed.0.wrapping_sub(stored.0), computed.1.wrapping_sub(stored.1));
    if (e0 == 0) != (e1 == 0) {
        return true; // one stored checksum word changed (or the last pair's second word)
    }
    for _ in 0..pairs {
        if e0 != 0 && (e0 == e1) {
            return true;
        }
        if e0 == 0 && e1 != 0 {
            return true;
        }
        let (p0, p1) = (e0.wrapping_mul(2).wrapping_sub(e1), e1.wrapping_sub(e0));
        (e0, e1) = (p0, p1);
    }
    false
}

fn corrupt(path: &Path, offset: usize, reason: String) -> StorageError {
    StorageError::Corrupt { location: format!("{} at byte {offset}", path.display()), reason }
}

/// Checks the log `bytes` of file `path` (see the module docs): `Ok` if
/// SQLite will read every transaction it holds, or only a torn one less.
pub(crate) fn check_bytes(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    if bytes.iter().all(|&b| b == 0) {
        return Ok(()); // empty, or a header that was never written
    }
    if bytes.len() < HEADER {
        return Err(corrupt(path, 0, format!("log header cut short ({} bytes)", bytes.len())));
    }
    let magic = be32(bytes, 0);
    let big_endian = match magic {
        MAGIC_LE => false,
        MAGIC_BE => true,
        other => return Err(corrupt(path, 0, format!("damaged log header: bad magic {other:#010x}"))),
    };
    let stored = (be32(bytes, 24), be32(bytes, 28));
    let computed = checksum((0, 0), &bytes[..24], big_endian);
    if computed != stored {
        return Err(corrupt(path, 0, "damaged log header (checksum mismatch)".to_owned()));
    }
    let version = be32(bytes, 4);
    if version != VERSION {
        return Err(corrupt(path, 0, format!("unknown log format version {version}")));
    }
    let page = be32(bytes, 8) as usize;
    if !(512..=65536).contains(&page) || !page.is_power_of_two() {
        return Err(corrupt(path, 0, format!("damaged log header: page size {page}")));
    }
    let salts = &bytes[16..24];
    let frame_len = FRAME_HEADER + page;
    let pairs = (8 + page) / 8;
    let mut seed = stored;
    let mut at = HEADER;
    let mut frame = 1usize;
    // The checksum of the frame at `at` seeded with `seed`, and its stored one.
    let sums = |at: usize, seed: (u32, u32)| {
        let head = &bytes[at..at + FRAME_HEADER];
        let mut covered = Vec::with_capacity(8 + page);
        covered.extend_from_slice(&head[..8]);
        covered.extend_from_slice(&bytes[at + FRAME_HEADER..at + frame_len]);
        (checksum(seed, &covered, big_endian), (be32(head, 16), be32(head, 20)))
    };
    while at + frame_len <= bytes.len() {
        let head = &bytes[at..at + FRAME_HEADER];
        let same_salts = &head[8..16] == salts;
        let (computed, stored) = sums(at, seed);
        if computed == stored {
            if !same_salts {
                return Err(corrupt(
                    path,
                    at,
                    format!("frame {frame}: damaged salts (its checksum continues the log)"),
                ));
            }
            if be32(head, 0) == 0 {
                return Err(corrupt(path, at, format!("frame {frame}: page number 0")));
            }
            seed = computed;
            at += frame_len;
            frame += 1;
            continue;
        }
        if !same_salts {
            break; // a frame of an older generation: the log ends here
        }
        if one_word_changed(computed, stored, pairs) {
            return Err(corrupt(path, at, format!("frame {frame} is damaged (checksum mismatch)")));
        }
        let next = at + frame_len;
        if next + frame_len <= bytes.len() && bytes[next + 8..next + 16] == *salts {
            let (after, after_stored) = sums(next, stored);
            if after == after_stored {
                return Err(corrupt(
                    path,
                    at,
                    format!("frame {frame} is damaged (checksum mismatch) and the frames after it continue the log"),
                ));
            }
        }
        break; // torn: the transaction being written when a crash came
    }
    Ok(())
}

/// Checks the log `path` if it exists (see [`check_bytes`]).
pub(crate) fn check(path: &Path) -> Result<(), StorageError> {
    match std::fs::read(path) {
        Ok(bytes) => check_bytes(path, &bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StorageError::Io { location: format!("{} (read)", path.display()), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log of `frames` frames of 512-byte pages, little-endian checksums.
    fn log(frames: usize) -> Vec<u8> {
        let mut out = vec![0u8; HEADER];
        out[..4].copy_from_slice(&MAGIC_LE.to_be_bytes());
        out[4..8].copy_from_slice(&VERSION.to_be_bytes());
        out[8..12].copy_from_slice(&512u32.to_be_bytes());
        out[16..24].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let mut seed = checksum((0, 0), &out[..24], false);
        out[24..28].copy_from_slice(&seed.0.to_be_bytes());
        out[28..32].copy_from_slice(&seed.1.to_be_bytes());
        for n in 0..frames {
            let mut frame = vec![0u8; FRAME_HEADER + 512];
            frame[..4].copy_from_slice(&(n as u32 + 1).to_be_bytes());
            if n + 1 == frames {
                frame[4..8].copy_from_slice(&9u32.to_be_bytes());
            }
            frame[8..16].copy_from_slice(&out[16..24]);
            // Mostly zeros, like a page with free space.
            frame[FRAME_HEADER + 7] = n as u8;
            let mut covered = frame[..8].to_vec();
            covered.extend_from_slice(&frame[FRAME_HEADER..]);
            seed = checksum(seed, &covered, false);
            frame[16..20].copy_from_slice(&seed.0.to_be_bytes());
            frame[20..24].copy_from_slice(&seed.1.to_be_bytes());
            out.extend_from_slice(&frame);
        }
        out
    }

    fn check_log(bytes: &[u8]) -> Result<(), StorageError> {
        check_bytes(Path::new("/d/raftkv.sqlite-wal"), bytes)
    }

    #[test]
    fn an_intact_log_passes_and_every_flipped_byte_is_found() {
        let pristine = log(3);
        check_log(&pristine).expect("intact");
        for at in 0..pristine.len() {
            let mut bytes = pristine.clone();
            bytes[at] ^= 0x01;
            let err = check_log(&bytes).expect_err("a flipped byte is damage");
            assert!(err.to_string().contains("raftkv.sqlite-wal at byte"), "{err}");
        }
    }

    #[test]
    fn a_torn_last_frame_is_not_damage() {
        let pristine = log(3);
        let last = HEADER + 2 * (FRAME_HEADER + 512);
        // Cut short.
        check_log(&pristine[..pristine.len() - 100]).expect("cut inside the last frame");
        // The page never written: zeros, or another page's bytes, under the new header.
        let mut zeroed = pristine.clone();
        zeroed[last + FRAME_HEADER..].fill(0);
        zeroed[last + FRAME_HEADER + 100] = 1;
        check_log(&zeroed).expect("page of zeros");
        let mut stale = pristine.clone();
        for (k, b) in stale[last + FRAME_HEADER..].iter_mut().enumerate() {
            *b = (k * 7 % 251) as u8;
        }
        check_log(&stale).expect("page of older bytes");
        // A frame of an older generation after the end.
        let mut older = pristine.clone();
        older[last + 8] ^= 0xff;
        older[last + 16] ^= 0x55;
        check_log(&older).expect("older generation");
    }

    #[test]
    fn a_torn_frame_followed_by_frames_that_continue_the_chain_is_damage() {
        let pristine = log(3);
        let first = HEADER;
        let mut bytes = pristine.clone();
        for b in &mut bytes[first + FRAME_HEADER..first + FRAME_HEADER + 512] {
            *b = 0x5a;
        }
        let err = check_log(&bytes).expect_err("damage in the middle");
        assert!(err.to_string().contains("continue the log"), "{err}");
    }

    #[test]
    fn all_zero_and_missing_logs_pass() {
        check_log(&[]).expect("empty");
        check_log(&[0; 4096]).expect("zeros");
        assert!(check_log(&[1; 10]).is_err());
    }

    #[test]
    fn one_changed_word_is_told_from_many() {
        let data: Vec<u8> = (0..4096u32).map(|i| (i * 31 % 256) as u8).collect();
        let stored = checksum((3, 4), &data, false);
        for at in [0, 5, 1000, 4095] {
            let mut changed = data.clone();
            changed[at] ^= 0x80;
            assert!(one_word_changed(checksum((3, 4), &changed, false), stored, 512), "byte {at}");
        }
        let mut torn = data.clone();
        torn[1024..1536].fill(0);
        assert!(!one_word_changed(checksum((3, 4), &torn, false), stored, 512));
    }
}
