//! Serving a multiplexed stream (the Raft pipeline, the call stream): each
//! incoming frame is submitted as it is read, the answers are awaited
//! concurrently, and each goes back as soon as it is ready, tagged with its
//! sequence number — a slow call does not hold up the others.

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

/// Most frames of one stream awaiting their answers; past it the server
/// stops reading the stream until answers go out.
const WINDOW: usize = 4096;
/// Answers buffered for a stream's sender.
const REPLIES: usize = 1024;

/// The outgoing half of a served stream.
pub(crate) type Replies<R> = ReceiverStream<Result<R, Status>>;

/// Serve `inbound` on a task of its own: `submit` turns each frame into the
/// future of its reply.
pub(crate) fn serve_stream<Req, Rep, F>(inbound: Streaming<Req>, submit: F) -> Replies<Rep>
where
    Req: Send + 'static,
    Rep: Send + 'static,
    F: FnMut(Req) -> BoxFuture<'static, Rep> + Send + 'static,
{
    let (out, replies) = mpsc::channel(REPLIES);
    tokio::spawn(run(inbound, out, submit));
    ReceiverStream::new(replies)
}

async fn run<Req, Rep, F>(mut inbound: Streaming<Req>, out: mpsc::Sender<Result<Rep, Status>>, mut submit: F)
where
    F: FnMut(Req) -> BoxFuture<'static, Rep>,
{
    let mut pending = FuturesUnordered::new();
    let mut reading = true;
    loop {
        tokio::select! {
            message = inbound.message(), if reading && pending.len() < WINDOW => match message {
                Ok(Some(m)) => pending.push(submit(m)),
                Ok(None) => reading = false,
                Err(s) => {
                    let _ = out.send(Err(s)).await;
                    return;
                }
            },
            Some(reply) = pending.next(), if !pending.is_empty() => {
                if out.send(Ok(reply)).await.is_err() {
                    return;
                }
            }
            else => return,
        }
    }
}
