//! Where database work runs: on tokio's blocking pool, never awaited directly.
//!
//! sqlx drives SQLite from a worker thread of its own; awaiting it from a task
//! leaves the runtime with nothing to do while the disk works. Under a paused
//! tokio clock (the deterministic simulator, `start_paused` tests, a
//! `current_thread` runtime) an idle runtime *auto-advances* virtual time to
//! the next timer, so an election timeout could fire "during" an fsync that
//! took no virtual time at all. A `spawn_blocking` task in flight inhibits
//! auto-advance. So every database operation is wrapped in
//! `spawn_blocking(move || handle.block_on(async { ...sqlx calls... }))`:
//! `Handle::block_on` is allowed on a blocking-pool thread, and the sqlx
//! futures need neither the I/O nor the timer driver of the runtime.

use std::future::Future;

use raftkv_core::storage::StorageError;
use tokio::runtime::Handle;

/// Runs the future made by `make` to completion on tokio's blocking pool and
/// returns its output. Virtual time stands still meanwhile (see the module docs).
pub(crate) async fn run_db<F, Fut, T>(make: F) -> Result<T, StorageError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    let handle = Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(make())).await.map_err(|e| {
        if e.is_cancelled() {
            StorageError::Closed
        } else {
            StorageError::Backend(format!("database task panicked: {e}"))
        }
    })
}
