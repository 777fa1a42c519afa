//! [`RequestBody`]: a whole protobuf message (sent with a length), or a
//! stream of frames (sent chunked) fed through a small bounded queue.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// The body of a request.
#[derive(Debug)]
pub(crate) enum RequestBody {
    /// All of it (taken once sent).
    Whole(Option<Bytes>),
    /// Frames as they are queued; the body ends when the sender is dropped.
    Streamed(mpsc::Receiver<Bytes>),
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Self::Whole(body) => Poll::Ready(body.take().map(|b| Ok(Frame::data(b)))),
            Self::Streamed(rx) => rx.poll_recv(cx).map(|frame| frame.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Self::Whole(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Whole(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Self::Whole(None) => SizeHint::with_exact(0),
            Self::Streamed(_) => SizeHint::default(),
        }
    }
}
