//! The single writer: one task owning the write connection, committing every
//! mutation of every log (group commit).
//!
//! It takes the first queued request, drains every other request already
//! queued (up to [`MAX_BATCH`]), validates them in order ([`plan`]), applies
//! the valid ones in ONE transaction, commits once, and only then answers each.
//! Requests of one caller stay in the order they were queued. Appended entries
//! go to the journal, which a batch moves into `log` first once it is long
//! enough and which is moved once more when the writer shuts down (see
//! [`crate::journal`]). After a failed
//! commit the state on disk is unknown, so every later write fails too: the
//! store must be reopened (the `LogStore` contract's rule for `Io` errors).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use raftkv_core::storage::StorageError;
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use crate::batch::{plan, Command};
use crate::blocking::run_db;
use crate::bounds::Bounds;
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
    /// database must be empty (checkpointed when opening).
    pub(crate) fn spawn(conn: SqliteConnection, db: DbFile, bounds: Arc<Bounds>, commits: Arc<AtomicU64>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Writer { conn: Some(conn), db, bounds, commits, rx, failed: None, journal_rows: 0 };
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
    db: DbFile,
    bounds: Arc<Bounds>,
    commits: Arc<AtomicU64>,
    rx: mpsc::UnboundedReceiver<Message>,
    /// The error of a failed commit; every later request fails.
    failed: Option<StorageError>,
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
        if let Some(failed) = &self.failed {
            let err = StorageError::Io {
                location: self.db.path().display().to_string(),
                source: std::io::Error::other(format!("an earlier commit failed ({failed}); reopen the store")),
            };
            for reply in replies {
                let _ = reply.send(Err(duplicate(&err)));
            }
            return;
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
                    tracing::error!(error = %err, requests, "group commit failed; the store must be reopened");
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        let _ = reply.send(outcome.and_then(|()| Err(duplicate(&err))));
                    }
                    self.failed = Some(err);
                    return;
                }
            }
        }
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            let _ = reply.send(outcome);
        }
    }

    /// Checkpoints the journal (unless a commit failed: the state on disk is
    /// unknown then, and opening checkpoints it anyway) and closes the
    /// connection.
    async fn shut_down(&mut self) {
        let Some(mut conn) = self.conn.take() else { return };
        let (db, checkpoint) = (self.db.clone(), self.failed.is_none() && self.journal_rows > 0);
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
