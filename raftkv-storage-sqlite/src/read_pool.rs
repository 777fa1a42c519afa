//! A small pool of read connections. WAL lets them read the last committed
//! state while the writer commits. (sqlx's own `Pool` is not used: its
//! background reaper and acquire timeouts would run on tokio timers, which the
//! deterministic simulator must control.)

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use raftkv_core::storage::StorageError;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use crate::blocking::run_db;
use crate::error::DbFile;

/// Read connections, opened on demand; up to `keep` idle ones are kept.
#[derive(Debug)]
pub(crate) struct ReadPool {
    db: DbFile,
    options: SqliteConnectOptions,
    keep: usize,
    idle: Mutex<Vec<SqliteConnection>>,
    closed: AtomicBool,
}

impl ReadPool {
    pub(crate) fn new(db: DbFile, options: SqliteConnectOptions, keep: usize) -> Self {
        Self { db, options, keep, idle: Mutex::new(Vec::new()), closed: AtomicBool::new(false) }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<SqliteConnection>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `read` with a connection (by value; it hands it back) on the
    /// blocking pool. A connection whose read failed is not reused.
    pub(crate) async fn read<T, F, Fut>(&self, read: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(SqliteConnection) -> Fut + Send + 'static,
        Fut: Future<Output = (SqliteConnection, Result<T, StorageError>)>,
    {
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::Closed);
        }
        let idle = self.idle().pop();
        let (options, db) = (self.options.clone(), self.db.clone());
        let (conn, result) = run_db(move || async move {
            let conn = match idle {
                Some(conn) => conn,
                None => match options.connect().await {
                    Ok(conn) => conn,
                    Err(e) => return (None, Err(db.sqlx("opening a read connection", e))),
                },
            };
            let (conn, result) = read(conn).await;
            (Some(conn), result)
        })
        .await?;
        if let (Some(conn), Ok(_)) = (conn, &result) {
            let mut idle = self.idle();
            if idle.len() < self.keep && !self.closed.load(Ordering::Acquire) {
                idle.push(conn);
            }
        }
        result
    }

    /// Closes the idle connections; later reads fail with `Closed`.
    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let idle = std::mem::take(&mut *self.idle());
        if idle.is_empty() {
            return;
        }
        let closed = run_db(move || async move {
            for conn in idle {
                if let Err(e) = conn.close().await {
                    tracing::warn!(error = %e, "closing a read connection failed");
                }
            }
        })
        .await;
        if let Err(e) = closed {
            tracing::warn!(error = %e, "closing the read connections failed");
        }
    }
}
