//! [`feed_snapshot`]: stream an [`OutgoingSnapshot`] into the request that
//! carries it, through a bounded queue, with idle deadlines.

use std::future::Future;
use std::time::Duration;

use raftkv_core::raft::InstallSnapshotRequest;
use raftkv_core::transport::{OutgoingSnapshot, Peer, SnapshotSendError, TransportError};
use tokio::sync::mpsc;

/// Pull the chunks of `snapshot`, encode each with `encode` (the encoded
/// item and its size in bytes), and queue them on `queue` while `call` — the
/// request whose body `queue` feeds — runs; returns what `call` returns.
///
/// `call` may finish early (the receiver answered before the last chunk):
/// its result is returned at once. Fails if a chunk is larger than `limit`,
/// if the queue does not take a chunk for `idle`, or if `call` does not
/// finish within `idle` after the last chunk was queued.
pub async fn feed_snapshot<T, R>(
    snapshot: &mut OutgoingSnapshot,
    queue: mpsc::Sender<T>,
    encode: impl Fn(InstallSnapshotRequest) -> (T, usize),
    call: impl Future<Output = R>,
    limit: usize,
    idle: Duration,
    peer: &Peer,
) -> Result<R, SnapshotSendError> {
    let stalled = || SnapshotSendError::from(TransportError::Timeout { peer: peer.clone(), after: idle });
    let feed = async {
        while let Some(chunk) = snapshot.next_chunk().await? {
            let (item, size) = encode(chunk);
            if size > limit {
                return Err(TransportError::TooLarge { what: "install_snapshot chunk", size, limit }.into());
            }
            match tokio::time::timeout(idle, queue.send(item)).await {
                Ok(Ok(())) => {}
                // The request ended (the receiver answered early, or it failed): its result tells.
                Ok(Err(_)) => break,
                Err(_) => return Err(stalled()),
            }
        }
        drop(queue);
        Ok(())
    };
    tokio::pin!(call, feed);
    tokio::select! {
        result = &mut call => Ok(result),
        fed = &mut feed => {
            fed?;
            tokio::time::timeout(idle, &mut call).await.map_err(|_| stalled())
        }
    }
}
