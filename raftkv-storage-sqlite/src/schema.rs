//! The tables (`migrations/*.sql`, embedded in the binary) and the checks run
//! on the file when it is opened.
//!
//! Migrations are embedded with `include_str!` and run by sqlx's [`Migrator`],
//! which records them in `_sqlx_migrations`; this needs sqlx's `migrate`
//! feature but not its `macros` (no `sqlx::migrate!`, no build-time database).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;

use raftkv_core::storage::StorageError;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use crate::error::DbFile;

/// Every migration, in order: (version, description, SQL).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (2, "journal", include_str!("../migrations/0002_journal.sql")),
];

/// The migrations compiled into this crate.
#[derive(Debug)]
struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        let migrations = MIGRATIONS
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(version, Cow::Borrowed(description), MigrationType::Simple, Cow::Borrowed(sql), false)
            })
            .collect();
        Box::pin(std::future::ready(Ok(migrations)))
    }
}

/// Creates or upgrades the tables.
pub(crate) async fn migrate(conn: &mut SqliteConnection, db: &DbFile) -> Result<(), StorageError> {
    let migrator = Migrator::new(Embedded).await.map_err(|e| db.migrate(e))?;
    migrator.run(conn).await.map_err(|e| db.migrate(e))
}

/// A `sqlite_schema` row (type, name, table, SQL), as bytes.
type SchemaRow = (Vec<u8>, Vec<u8>, Vec<u8>, Option<Vec<u8>>);
/// A schema: its rows, sorted.
type Schema = Vec<SchemaRow>;

/// The schema of the database open on `conn` (as bytes: a damaged one need not be UTF-8).
async fn schema_of(conn: &mut SqliteConnection) -> Result<Schema, sqlx::Error> {
    sqlx::query_as(
        "SELECT CAST(type AS BLOB), CAST(name AS BLOB), CAST(tbl_name AS BLOB), CAST(sql AS BLOB) \
         FROM sqlite_schema ORDER BY 1, 2",
    )
    .fetch_all(&mut *conn)
    .await
}

/// The schema the migrations create, from an empty in-memory database (once per process).
async fn expected_schema() -> Result<&'static Schema, StorageError> {
    static EXPECTED: tokio::sync::OnceCell<Schema> = tokio::sync::OnceCell::const_new();
    EXPECTED
        .get_or_try_init(|| async {
            let failed = |e: &dyn std::fmt::Display| StorageError::Backend(format!("the reference schema: {e}"));
            let mut reference = SqliteConnectOptions::from_str("sqlite::memory:")
                .map_err(|e| failed(&e))?
                .disable_statement_logging()
                .connect()
                .await
                .map_err(|e| failed(&e))?;
            let migrator = Migrator::new(Embedded).await.map_err(|e| failed(&e))?;
            migrator.run(&mut reference).await.map_err(|e| failed(&e))?;
            let schema = schema_of(&mut reference).await.map_err(|e| failed(&e))?;
            let _ = reference.close().await;
            Ok(schema)
        })
        .await
}

/// Fails, naming the file, unless the schema is exactly what the
/// migrations create: a damaged byte in a table's definition would
/// otherwise surface later as a puzzling SQL error, or change what a column
/// means.
pub(crate) async fn verify(conn: &mut SqliteConnection, db: &DbFile) -> Result<(), StorageError> {
    let found = schema_of(conn).await.map_err(|e| db.sqlx_opening("reading the schema", e))?;
    let expected = expected_schema().await?;
    if let Some((e, f)) = expected.iter().zip(&found).find(|(e, f)| e != f) {
        let show = |row: &SchemaRow| {
            let sql = row.3.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            format!("{} {}: {sql:?}", String::from_utf8_lossy(&row.0), String::from_utf8_lossy(&row.1))
        };
        return Err(db.corrupt_schema(format!("expected {}, found {}", show(e), show(f))));
    }
    if expected.len() != found.len() {
        return Err(db.corrupt_schema(format!("{} schema entries, expected {}", found.len(), expected.len())));
    }
    Ok(())
}

/// `PRAGMA quick_check`: fails, naming the file, if SQLite finds damage.
pub(crate) async fn check(conn: &mut SqliteConnection, db: &DbFile) -> Result<(), StorageError> {
    let problems: Vec<String> = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| db.sqlx_opening("integrity check", e))?;
    if problems.iter().all(|p| p == "ok") {
        Ok(())
    } else {
        Err(db.failed_check(&problems))
    }
}
