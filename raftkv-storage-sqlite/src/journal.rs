//! The append journal (`journal` table, `migrations/0002_journal.sql`).
//!
//! Entries appended by a batch go only into `journal`, a rowid table without
//! secondary index, so every insert lands on its last page: a commit carrying
//! one entry for each of 16 logs dirties one or two journal pages instead of
//! one `log` B-tree page per log, and the WAL frames fsynced per commit shrink
//! accordingly. Once the journal holds [`JOURNAL_CHECKPOINT`] rows, the next
//! batch first moves every row into `log`, in `seq` order, within its own
//! transaction ([`checkpoint`]); the database is also checkpointed when it is
//! opened and when it is closed.
//!
//! Truncation and purges delete from both tables, and reads merge them (a
//! `(grp, node, idx)` present in both: the journal's row wins), so where an
//! entry lives is invisible outside this crate.

use raftkv_core::storage::StorageError;
use sqlx::{Connection, SqliteConnection};

use crate::error::DbFile;

/// Journal rows that make the next batch move the journal into `log` first.
pub(crate) const JOURNAL_CHECKPOINT: u64 = 2048;

/// Rows currently in the journal.
pub(crate) async fn rows(conn: &mut SqliteConnection) -> Result<u64, sqlx::Error> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM journal").fetch_one(&mut *conn).await?;
    Ok(u64::try_from(count).unwrap_or_default())
}

/// Moves every journal row into `log`, in `seq` order (a later row for the
/// same key replaces an earlier one), and empties the journal. Runs inside
/// the caller's transaction.
pub(crate) async fn checkpoint(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT OR REPLACE INTO log (grp, node, idx, value) SELECT grp, node, idx, value FROM journal ORDER BY seq",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM journal").execute(&mut *conn).await?;
    Ok(())
}

/// Checkpoints a non-empty journal in a transaction of its own (on open and
/// close).
pub(crate) async fn checkpoint_now(conn: &mut SqliteConnection, db: &DbFile) -> Result<(), StorageError> {
    if rows(conn).await.map_err(|e| db.sqlx("reading the journal", e))? == 0 {
        return Ok(());
    }
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(|e| db.sqlx("beginning a transaction", e))?;
    checkpoint(&mut tx).await.map_err(|e| db.sqlx("checkpointing the journal", e))?;
    tx.commit().await.map_err(|e| db.sqlx("commit", e))
}
