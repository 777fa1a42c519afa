//! The tables (`migrations/*.sql`, embedded in the binary) and the checks run
//! on the file when it is opened.
//!
//! Migrations are embedded with `include_str!` and run by sqlx's [`Migrator`],
//! which records them in `_sqlx_migrations`; this needs sqlx's `migrate`
//! feature but not its `macros` (no `sqlx::migrate!`, no build-time database).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use raftkv_core::storage::StorageError;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::SqliteConnection;

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

/// `PRAGMA quick_check`: fails, naming the file, if SQLite finds damage.
pub(crate) async fn check(conn: &mut SqliteConnection, db: &DbFile) -> Result<(), StorageError> {
    let problems: Vec<String> = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| db.sqlx("integrity check", e))?;
    if problems.iter().all(|p| p == "ok") {
        Ok(())
    } else {
        Err(db.failed_check(&problems))
    }
}
