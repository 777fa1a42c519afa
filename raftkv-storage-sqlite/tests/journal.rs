//! The append journal: entries are appended to `journal` and moved into `log`
//! by checkpoints (every 2048 journal rows, and on open and close). Reads,
//! truncation, purges, sizes and corruption reports see both tables.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns panic on purpose

use std::path::Path;

use raftkv_core::raft::Entry;
use raftkv_core::storage::{codec, LogStore, LogWrite, StorageError};
use raftkv_core::{GroupId, LogIndex, NodeId};
use raftkv_storage_sqlite::{SqliteLogStore, SqliteOptions, SqliteStorage};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

fn ents(range: std::ops::RangeInclusive<u64>, term: u64, tag: &str) -> Vec<Entry> {
    raftkv_testkit::tagged_entries(range, term, tag)
}

/// The value the store keeps for entry `entry` of member (1, 1): the entry
/// record whose checksum also covers its key (record format 2).
fn stored_value(entry: &Entry) -> Vec<u8> {
    let mut key = Vec::with_capacity(24);
    key.extend_from_slice(&1i64.to_le_bytes());
    key.extend_from_slice(&1i64.to_le_bytes());
    key.extend_from_slice(&entry.index.0.to_le_bytes());
    codec::encode_entry_keyed(&key, entry)
}

fn bytes_of(entries: &[Entry]) -> u64 {
    entries.iter().map(|e| codec::encode_entry(e).len() as u64).sum()
}

/// Rows of member (grp, node) in `table`, read behind the store's back
/// (WAL lets this connection read while the store is open).
async fn rows(db: &Path, table: &str, grp: i64, node: i64) -> Vec<i64> {
    let mut conn = SqliteConnectOptions::new().filename(db).connect().await.expect("raw connection");
    let rows = sqlx::query_scalar(&format!("SELECT idx FROM {table} WHERE grp = ? AND node = ? ORDER BY idx"))
        .bind(grp)
        .bind(node)
        .fetch_all(&mut conn)
        .await
        .expect("read rows");
    conn.close().await.expect("close raw connection");
    rows
}

async fn all(log: &SqliteLogStore) -> Vec<Entry> {
    let state = log.state().await.expect("state");
    log.entries(state.first_index, LogIndex(state.last_index.0 + 1)).await.expect("entries")
}

#[tokio::test]
async fn entries_split_between_journal_and_log_read_as_one_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("open");
    let (log, _) = storage.member(GroupId(1), NodeId(1)).await.expect("member");
    log.append(ents(1..=5, 1, "a")).await.expect("append");
    let db = storage.path().to_path_buf();
    assert_eq!(rows(&db, "journal", 1, 1).await, vec![1, 2, 3, 4, 5], "appends go to the journal");
    assert!(rows(&db, "log", 1, 1).await.is_empty());
    storage.close().await;

    // Closing checkpointed; new appends go to the journal again.
    let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("reopen");
    let (log, _) = storage.member(GroupId(1), NodeId(1)).await.expect("member");
    log.append(ents(6..=8, 1, "a")).await.expect("append");
    assert_eq!(rows(&db, "log", 1, 1).await, vec![1, 2, 3, 4, 5]);
    assert_eq!(rows(&db, "journal", 1, 1).await, vec![6, 7, 8]);

    let expected = ents(1..=8, 1, "a");
    assert_eq!(all(&log).await, expected);
    assert_eq!(log.entries(LogIndex(4), LogIndex(7)).await.expect("across"), expected[3..6].to_vec());
    assert_eq!(log.entries(LogIndex(7), LogIndex(9)).await.expect("journal only"), expected[6..].to_vec());
    assert_eq!(log.entries(LogIndex(2), LogIndex(4)).await.expect("log only"), expected[1..3].to_vec());
    assert_eq!(log.size_bytes().await.expect("size"), bytes_of(&expected));
    let state = log.state().await.expect("state");
    assert_eq!((state.first_index, state.last_index), (LogIndex(1), LogIndex(8)));
    storage.close().await;
}

#[tokio::test]
async fn truncate_and_purge_remove_rows_from_both_tables() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("open");
    let (log, _) = storage.member(GroupId(3), NodeId(2)).await.expect("member");
    log.append(ents(1..=6, 1, "a")).await.expect("append");
    storage.close().await;

    let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("reopen");
    let db = storage.path().to_path_buf();
    let (log, _) = storage.member(GroupId(3), NodeId(2)).await.expect("member");
    log.append(ents(7..=10, 1, "a")).await.expect("append");
    // Truncation reaching into `log` (after 4) removes 5..=6 there and 7..=10 in the journal.
    log.write(LogWrite { truncate_after: Some(LogIndex(4)), entries: ents(5..=7, 2, "b"), ..LogWrite::default() })
        .await
        .expect("truncate and append");
    assert_eq!(rows(&db, "log", 3, 2).await, vec![1, 2, 3, 4]);
    assert_eq!(rows(&db, "journal", 3, 2).await, vec![5, 6, 7]);
    let mut expected = ents(1..=4, 1, "a");
    expected.extend(ents(5..=7, 2, "b"));
    assert_eq!(all(&log).await, expected);
    assert_eq!(log.size_bytes().await.expect("size"), bytes_of(&expected));

    // A purge reaching into the journal removes all of `log` and part of the journal.
    log.purge_through(LogIndex(5)).await.expect("purge");
    assert!(rows(&db, "log", 3, 2).await.is_empty());
    assert_eq!(rows(&db, "journal", 3, 2).await, vec![6, 7]);
    assert_eq!(all(&log).await, expected[5..].to_vec());
    assert_eq!(log.size_bytes().await.expect("size"), bytes_of(&expected[5..]));
    assert!(matches!(
        log.entries(LogIndex(5), LogIndex(7)).await,
        Err(StorageError::Compacted { index: LogIndex(5), first: LogIndex(6) })
    ));

    // A truncation inside the journal only.
    log.write(LogWrite { truncate_after: Some(LogIndex(6)), ..LogWrite::default() }).await.expect("truncate");
    assert_eq!(rows(&db, "journal", 3, 2).await, vec![6]);
    storage.close().await;

    let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("reopen");
    let (log, _) = storage.member(GroupId(3), NodeId(2)).await.expect("member");
    let state = log.state().await.expect("state");
    assert_eq!((state.first_index, state.last_index), (LogIndex(6), LogIndex(6)));
    assert_eq!(all(&log).await, expected[5..6].to_vec());
    assert_eq!(log.size_bytes().await.expect("size"), bytes_of(&expected[5..6]));
    storage.close().await;
}

#[tokio::test]
async fn a_long_journal_is_checkpointed_and_survives_reopening() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("open");
    let db = storage.path().to_path_buf();
    let (log, _) = storage.member(GroupId(1), NodeId(1)).await.expect("member");
    let expected = ents(1..=3000, 1, "a");
    for chunk in expected.chunks(100) {
        log.append(chunk.to_vec()).await.expect("append");
    }
    // The journal reached 2048 rows at entry 2100: that batch moved it into `log` first.
    let (in_log, in_journal) = (rows(&db, "log", 1, 1).await, rows(&db, "journal", 1, 1).await);
    assert_eq!(in_log, (1..=2100).collect::<Vec<i64>>());
    assert_eq!(in_journal, (2101..=3000).collect::<Vec<i64>>());
    assert_eq!(all(&log).await, expected);
    assert_eq!(log.size_bytes().await.expect("size"), bytes_of(&expected));
    storage.close().await;

    let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("reopen");
    let (log, _) = storage.member(GroupId(1), NodeId(1)).await.expect("member");
    assert_eq!(rows(&db, "log", 1, 1).await.len(), 3000);
    assert!(rows(&db, "journal", 1, 1).await.is_empty());
    assert_eq!(all(&log).await, expected);
    assert_eq!(log.size_bytes().await.expect("size"), bytes_of(&expected));
    storage.close().await;
}

#[tokio::test]
async fn opening_moves_a_leftover_journal_into_the_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("open");
    let db = storage.path().to_path_buf();
    let (log, _) = storage.member(GroupId(1), NodeId(1)).await.expect("member");
    log.append(ents(1..=2, 1, "a")).await.expect("append");
    storage.close().await;
    // What a crash would leave: entries 3..=4 still in the journal.
    let mut conn = SqliteConnectOptions::new().filename(&db).connect().await.expect("raw connection");
    for entry in ents(3..=4, 1, "a") {
        sqlx::query("INSERT INTO journal (grp, node, idx, value) VALUES (1, 1, ?, ?)")
            .bind(entry.index.0 as i64)
            .bind(stored_value(&entry))
            .execute(&mut conn)
            .await
            .expect("insert");
    }
    conn.close().await.expect("close raw connection");

    let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("reopen");
    assert_eq!(rows(&db, "log", 1, 1).await, vec![1, 2, 3, 4]);
    assert!(rows(&db, "journal", 1, 1).await.is_empty());
    let (log, _) = storage.member(GroupId(1), NodeId(1)).await.expect("member");
    assert_eq!(all(&log).await, ents(1..=4, 1, "a"));
    storage.close().await;
}

#[tokio::test]
async fn a_journal_shared_by_several_members_keeps_them_apart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ids = [(1, 1), (1, 2), (2, 1), (u64::MAX, 7)];
    let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("open");
    let db = storage.path().to_path_buf();
    let mut logs = Vec::new();
    for (group, node) in ids {
        logs.push(storage.member(GroupId(group), NodeId(node)).await.expect("member").0);
    }
    // Interleaved appends: every member's entries end up mixed in the journal.
    for i in 1..=10 {
        let mut tasks = Vec::new();
        for (m, log) in logs.iter().enumerate() {
            let log = log.clone();
            tasks.push(tokio::spawn(async move { log.append(ents(i..=i, 1, &format!("m{m}"))).await }));
        }
        for task in tasks {
            task.await.expect("task").expect("append");
        }
    }
    logs[1].write(LogWrite { truncate_after: Some(LogIndex(6)), ..LogWrite::default() }).await.expect("truncate");
    logs[2].purge_through(LogIndex(4)).await.expect("purge");
    let mut expected: Vec<Vec<Entry>> = (0..ids.len()).map(|m| ents(1..=10, 1, &format!("m{m}"))).collect();
    expected[1].truncate(6);
    expected[2].drain(..4);
    let journal_rows: i64 = {
        let mut conn = SqliteConnectOptions::new().filename(&db).connect().await.expect("raw connection");
        let n = sqlx::query_scalar("SELECT COUNT(*) FROM journal").fetch_one(&mut conn).await.expect("count");
        conn.close().await.expect("close raw connection");
        n
    };
    assert_eq!(journal_rows, 10 + 6 + 6 + 10);
    for round in 0..2 {
        for (m, log) in logs.iter().enumerate() {
            assert_eq!(all(log).await, expected[m], "member {m}, round {round}");
            assert_eq!(log.size_bytes().await.expect("size"), bytes_of(&expected[m]), "member {m}, round {round}");
        }
        if round == 0 {
            storage.close().await;
            let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("reopen");
            logs.clear();
            for (group, node) in ids {
                logs.push(storage.member(GroupId(group), NodeId(node)).await.expect("member").0);
            }
            assert_eq!(rows(&db, "log", -1, 7).await, (1..=10).collect::<Vec<i64>>());
        }
    }
}

#[tokio::test]
async fn a_damaged_journal_entry_is_reported_with_its_seq() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("open");
    let (other, _) = storage.member(GroupId(9), NodeId(9)).await.expect("member");
    other.append(ents(1..=1, 1, "o")).await.expect("append");
    let (log, _) = storage.member(GroupId(1), NodeId(1)).await.expect("member");
    log.append(ents(1..=5, 1, "a")).await.expect("append");
    // Entry 3 of member (1, 1) is journal row 4; flip the last byte of its record.
    let mut conn = SqliteConnectOptions::new().filename(storage.path()).connect().await.expect("raw connection");
    let (seq, mut value): (i64, Vec<u8>) =
        sqlx::query_as("SELECT seq, value FROM journal WHERE grp = 1 AND node = 1 AND idx = 3")
            .fetch_one(&mut conn)
            .await
            .expect("entry 3");
    assert_eq!(seq, 4);
    *value.last_mut().expect("non-empty record") ^= 0xff;
    sqlx::query("UPDATE journal SET value = ? WHERE seq = ?")
        .bind(value)
        .bind(seq)
        .execute(&mut conn)
        .await
        .expect("tamper");
    conn.close().await.expect("close raw connection");

    assert_eq!(log.entries(LogIndex(1), LogIndex(3)).await.expect("undamaged"), ents(1..=2, 1, "a"));
    let err = log.entries(LogIndex(1), LogIndex(6)).await.expect_err("entry 3 is damaged");
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err:?}");
    let location = format!("{} log (group 1, node 1, index 3) (journal seq 4)", storage.path().display());
    assert!(err.to_string().contains(&location), "{err}");
    assert!(err.to_string().contains("checksum"), "{err}");
    storage.close().await;
}

#[tokio::test]
async fn a_journal_row_wins_over_a_log_row_with_the_same_index() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("open");
    let (log, _) = storage.member(GroupId(1), NodeId(1)).await.expect("member");
    log.append(ents(1..=3, 1, "a")).await.expect("append");
    storage.close().await;

    // Not something the store writes itself (truncation removes stale rows),
    // but if both tables hold index 2, reads and bounds use the journal's.
    let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("reopen");
    let replacement = ents(2..=2, 1, "replacement-for-two");
    let mut conn = SqliteConnectOptions::new().filename(storage.path()).connect().await.expect("raw connection");
    sqlx::query("INSERT INTO journal (grp, node, idx, value) VALUES (1, 1, 2, ?)")
        .bind(stored_value(&replacement[0]))
        .execute(&mut conn)
        .await
        .expect("insert");
    conn.close().await.expect("close raw connection");
    let (log, _) = storage.member(GroupId(1), NodeId(1)).await.expect("member");
    let expected = [ents(1..=1, 1, "a"), replacement, ents(3..=3, 1, "a")].concat();
    assert_eq!(log.state().await.expect("state").last_index, LogIndex(3));
    assert_eq!(all(&log).await, expected);
    assert_eq!(log.size_bytes().await.expect("size"), bytes_of(&expected));
    storage.close().await;

    // Checkpointing (here when opening: the store did not write that row) keeps the journal's row too.
    let storage = SqliteStorage::open(dir.path(), SqliteOptions::default()).await.expect("reopen");
    let (log, _) = storage.member(GroupId(1), NodeId(1)).await.expect("member");
    assert_eq!(all(&log).await, expected);
    storage.close().await;
}
