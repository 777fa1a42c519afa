//! The values the tables hold (record format 2), and the upgrade from
//! format 1.
//!
//! SQLite's pages carry no checksum, and a damaged byte in a row's key (its
//! group, node or index) would move the row to another log or index
//! without a word: a member's last entry, or its hard state, would vanish.
//! So every value's CRC-32C covers its key as well as its contents
//! ([`codec::encode_entry_keyed`]):
//!
//! - `log.value` and `journal.value`: the entry record keyed by
//!   `grp i64 LE | node i64 LE | idx u64 LE` (24 bytes; a journal row's
//!   `seq` only orders rows and is not covered);
//! - `meta.hard_state`: the member's meta record, keyed by
//!   `grp i64 LE | node i64 LE`: `crc32c u32 | has hard state u8 | term u64 |
//!   vote u64 (0: none) | commit u64 | purged u64`, present in every `meta`
//!   row; the `purged` column must equal the record's.
//!
//! The format is `PRAGMA user_version` = [`FORMAT`]. Format 1 (`0`, older
//! versions) stored the plain codec records, with `hard_state` NULL until a
//! hard state was saved; [`upgrade`] rewrites every value in one
//! transaction, checking each one first. A file of another format is
//! refused, naming it. Older versions reading a format-2 file report every
//! record as failing its checksum.

use raftkv_core::raft::{Entry, HardState};
use raftkv_core::storage::codec::{self, CodecError};
use raftkv_core::storage::StorageError;
use raftkv_core::MemberId;
use raftkv_core::{LogIndex, NodeId, Term};
use sqlx::{Connection, SqliteConnection};

use crate::bounds::key_columns;
use crate::error::DbFile;

/// The record format this version writes (`PRAGMA user_version`).
pub(crate) const FORMAT: i64 = 2;

/// Rows rewritten per statement batch by [`upgrade`].
const CHUNK: i64 = 1024;

/// The key bytes of entry `index` of `log`.
fn entry_key(log: MemberId, index: u64) -> [u8; 24] {
    let (grp, node) = key_columns(log);
    let mut key = [0u8; 24];
    key[..8].copy_from_slice(&grp.to_le_bytes());
    key[8..16].copy_from_slice(&node.to_le_bytes());
    key[16..].copy_from_slice(&index.to_le_bytes());
    key
}

fn meta_key(log: MemberId) -> [u8; 16] {
    let (grp, node) = key_columns(log);
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&grp.to_le_bytes());
    key[8..].copy_from_slice(&node.to_le_bytes());
    key
}

/// The stored value of `entry` of `log`.
pub(crate) fn encode_entry(log: MemberId, entry: &Entry) -> Vec<u8> {
    codec::encode_entry_keyed(&entry_key(log, entry.index.0), entry)
}

/// The entry `index` of `log` stored as `value`.
pub(crate) fn decode_entry(log: MemberId, index: u64, value: &[u8]) -> Result<Entry, CodecError> {
    codec::decode_entry_keyed(&entry_key(log, index), LogIndex(index), value)
}

/// The meta record of `log`.
pub(crate) fn encode_meta(log: MemberId, hard_state: Option<HardState>, purged: u64) -> Vec<u8> {
    let mut body = Vec::with_capacity(33);
    let hs = hard_state.unwrap_or_default();
    body.push(u8::from(hard_state.is_some()));
    body.extend_from_slice(&hs.term.0.to_le_bytes());
    body.extend_from_slice(&hs.vote.map_or(0, |v| v.0).to_le_bytes());
    body.extend_from_slice(&hs.commit.0.to_le_bytes());
    body.extend_from_slice(&purged.to_le_bytes());
    codec::seal_keyed(&meta_key(log), &body)
}

/// The hard state and purge point in the meta record of `log`.
pub(crate) fn decode_meta(log: MemberId, record: &[u8]) -> Result<(Option<HardState>, u64), String> {
    let body = codec::open_keyed(&meta_key(log), record, 33).map_err(|e| e.to_string())?;
    if body.len() != 33 {
        return Err(format!("meta record body is {} bytes, expected 33", body.len()));
    }
    let u64_at = |at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&body[at..at + 8]);
        u64::from_le_bytes(word)
    };
    let hard_state = match body[0] {
        0 => None,
        1 => {
            let vote = u64_at(9);
            Some(HardState {
                term: Term(u64_at(1)),
                vote: (vote != 0).then_some(NodeId(vote)),
                commit: LogIndex(u64_at(17)),
            })
        }
        other => return Err(format!("meta record flag {other}")),
    };
    Ok((hard_state, u64_at(25)))
}

/// Decodes every value of every table, each against its key: a damaged
/// row is reported naming the file and where, whichever member it belongs
/// to (a row whose key was damaged no longer belongs to the member that
/// lost it, which would not notice). Reads the whole tables once.
pub(crate) async fn verify_all(conn: &mut SqliteConnection, db: &DbFile) -> Result<(), StorageError> {
    let mut after = (i64::MIN, i64::MIN, i64::MIN);
    loop {
        let chunk: Vec<(i64, i64, i64, Vec<u8>)> = sqlx::query_as(&format!(
            "SELECT grp, node, idx, value FROM log WHERE (grp, node, idx) > (?, ?, ?) ORDER BY grp, node, idx LIMIT {CHUNK}"
        ))
        .bind(after.0)
        .bind(after.1)
        .bind(after.2)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| db.sqlx_opening("reading the log table", e))?;
        for (grp, node, idx, value) in &chunk {
            let (log, index) = (log_id(*grp, *node), u64::try_from(*idx).unwrap_or_default());
            decode_entry(log, index, value).map_err(|e| db.corrupt_entry(log, index, &e))?;
        }
        match chunk.last() {
            Some(&(grp, node, idx, _)) if chunk.len() as i64 == CHUNK => after = (grp, node, idx),
            _ => break,
        }
    }
    let mut after_seq = i64::MIN;
    loop {
        let chunk: Vec<(i64, i64, i64, i64, Vec<u8>)> = sqlx::query_as(&format!(
            "SELECT seq, grp, node, idx, value FROM journal WHERE seq > ? ORDER BY seq LIMIT {CHUNK}"
        ))
        .bind(after_seq)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| db.sqlx_opening("reading the journal", e))?;
        for (seq, grp, node, idx, value) in &chunk {
            let (log, index) = (log_id(*grp, *node), u64::try_from(*idx).unwrap_or_default());
            decode_entry(log, index, value).map_err(|e| db.corrupt_journal_entry(log, index, *seq, &e))?;
        }
        match chunk.last() {
            Some(&(seq, ..)) if chunk.len() as i64 == CHUNK => after_seq = seq,
            _ => break,
        }
    }
    let metas: Vec<(i64, i64, Option<Vec<u8>>, i64)> = sqlx::query_as("SELECT grp, node, hard_state, purged FROM meta")
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| db.sqlx_opening("reading the meta table", e))?;
    for (grp, node, record, purged) in &metas {
        let log = log_id(*grp, *node);
        let record = record.as_deref().ok_or_else(|| db.corrupt_meta(log, "the meta record is missing".to_owned()))?;
        let (_, in_record) = decode_meta(log, record).map_err(|e| db.corrupt_meta(log, e))?;
        if i64::try_from(in_record).ok() != Some(*purged) {
            return Err(db.corrupt_meta(log, format!("purged index {purged}, but its record says {in_record}")));
        }
    }
    Ok(())
}

fn log_id(grp: i64, node: i64) -> MemberId {
    MemberId {
        group: raftkv_core::GroupId(u64::from_ne_bytes(grp.to_ne_bytes())),
        node: NodeId(u64::from_ne_bytes(node.to_ne_bytes())),
    }
}

/// Rewrites a format-1 file in format 2 (see the module docs), or refuses a
/// file of an unknown format. Runs before anything else reads the tables.
pub(crate) async fn upgrade(conn: &mut SqliteConnection, db: &DbFile) -> Result<(), StorageError> {
    let version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| db.sqlx_opening("reading the record format", e))?;
    match version {
        FORMAT => return Ok(()),
        0 => {}
        other => {
            return Err(StorageError::Corrupt {
                location: db.path().display().to_string(),
                reason: format!("record format {other} is not supported (this version reads format {FORMAT})"),
            })
        }
    }
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(|e| db.sqlx("beginning a transaction", e))?;
    let mut rows = 0u64;
    // `log`, in key order, a chunk at a time.
    let mut after = (i64::MIN, i64::MIN, i64::MIN);
    loop {
        let chunk: Vec<(i64, i64, i64, Vec<u8>)> = sqlx::query_as(&format!(
            "SELECT grp, node, idx, value FROM log WHERE (grp, node, idx) > (?, ?, ?) ORDER BY grp, node, idx LIMIT {CHUNK}"
        ))
        .bind(after.0)
        .bind(after.1)
        .bind(after.2)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| db.sqlx("upgrading the log table", e))?;
        for (grp, node, idx, value) in &chunk {
            let (log, index) = (log_id(*grp, *node), u64::try_from(*idx).unwrap_or_default());
            let entry = codec::decode_entry(LogIndex(index), value).map_err(|e| db.corrupt_entry(log, index, &e))?;
            sqlx::query("UPDATE log SET value = ? WHERE grp = ? AND node = ? AND idx = ?")
                .bind(encode_entry(log, &entry))
                .bind(grp)
                .bind(node)
                .bind(idx)
                .execute(&mut *tx)
                .await
                .map_err(|e| db.sqlx("upgrading the log table", e))?;
        }
        rows += chunk.len() as u64;
        match chunk.last() {
            Some(&(grp, node, idx, _)) if chunk.len() as i64 == CHUNK => after = (grp, node, idx),
            _ => break,
        }
    }
    let mut after_seq = i64::MIN;
    loop {
        let chunk: Vec<(i64, i64, i64, i64, Vec<u8>)> = sqlx::query_as(&format!(
            "SELECT seq, grp, node, idx, value FROM journal WHERE seq > ? ORDER BY seq LIMIT {CHUNK}"
        ))
        .bind(after_seq)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| db.sqlx("upgrading the journal", e))?;
        for (seq, grp, node, idx, value) in &chunk {
            let (log, index) = (log_id(*grp, *node), u64::try_from(*idx).unwrap_or_default());
            let entry = codec::decode_entry(LogIndex(index), value)
                .map_err(|e| db.corrupt_journal_entry(log, index, *seq, &e))?;
            sqlx::query("UPDATE journal SET value = ? WHERE seq = ?")
                .bind(encode_entry(log, &entry))
                .bind(seq)
                .execute(&mut *tx)
                .await
                .map_err(|e| db.sqlx("upgrading the journal", e))?;
        }
        rows += chunk.len() as u64;
        match chunk.last() {
            Some(&(seq, ..)) if chunk.len() as i64 == CHUNK => after_seq = seq,
            _ => break,
        }
    }
    let metas: Vec<(i64, i64, Option<Vec<u8>>, i64)> = sqlx::query_as("SELECT grp, node, hard_state, purged FROM meta")
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| db.sqlx("upgrading the meta table", e))?;
    for (grp, node, hard_state, purged) in &metas {
        let log = log_id(*grp, *node);
        let hard_state = hard_state
            .as_deref()
            .map(codec::decode_hard_state)
            .transpose()
            .map_err(|e| db.corrupt_meta(log, format!("hard state: {e}")))?;
        let purged_index =
            u64::try_from(*purged).map_err(|_| db.corrupt_meta(log, format!("negative purged index {purged}")))?;
        sqlx::query("UPDATE meta SET hard_state = ? WHERE grp = ? AND node = ?")
            .bind(encode_meta(log, hard_state, purged_index))
            .bind(grp)
            .bind(node)
            .execute(&mut *tx)
            .await
            .map_err(|e| db.sqlx("upgrading the meta table", e))?;
    }
    sqlx::query(&format!("PRAGMA user_version = {FORMAT}"))
        .execute(&mut *tx)
        .await
        .map_err(|e| db.sqlx("recording the record format", e))?;
    tx.commit().await.map_err(|e| db.sqlx("commit", e))?;
    if rows + metas.len() as u64 > 0 {
        tracing::info!(path = %db.path().display(), rows, metas = metas.len(), "upgraded the records to format 2");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use raftkv_core::raft::EntryPayload;
    use raftkv_core::GroupId;

    use super::*;

    const A: MemberId = MemberId { group: GroupId(1), node: NodeId(2) };
    const B: MemberId = MemberId { group: GroupId(1), node: NodeId(3) };

    #[test]
    fn records_check_their_key() {
        let e = Entry { term: Term(4), index: LogIndex(7), payload: EntryPayload::Command(Bytes::from_static(b"z")) };
        let value = encode_entry(A, &e);
        assert_eq!(decode_entry(A, 7, &value), Ok(e));
        assert!(decode_entry(B, 7, &value).is_err(), "another member");
        assert!(decode_entry(A, 8, &value).is_err(), "another index");
        let hs = HardState { term: Term(3), vote: Some(NodeId(2)), commit: LogIndex(6) };
        let meta = encode_meta(A, Some(hs), 5);
        assert_eq!(decode_meta(A, &meta), Ok((Some(hs), 5)));
        assert_eq!(decode_meta(A, &encode_meta(A, None, 0)), Ok((None, 0)));
        assert!(decode_meta(B, &meta).is_err());
        let mut damaged = meta.clone();
        damaged[30] ^= 1;
        assert!(decode_meta(A, &damaged).is_err());
    }
}
