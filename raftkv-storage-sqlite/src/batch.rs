//! One group commit: queued commands validated against the cached bounds and
//! turned into SQL steps ([`plan`]), then executed in one transaction
//! ([`Batch::execute`]). A command that fails validation gets its error and
//! adds no step, so it has no effect and the others still commit.

use std::collections::HashMap;
use std::sync::OnceLock;

use raftkv_core::storage::{LogWrite, StorageError};
use raftkv_core::LogIndex;
use raftkv_core::MemberId;
use sqlx::{Connection, SqliteConnection};

use crate::bounds::{key_columns, LogMeta};
use crate::error::{index_too_large, DbFile};
use crate::journal::{self, JOURNAL_CHECKPOINT};
use crate::records;

/// A mutation queued for the writer.
#[derive(Debug)]
pub(crate) enum Command {
    /// `LogStore::write`.
    Write { log: MemberId, write: LogWrite },
    /// `LogStore::purge_through`.
    Purge { log: MemberId, through: LogIndex },
}

impl Command {
    pub(crate) fn log(&self) -> MemberId {
        match self {
            Self::Write { log, .. } | Self::Purge { log, .. } => *log,
        }
    }
}

/// One SQL change of a batch.
#[derive(Debug)]
enum Step {
    /// Remove the entries after `after`.
    DeleteAfter { log: MemberId, after: i64 },
    /// Remove the entries up to and including `through`.
    DeleteThrough { log: MemberId, through: i64 },
    /// Append rows to the journal. Consecutive appends, of any logs, share
    /// one step (and so as few statements as possible).
    Insert { rows: Vec<JournalRow> },
    /// Store the meta row (its record holds the hard state and purged index).
    PutMeta { log: MemberId, record: Vec<u8>, purged: i64 },
}

/// A journal row to insert: `(grp, node, idx, encoded entry)`.
type JournalRow = (i64, i64, i64, Vec<u8>);

/// The SQL steps of a batch and the bounds they lead to.
#[derive(Debug)]
pub(crate) struct Batch {
    steps: Vec<Step>,
    /// Bounds of every log touched, after the batch. `entry_bytes` counts the
    /// inserted bytes but not yet the deleted ones (known only once executed).
    metas: HashMap<MemberId, LogMeta>,
}

/// Validates `commands` in order against `metas` (each seeing the effect of the
/// valid ones before it). Returns one outcome per command and the batch to
/// commit (`None` when no command changes anything).
pub(crate) fn plan(
    commands: Vec<Command>,
    mut metas: HashMap<MemberId, LogMeta>,
) -> (Vec<Result<(), StorageError>>, Option<Batch>) {
    let mut steps = Vec::new();
    let mut dirty = Vec::new();
    let mut outcomes = Vec::with_capacity(commands.len());
    for command in commands {
        let log = command.log();
        let Some(meta) = metas.get_mut(&log) else {
            outcomes.push(Err(StorageError::Backend(format!("{log} was not opened through SqliteStorage::member"))));
            continue;
        };
        let before = (meta.hard_state, meta.purged);
        let outcome = match command {
            Command::Write { write, .. } => plan_write(log, meta, write, &mut steps),
            Command::Purge { through, .. } => plan_purge(log, meta, through, &mut steps),
        };
        if outcome.is_ok() && (meta.hard_state, meta.purged) != before && !dirty.contains(&log) {
            dirty.push(log);
        }
        outcomes.push(outcome);
    }
    for log in dirty {
        let meta = &metas[&log];
        let purged = i64::try_from(meta.purged).unwrap_or(i64::MAX);
        steps.push(Step::PutMeta { log, record: records::encode_meta(log, meta.hard_state, meta.purged), purged });
    }
    let batch = (!steps.is_empty()).then_some(Batch { steps, metas });
    (outcomes, batch)
}

/// Applies `write` to `meta` and adds its steps, or fails without touching either.
fn plan_write(log: MemberId, meta: &mut LogMeta, write: LogWrite, steps: &mut Vec<Step>) -> Result<(), StorageError> {
    let plan = meta.bounds().plan_write(&write)?;
    let rows = write
        .entries
        .iter()
        .map(|e| {
            Ok((i64::try_from(e.index.0).map_err(|_| index_too_large(log, e.index.0))?, records::encode_entry(log, e)))
        })
        .collect::<Result<Vec<_>, StorageError>>()?;

    if let Some((from, _)) = plan.remove {
        // from - 1 < last <= i64::MAX, so it fits.
        steps.push(Step::DeleteAfter { log, after: i64::try_from(from - 1).unwrap_or(i64::MAX) });
    }
    meta.last = plan.bounds.last;
    if !rows.is_empty() {
        meta.entry_bytes += rows.iter().map(|(_, value)| value.len() as u64).sum::<u64>();
        let (grp, node) = key_columns(log);
        let rows = rows.into_iter().map(|(idx, value)| (grp, node, idx, value));
        match steps.last_mut() {
            Some(Step::Insert { rows: queued }) => queued.extend(rows),
            _ => steps.push(Step::Insert { rows: rows.collect() }),
        }
    }
    if let Some(hard_state) = write.hard_state {
        meta.hard_state = Some(hard_state);
    }
    Ok(())
}

/// Applies a purge through `through` to `meta` and adds its steps.
fn plan_purge(log: MemberId, meta: &mut LogMeta, through: LogIndex, steps: &mut Vec<Step>) -> Result<(), StorageError> {
    let Some(plan) = meta.bounds().plan_purge(through) else { return Ok(()) };
    let bound = i64::try_from(through.0).map_err(|_| index_too_large(log, through.0))?;
    if plan.remove.is_some() {
        steps.push(Step::DeleteThrough { log, through: bound });
    }
    meta.purged = plan.bounds.purged;
    meta.last = plan.bounds.last;
    Ok(())
}

/// Most rows per multi-row `INSERT`. A step's rows are inserted in chunks of
/// a power of two up to this (64, ..., 2, 1 rows), so that a handful of
/// statement texts are ever prepared and few statements run per commit.
const INSERT_CHUNK: usize = 64;

/// `INSERT INTO journal ... VALUES` with `1 << shift` rows.
fn insert_sql(shift: u32) -> &'static str {
    const SIZES: usize = INSERT_CHUNK.trailing_zeros() as usize + 1;
    static SQL: [OnceLock<String>; SIZES] = [const { OnceLock::new() }; SIZES];
    SQL[shift as usize].get_or_init(|| {
        let values = vec!["(?, ?, ?, ?)"; 1 << shift].join(", ");
        format!("INSERT INTO journal (grp, node, idx, value) VALUES {values}")
    })
}

impl Batch {
    /// Runs every step in one `BEGIN IMMEDIATE` transaction and commits it
    /// (durably, under `synchronous = FULL`). `journal_rows` is the number of
    /// rows in the journal before the batch: from [`JOURNAL_CHECKPOINT`] on,
    /// the transaction first moves the journal into `log`. Returns the bounds
    /// to publish and the journal's row count after the commit.
    pub(crate) async fn execute(
        self,
        conn: &mut SqliteConnection,
        db: &DbFile,
        mut journal_rows: u64,
    ) -> Result<(HashMap<MemberId, LogMeta>, u64), StorageError> {
        let Self { steps, mut metas } = self;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(|e| db.sqlx("beginning a transaction", e))?;
        if journal_rows >= JOURNAL_CHECKPOINT {
            journal::checkpoint(&mut tx).await.map_err(|e| db.sqlx("checkpointing the journal", e))?;
            journal_rows = 0;
        }
        for step in steps {
            match step {
                Step::DeleteAfter { log, after } => {
                    let removed = delete(&mut tx, log, "idx > ?", after).await.map_err(|e| db.sqlx("truncating", e))?;
                    subtract(&mut metas, log, removed.bytes);
                    journal_rows = journal_rows.saturating_sub(removed.journal_rows);
                }
                Step::DeleteThrough { log, through } => {
                    let removed = delete(&mut tx, log, "idx <= ?", through).await.map_err(|e| db.sqlx("purging", e))?;
                    subtract(&mut metas, log, removed.bytes);
                    journal_rows = journal_rows.saturating_sub(removed.journal_rows);
                }
                Step::Insert { rows } => {
                    journal_rows += rows.len() as u64;
                    insert(&mut tx, rows).await.map_err(|e| db.sqlx("appending", e))?;
                }
                Step::PutMeta { log, record, purged } => {
                    let (grp, node) = key_columns(log);
                    sqlx::query(
                        "INSERT INTO meta (grp, node, hard_state, purged) VALUES (?, ?, ?, ?) \
                         ON CONFLICT (grp, node) DO UPDATE SET hard_state = excluded.hard_state, purged = excluded.purged",
                    )
                    .bind(grp)
                    .bind(node)
                    .bind(record)
                    .bind(purged)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db.sqlx("saving the hard state", e))?;
                }
            }
        }
        tx.commit().await.map_err(|e| db.sqlx("commit", e))?;
        Ok((metas, journal_rows))
    }
}

fn subtract(metas: &mut HashMap<MemberId, LogMeta>, log: MemberId, removed: u64) {
    if let Some(meta) = metas.get_mut(&log) {
        meta.entry_bytes = meta.entry_bytes.saturating_sub(removed);
    }
}

/// What [`delete`] removed.
struct Removed {
    /// Bytes of the values removed from both tables.
    bytes: u64,
    /// Rows removed from the journal.
    journal_rows: u64,
}

/// Deletes the entries of `log` matching `condition` (on `idx`, bound to
/// `bound`) from both `log` and the journal.
async fn delete(
    conn: &mut SqliteConnection,
    log: MemberId,
    condition: &str,
    bound: i64,
) -> Result<Removed, sqlx::Error> {
    let (grp, node) = key_columns(log);
    let mut removed = Removed { bytes: 0, journal_rows: 0 };
    for table in ["log", "journal"] {
        let bytes: i64 = sqlx::query_scalar(&format!(
            "SELECT COALESCE(SUM(LENGTH(value)), 0) FROM {table} WHERE grp = ? AND node = ? AND {condition}"
        ))
        .bind(grp)
        .bind(node)
        .bind(bound)
        .fetch_one(&mut *conn)
        .await?;
        let done = sqlx::query(&format!("DELETE FROM {table} WHERE grp = ? AND node = ? AND {condition}"))
            .bind(grp)
            .bind(node)
            .bind(bound)
            .execute(&mut *conn)
            .await?;
        removed.bytes += u64::try_from(bytes).unwrap_or_default();
        if table == "journal" {
            removed.journal_rows = done.rows_affected();
        }
    }
    Ok(removed)
}

async fn insert(conn: &mut SqliteConnection, rows: Vec<JournalRow>) -> Result<(), sqlx::Error> {
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        // The largest power of two not above the rows left (and INSERT_CHUNK).
        let shift = rows.len().min(INSERT_CHUNK).ilog2();
        let mut query = sqlx::query(insert_sql(shift));
        for (grp, node, idx, value) in rows.by_ref().take(1 << shift) {
            query = query.bind(grp).bind(node).bind(idx).bind(value);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use raftkv_core::raft::{Entry, EntryPayload, HardState};
    use raftkv_core::{GroupId, NodeId, Term};

    use super::*;

    const A: MemberId = MemberId { group: GroupId(1), node: NodeId(1) };
    const B: MemberId = MemberId { group: GroupId(2), node: NodeId(1) };

    fn ents(range: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
        range.map(|i| Entry { term: Term(1), index: LogIndex(i), payload: EntryPayload::Blank }).collect()
    }

    fn append(log: MemberId, range: std::ops::RangeInclusive<u64>) -> Command {
        Command::Write { log, write: LogWrite { entries: ents(range), ..LogWrite::default() } }
    }

    fn metas() -> HashMap<MemberId, LogMeta> {
        [(A, LogMeta { purged: 0, last: 3, ..LogMeta::default() }), (B, LogMeta::default())].into_iter().collect()
    }

    #[test]
    fn later_commands_see_earlier_ones_and_invalid_ones_are_skipped() {
        let commands = vec![
            append(A, 4..=5),
            append(A, 9..=9),
            append(A, 6..=6),
            append(B, 1..=2),
            Command::Write { log: B, write: LogWrite { truncate_after: Some(LogIndex(1)), ..LogWrite::default() } },
        ];
        let (outcomes, batch) = plan(commands, metas());
        assert!(outcomes[0].is_ok() && outcomes[2].is_ok() && outcomes[3].is_ok() && outcomes[4].is_ok());
        assert!(matches!(outcomes[1], Err(StorageError::NotContiguous { last: LogIndex(5), got: LogIndex(9) })));
        let batch = batch.expect("steps to commit");
        assert_eq!((batch.metas[&A].last, batch.metas[&B].last), (6, 1));
        // The three appends share one insert step; the truncation of B follows it.
        assert_eq!(batch.steps.len(), 2, "one insert and one truncation: {:?}", batch.steps);
        assert!(matches!(&batch.steps[0], Step::Insert { rows } if rows.len() == 5), "{:?}", batch.steps);
    }

    #[test]
    fn no_op_commands_commit_nothing() {
        let commands = vec![
            Command::Purge { log: B, through: LogIndex(0) },
            Command::Write { log: A, write: LogWrite::default() },
            Command::Write { log: A, write: LogWrite { truncate_after: Some(LogIndex(9)), ..LogWrite::default() } },
            append(A, 7..=7),
        ];
        let (outcomes, batch) = plan(commands, metas());
        assert!(outcomes[..3].iter().all(Result::is_ok));
        assert!(outcomes[3].is_err());
        assert!(batch.is_none());
    }

    #[test]
    fn purge_and_hard_state_write_one_meta_row_per_log() {
        let hs = HardState { term: Term(2), vote: Some(NodeId(1)), commit: LogIndex(1) };
        let commands = vec![
            Command::Write { log: A, write: LogWrite { hard_state: Some(hs), ..LogWrite::default() } },
            Command::Purge { log: A, through: LogIndex(8) },
            append(A, 9..=9),
        ];
        let (outcomes, batch) = plan(commands, metas());
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
        let batch = batch.expect("steps to commit");
        let meta = batch.metas[&A];
        assert_eq!((meta.purged, meta.last, meta.hard_state), (8, 9, Some(hs)));
        let metas = batch.steps.iter().filter(|s| matches!(s, Step::PutMeta { .. })).count();
        assert_eq!(metas, 1);
    }

    #[test]
    fn insert_statements_hold_powers_of_two_rows() {
        for shift in 0..=INSERT_CHUNK.ilog2() {
            assert_eq!(insert_sql(shift).matches("(?, ?, ?, ?)").count(), 1 << shift);
            assert!(insert_sql(shift).starts_with("INSERT INTO journal "));
        }
    }

    #[test]
    fn indices_beyond_sqlite_integers_are_rejected() {
        let mut far = metas();
        far.insert(A, LogMeta { purged: i64::MAX as u64, last: i64::MAX as u64, ..LogMeta::default() });
        let (outcomes, batch) = plan(vec![append(A, i64::MAX as u64 + 1..=i64::MAX as u64 + 1)], far);
        assert!(matches!(outcomes[0], Err(StorageError::Backend(_))), "{outcomes:?}");
        assert!(batch.is_none());
    }
}
