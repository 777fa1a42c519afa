//! The single writer: one task owning the write connection, committing every
//! mutation of every log (group commit).
//!
//! It takes the first queued request, drains every other request already
//! queued (up to [`MAX_BATCH`]), validates them in order ([`plan`]), applies
//! the valid ones in ONE transaction, commits once, and only then answers each.
//! Requests of one caller stay in the order they were queued. Appended entries
//! go to the journal, which a batch moves into `log` first once it is long
//! enough and which is moved once more when the writer shuts down (see
//! [`crate::journal`].
//!
//! # A failed batch changed nothing
//!
//! When a batch fails (a full disk, an I/O error), its transaction is rolled
//! back — SQLite commits whole transactions or nothing — and every request
//! in it gets the error. The writer then gets back to a known state by
//! itself: it drops its connection, opens a new one, and reloads the bounds
//! of every cached log and the journal's size from what is committed. Until
//! that succeeds, each new batch tries it first and fails with its error.
//! So once the cause is gone, the same write submitted again succeeds, and
//! nothing acknowledged is lost or applied twice. (A commit whose sync
//! failed may have left its frames in SQLite's log, invisible to this
//! process and overwritten by the next commit; only a crash before that
//! could bring them back, as for any write that was not acknowledged.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use raftkv_core::storage::StorageError;
use raftkv_core::MemberId;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use crate::batch::{plan, Command};
use crate::blocking::run_db;
use crate::bounds::{self, Bounds, LogMeta};
use crate::error::{duplicate, DbFile};
use crate::journal;

/// Most requests committed in one transaction.
const MAX_BATCH: usize = 1024;
/// Yields spent gathering more requests into one commit while they keep arriving.
const GATHER_ROUNDS: usize = 4;

type Reply = oneshot::Sender<Result<(), StorageError>>;

enum Message {
    Request(Command, Reply),
    Close(oneshot::Sender<()>),
}

/// Sends commands to the writer task; the task ends when every handle is
/// dropped or on [`WriterHandle::close`].
#[derive(Debug, Clone)]
pub(crate) struct WriterHandle {
    tx: mpsc::UnboundedSender<Message>,
}

impl WriterHandle {
    /// Starts the writer task on the current runtime; the journal of `conn`'s
    /// database must be empty (checkpointed when opening). `connect` opens a
    /// new connection after a failed batch.
    pub(crate) fn spawn(
        conn: SqliteConnection,
        connect: SqliteConnectOptions,
        db: DbFile,
        bounds: Arc<Bounds>,
        commits: Arc<AtomicU64>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Writer { conn: Some(conn), connect, db, bounds, commits, rx, broken: false, journal_rows: 0 };
        tokio::spawn(writer.run());
        Self { tx }
    }

    /// Queues `command` and waits until it is durable (or rejected).
    pub(crate) async fn submit(&self, command: Command) -> Result<(), StorageError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Message::Request(command, reply)).map_err(|_| StorageError::Closed)?;
        answer.await.map_err(|_| StorageError::Closed)?
    }

    /// Stops the writer after the requests queued before this call and closes
    /// its connection; later requests fail with [`StorageError::Closed`].
    pub(crate) async fn close(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Message::Close(ack)).is_ok() {
            let _ = done.await;
        }
    }
}

struct Writer {
    conn: Option<SqliteConnection>,
    connect: SqliteConnectOptions,
    db: DbFile,
    bounds: Arc<Bounds>,
    commits: Arc<AtomicU64>,
    rx: mpsc::UnboundedReceiver<Message>,
    /// Set after a failed batch until [`Writer::recover`] succeeds.
    broken: bool,
    /// Rows in the journal (committed).
    journal_rows: u64,
}

impl Writer {
    async fn run(mut self) {
        while let Some(message) = self.rx.recv().await {
            let mut batch = Vec::new();
            let mut close = None;
            match message {
                Message::Request(command, reply) => batch.push((command, reply)),
                Message::Close(ack) => close = Some(ack),
            }
            // Gather: give writers woken by the previous commit a chance to
            // queue their next request, as long as new ones keep arriving.
            for _ in 0..GATHER_ROUNDS {
                if close.is_some() {
                    break;
                }
                tokio::task::yield_now().await;
                let before = batch.len();
                while close.is_none() && batch.len() < MAX_BATCH {
                    match self.rx.try_recv() {
                        Ok(Message::Request(command, reply)) => batch.push((command, reply)),
                        Ok(Message::Close(ack)) => close = Some(ack),
                        Err(_) => break,
                    }
                }
                if batch.len() == before || batch.len() >= MAX_BATCH {
                    break;
                }
            }
            if !batch.is_empty() {
                self.commit(batch).await;
            }
            if let Some(ack) = close {
                self.shut_down().await;
                let _ = ack.send(());
                return;
            }
        }
        self.shut_down().await;
    }

    /// Commits one batch and answers its requests.
    async fn commit(&mut self, batch: Vec<(Command, Reply)>) {
        let (commands, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        if self.broken {
            if let Err(err) = self.recover().await {
                for reply in replies {
                    let _ = reply.send(Err(duplicate(&err)));
                }
                return;
            }
        }
        let metas = self.bounds.snapshot(commands.iter().map(Command::log));
        let requests = commands.len();
        let (outcomes, batch) = plan(commands, metas);
        if let Some(batch) = batch {
            let committed = match self.conn.take() {
                None => Err(StorageError::Closed),
                Some(mut conn) => {
                    let (db, journal_rows) = (self.db.clone(), self.journal_rows);
                    let done = run_db(move || async move {
                        let result = batch.execute(&mut conn, &db, journal_rows).await;
                        (conn, result)
                    })
                    .await;
                    match done {
                        Ok((conn, result)) => {
                            self.conn = Some(conn);
                            result
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            match committed {
                Ok((metas, journal_rows)) => {
                    self.journal_rows = journal_rows;
                    self.commits.fetch_add(1, Ordering::Relaxed);
                    self.bounds.publish(metas);
                    tracing::trace!(requests, "group commit");
                }
                Err(err) => {
                    tracing::error!(error = %err, requests, "group commit failed; the writes changed nothing and may be retried");
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        let _ = reply.send(outcome.and_then(|()| Err(duplicate(&err))));
                    }
                    self.broken = true;
                    if let Err(e) = self.recover().await {
                        tracing::warn!(error = %e, "getting back to the committed state failed; the next batch retries");
                    }
                    return;
                }
            }
        }
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            let _ = reply.send(outcome);
        }
    }

    /// Gets back to the committed state after a failed batch: a new
    /// connection, and the bounds of every cached log and the journal's
    /// size as committed. Clears [`Writer::broken`] on success.
    async fn recover(&mut self) -> Result<(), StorageError> {
        let old = self.conn.take();
        let (connect, db) = (self.connect.clone(), self.db.clone());
        let logs = self.bounds.logs();
        let reloaded = run_db(move || async move {
            if let Some(old) = old {
                // Whatever it was in the middle of is rolled back with it.
                let _ = old.close().await;
            }
            let mut conn = connect.connect().await.map_err(|e| db.sqlx("reconnecting after a failed write", e))?;
            let mut metas: HashMap<MemberId, LogMeta> = HashMap::with_capacity(logs.len());
            for log in logs {
                metas.insert(log, bounds::load(&mut conn, &db, log).await?);
            }
            let rows = journal::rows(&mut conn).await.map_err(|e| db.sqlx("reading the journal", e))?;
            Ok::<_, StorageError>((conn, metas, rows))
        })
        .await
        .and_then(|r| r);
        let (conn, metas, rows) = reloaded?;
        self.conn = Some(conn);
        self.bounds.publish(metas);
        self.journal_rows = rows;
        self.broken = false;
        tracing::info!(path = %self.db.path().display(), "back to the committed state after a failed write");
        Ok(())
    }

    /// Checkpoints the journal (unless a batch failed and the writer did not
    /// recover: opening checkpoints it anyway) and closes the connection.
    async fn shut_down(&mut self) {
        let Some(mut conn) = self.conn.take() else { return };
        let (db, checkpoint) = (self.db.clone(), !self.broken && self.journal_rows > 0);
        let closed = run_db(move || async move {
            if checkpoint {
                if let Err(e) = journal::checkpoint_now(&mut conn, &db).await {
                    tracing::warn!(error = %e, "checkpointing the journal on close failed; opening will retry");
                }
            }
            conn.close().await
        })
        .await;
        match closed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "closing the write connection failed"),
            Err(e) => tracing::warn!(error = %e, "closing the write connection failed"),
        }
    }
}
