//! Checks the fixed fields of the database file's 100-byte header before
//! SQLite opens it.
//!
//! SQLite reacts to some damaged header fields in ways that do not say
//! "damaged": a read or write version above 2 opens the file read-only (the
//! first write then fails as if the disk were read-only), and odd payload
//! fractions or reserved bytes change how every page is read. RaftKV writes
//! every one of these fields with a single value (or one of two, for the
//! versions: 1 before the file is switched to WAL, 2 after), so any other
//! value is damage and is refused as [`StorageError::Corrupt`] naming the
//! file and byte.

use std::io::Read as _;
use std::path::Path;

use raftkv_core::storage::StorageError;

/// The header's length, and its first 16 bytes.
const HEADER: usize = 100;
const MAGIC: &[u8; 16] = b"SQLite format 3\0";

fn corrupt(path: &Path, offset: usize, reason: String) -> StorageError {
    StorageError::Corrupt { location: format!("{} at byte {offset}", path.display()), reason }
}

/// Checks the header of the database file at `path`: `Ok` when the file is
/// missing or empty (SQLite creates it) or its fixed fields hold what
/// SQLite writes for RaftKV's files.
pub(crate) fn check(path: &Path) -> Result<(), StorageError> {
    let mut bytes = Vec::with_capacity(HEADER);
    match std::fs::File::open(path) {
        Ok(file) => file
            .take(HEADER as u64)
            .read_to_end(&mut bytes)
            .map_err(|source| StorageError::Io { location: path.display().to_string(), source })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(StorageError::Io { location: path.display().to_string(), source }),
    };
    check_bytes(path, &bytes)
}

/// Checks the first bytes of database file `path` (see [`check`]).
pub(crate) fn check_bytes(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    if bytes.is_empty() {
        return Ok(());
    }
    if bytes.len() < HEADER {
        return Err(corrupt(path, 0, format!("database header cut short ({} bytes)", bytes.len())));
    }
    if let Some(at) = bytes[..MAGIC.len()].iter().zip(MAGIC).position(|(a, b)| a != b) {
        return Err(corrupt(path, at, "not an SQLite database (damaged header magic)".to_owned()));
    }
    let page = u32::from(u16::from_be_bytes([bytes[16], bytes[17]]));
    let page = if page == 1 { 65536 } else { page };
    if !(512..=65536).contains(&page) || !page.is_power_of_two() {
        return Err(corrupt(path, 16, format!("damaged database header: page size {page}")));
    }
    for (at, what) in [(18, "write version"), (19, "read version")] {
        if !matches!(bytes[at], 1 | 2) {
            return Err(corrupt(path, at, format!("damaged database header: {what} {}", bytes[at])));
        }
    }
    for (at, expected, what) in [
        (20, 0, "reserved bytes per page"),
        (21, 64, "max payload fraction"),
        (22, 32, "min payload fraction"),
        (23, 32, "leaf payload fraction"),
    ] {
        if bytes[at] != expected {
            return Err(corrupt(
                path,
                at,
                format!("damaged database header: {what} {} (expected {expected})", bytes[at]),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Vec<u8> {
        let mut h = vec![0u8; HEADER];
        h[..16].copy_from_slice(MAGIC);
        h[16..18].copy_from_slice(&4096u16.to_be_bytes());
        h[18] = 2;
        h[19] = 2;
        h[21] = 64;
        h[22] = 32;
        h[23] = 32;
        h
    }

    fn refused_at(bytes: &[u8]) -> String {
        match check_bytes(Path::new("/d/raftkv.sqlite"), bytes) {
            Err(StorageError::Corrupt { location, .. }) => location,
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn a_sound_header_and_a_new_file_pass() {
        check_bytes(Path::new("x"), &header()).unwrap();
        check_bytes(Path::new("x"), &[]).unwrap();
        let mut rollback = header();
        rollback[18] = 1;
        rollback[19] = 1;
        check_bytes(Path::new("x"), &rollback).unwrap();
    }

    #[test]
    fn each_fixed_field_flipped_is_refused_naming_the_file_and_byte() {
        for at in [0, 15, 16, 17, 18, 19, 20, 21, 22, 23] {
            let mut h = header();
            h[at] ^= 0xff;
            // The page size is one two-byte field, named by its first byte.
            let field = if at == 17 { 16 } else { at };
            assert_eq!(refused_at(&h), format!("/d/raftkv.sqlite at byte {field}"), "byte {at}");
        }
        assert!(refused_at(&header()[..40]).contains("at byte 0"));
    }
}
