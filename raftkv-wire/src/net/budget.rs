//! Budgets of bytes for requests still arriving: [`Budgets`] (one pool for
//! clients, one for peers, shared by every connection of a server), and the
//! request bodies that draw on them — [`GrpcBody`], which takes each gRPC
//! message's declared length before the decoder sees (and allocates for) its
//! header, and [`RawBody`], which takes each frame's length as it arrives.
//!
//! A body that cannot get its bytes waits without reading more, so HTTP/2
//! and TCP flow control slow its sender; a message that does not arrive
//! whole within its deadline fails. Memory held by partial requests is then
//! bounded by the pools, whatever callers declare or however slowly they send.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Largest budget a pool can hold (tokio's semaphore takes `u32` at a time).
const MAX_POOL: usize = u32::MAX as usize;

/// Messages of at most this many bytes draw on a pool's reserve for small
/// messages: callers that declare large messages and send them slowly, however
/// many, cannot make a small request wait behind them.
pub const SMALL_MESSAGE: usize = 64 << 10;

/// A pool of bytes, an eighth of it kept for messages of at most
/// [`SMALL_MESSAGE`] bytes; taking more than a part holds takes all of it.
#[derive(Clone, Debug)]
pub struct Pool {
    large: Arc<Semaphore>,
    large_capacity: usize,
    small: Arc<Semaphore>,
    small_capacity: usize,
}

impl Pool {
    /// A pool of `capacity` bytes.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(2, MAX_POOL);
        let small_capacity = capacity / 8;
        let large_capacity = capacity - small_capacity;
        Self {
            large: Arc::new(Semaphore::new(large_capacity)),
            large_capacity,
            small: Arc::new(Semaphore::new(small_capacity)),
            small_capacity,
        }
    }

    /// Bytes taken now.
    #[must_use]
    pub fn held(&self) -> usize {
        self.large_capacity - self.large.available_permits() + self.small_capacity - self.small.available_permits()
    }

    /// The part a message of `len` bytes draws on, and what it takes there.
    fn part(&self, len: usize) -> (Arc<Semaphore>, u32) {
        let (sem, capacity) = if len <= SMALL_MESSAGE && self.small_capacity > 0 {
            (&self.small, self.small_capacity)
        } else {
            (&self.large, self.large_capacity)
        };
        (sem.clone(), u32::try_from(len.min(capacity)).unwrap_or(u32::MAX))
    }
}

/// The byte pools of one server.
#[derive(Clone, Debug)]
pub struct Budgets {
    clients: Pool,
    peers: Pool,
}

impl Budgets {
    /// Pools of `capacity` bytes each, for clients and for peers.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self { clients: Pool::new(capacity), peers: Pool::new(capacity) }
    }

    /// The pool of peers (`true`) or clients.
    #[must_use]
    pub fn pool(&self, peer: bool) -> Pool {
        if peer {
            self.peers.clone()
        } else {
            self.clients.clone()
        }
    }

    /// Bytes held now by partial requests: (clients', peers').
    #[must_use]
    pub fn held(&self) -> (usize, usize) {
        (self.clients.held(), self.peers.held())
    }
}

/// A request body broke a budget rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetError {
    /// A message declared more bytes than this kind of request may have.
    #[error("a message of {len} bytes exceeds the limit of {limit} bytes for this request")]
    TooLarge {
        /// Its declared length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A message did not arrive whole in time.
    #[error("a message of {len} bytes did not arrive within {after:?}")]
    TooSlow {
        /// Its length.
        len: usize,
        /// The deadline.
        after: Duration,
    },
    /// The body beneath failed.
    #[error("{0}")]
    Body(String),
}

type Acquire = Pin<Box<dyn Future<Output = Vec<OwnedSemaphorePermit>> + Send>>;

/// Take `len` bytes (capped at what each pool holds) from every pool, in order.
fn acquire(pools: &[Pool], len: usize) -> Acquire {
    let pools = pools.to_vec();
    Box::pin(async move {
        let mut permits = Vec::with_capacity(pools.len());
        for pool in pools {
            let (sem, n) = pool.part(len);
            // The pools are never closed, so acquiring only waits.
            if let Ok(p) = sem.acquire_many_owned(n).await {
                permits.push(p);
            }
        }
        permits
    })
}

/// Length of a gRPC message prefix: compression flag, then length (u32 BE).
const PREFIX: usize = 5;

enum Phase {
    /// Waiting for a message prefix.
    Prefix,
    /// The prefix is in; waiting for the budget.
    Acquiring { len: usize, acquire: Acquire },
    /// Passing the message's bytes on; the budget is held until the last one.
    Message { remaining: usize, _permits: Vec<OwnedSemaphorePermit> },
}

/// A gRPC request body ([`Body`] over `B`) whose every message takes its
/// declared length from `pools` before its prefix is passed on, holds it
/// until its last byte is, and fails if it is longer than `max_message` or
/// not whole within `deadline` of its prefix.
pub struct GrpcBody<B> {
    inner: B,
    pools: Vec<Pool>,
    max_message: usize,
    deadline: Duration,
    /// Bytes read from `inner`, not yet passed on.
    buf: BytesMut,
    phase: Phase,
    /// When the current message must be whole.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Trailers read from `inner`, passed on once `buf` is empty.
    trailers: VecDeque<Frame<Bytes>>,
    inner_done: bool,
    failed: bool,
}

impl<B> std::fmt::Debug for GrpcBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcBody").field("max_message", &self.max_message).field("buffered", &self.buf.len()).finish()
    }
}

impl<B> GrpcBody<B> {
    /// `inner`, drawing on `pools`.
    pub fn new(inner: B, pools: Vec<Pool>, max_message: usize, deadline: Duration) -> Self {
        Self {
            inner,
            pools,
            max_message,
            deadline,
            buf: BytesMut::new(),
            phase: Phase::Prefix,
            timer: None,
            trailers: VecDeque::new(),
            inner_done: false,
            failed: false,
        }
    }

    fn fail(&mut self, e: BudgetError) -> Poll<Option<Result<Frame<Bytes>, BudgetError>>> {
        self.failed = true;
        self.phase = Phase::Prefix;
        Poll::Ready(Some(Err(e)))
    }

    /// Whether the current message's deadline has passed (polling the timer).
    fn late(&mut self, cx: &mut Context<'_>) -> bool {
        self.timer.as_mut().is_some_and(|t| t.as_mut().poll(cx).is_ready())
    }
}

impl<B> Body for GrpcBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = BudgetError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BudgetError>>> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(None);
        }
        loop {
            match &mut this.phase {
                Phase::Prefix if this.buf.len() >= PREFIX => {
                    let len = u32::from_be_bytes([this.buf[1], this.buf[2], this.buf[3], this.buf[4]]) as usize;
                    if len > this.max_message {
                        return this.fail(BudgetError::TooLarge { len, limit: this.max_message });
                    }
                    this.timer = Some(Box::pin(tokio::time::sleep(this.deadline)));
                    this.phase = Phase::Acquiring { len, acquire: acquire(&this.pools, len) };
                    continue;
                }
                Phase::Acquiring { len, acquire } => {
                    let len = *len;
                    match acquire.as_mut().poll(cx) {
                        Poll::Ready(permits) => {
                            this.phase = Phase::Message { remaining: len, _permits: permits };
                            let prefix = this.buf.split_to(PREFIX).freeze();
                            if len == 0 {
                                this.phase = Phase::Prefix;
                                this.timer = None;
                            }
                            return Poll::Ready(Some(Ok(Frame::data(prefix))));
                        }
                        Poll::Pending => {
                            if this.late(cx) {
                                return this.fail(BudgetError::TooSlow { len, after: this.deadline });
                            }
                            return Poll::Pending;
                        }
                    }
                }
                Phase::Message { remaining, .. } if !this.buf.is_empty() => {
                    let n = (*remaining).min(this.buf.len());
                    *remaining -= n;
                    if *remaining == 0 {
                        this.phase = Phase::Prefix;
                        this.timer = None;
                    }
                    return Poll::Ready(Some(Ok(Frame::data(this.buf.split_to(n).freeze()))));
                }
                _ => {}
            }
            // More bytes are needed.
            if this.inner_done {
                if !this.buf.is_empty() {
                    // A truncated message: pass it on, the decoder reports it.
                    let rest = this.buf.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(rest))));
                }
                return Poll::Ready(this.trailers.pop_front().map(Ok));
            }
            if matches!(this.phase, Phase::Message { .. }) && this.late(cx) {
                let len = match &this.phase {
                    Phase::Message { remaining, .. } => *remaining,
                    _ => 0,
                };
                return this.fail(BudgetError::TooSlow { len, after: this.deadline });
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(mut data) => {
                        while data.has_remaining() {
                            let chunk = data.chunk();
                            let n = chunk.len();
                            this.buf.extend_from_slice(chunk);
                            data.advance(n);
                        }
                    }
                    Err(frame) => this.trailers.push_back(frame),
                },
                Some(Err(e)) => return this.fail(BudgetError::Body(e.to_string())),
                None => this.inner_done = true,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || (self.inner_done && self.buf.is_empty() && self.trailers.is_empty())
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// A request body ([`Body`] over `B`) whose every data frame takes its
/// length from `pools` before it is passed on; the bytes stay taken until
/// the body is dropped (a body collected whole), or, with `release_each`,
/// until the next frame is asked for (a stream consumed frame by frame).
pub struct RawBody<B> {
    inner: B,
    pools: Vec<Pool>,
    release_each: bool,
    held: Vec<OwnedSemaphorePermit>,
    waiting: Option<(Bytes, Acquire)>,
}

impl<B> std::fmt::Debug for RawBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawBody").field("release_each", &self.release_each).finish_non_exhaustive()
    }
}

impl<B> RawBody<B> {
    /// `inner`, drawing on `pools`.
    pub fn new(inner: B, pools: Vec<Pool>, release_each: bool) -> Self {
        Self { inner, pools, release_each, held: Vec::new(), waiting: None }
    }

    /// The body it reads from, giving back the bytes it holds; a frame
    /// still waiting for budget is dropped.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B> Body for RawBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        if this.release_each && this.waiting.is_none() {
            this.held.clear();
        }
        if this.waiting.is_none() {
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let acquire = acquire(&this.pools, data.len());
                        this.waiting = Some((data, acquire));
                    }
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                other => return Poll::Ready(other),
            }
        }
        let Some((_, acquire)) = this.waiting.as_mut() else { return Poll::Pending };
        let permits = ready!(acquire.as_mut().poll(cx));
        this.held.extend(permits);
        match this.waiting.take() {
            Some((data, _)) => Poll::Ready(Some(Ok(Frame::data(data)))),
            None => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.waiting.is_none() && self.inner.is_end_stream()
    }
}

/// A response body ([`Body`] over `B`) that keeps `held` (a request's
/// registration, say) until the body has been sent or dropped: a streaming
/// answer's request is in progress as long as its stream.
pub struct HeldBody<B, H> {
    inner: B,
    held: Option<H>,
}

impl<B, H> std::fmt::Debug for HeldBody<B, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldBody").field("holding", &self.held.is_some()).finish_non_exhaustive()
    }
}

impl<B, H> HeldBody<B, H> {
    /// `inner`, keeping `held` while it lasts.
    pub fn new(inner: B, held: H) -> Self {
        Self { inner, held: Some(held) }
    }
}

impl<B: Body + Unpin, H: Unpin> Body for HeldBody<B, H> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if frame.is_none() {
            self.held = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use futures::StreamExt;
    use http_body_util::{BodyExt, StreamBody};

    use super::*;

    type Frames = StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::io::Error>>>>;

    fn body(chunks: Vec<Vec<u8>>) -> Frames {
        StreamBody::new(futures::stream::iter(
            chunks.into_iter().map(|c| Ok(Frame::data(Bytes::from(c)))).collect::<Vec<_>>(),
        ))
    }

    fn message(payload: &[u8]) -> Vec<u8> {
        let mut m = vec![0];
        m.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
        m.extend_from_slice(payload);
        m
    }

    #[tokio::test]
    async fn messages_pass_through_unchanged_and_give_their_bytes_back() {
        let budgets = Budgets::new(100);
        let mut wire = message(b"hello");
        wire.extend(message(b""));
        wire.extend(message(&[7; 60]));
        // Split at awkward places: inside a prefix, inside a payload.
        let chunks = vec![wire[..3].to_vec(), wire[3..9].to_vec(), wire[9..20].to_vec(), wire[20..].to_vec()];
        let b = GrpcBody::new(body(chunks), vec![budgets.pool(false)], 64, Duration::from_secs(5));
        let out = b.collect().await.unwrap().to_bytes();
        assert_eq!(out.as_ref(), wire.as_slice());
        assert_eq!(budgets.held(), (0, 0));
    }

    #[tokio::test]
    async fn an_oversize_declaration_fails_before_anything_is_taken() {
        let budgets = Budgets::new(1 << 20);
        let mut prefix = vec![0];
        prefix.extend_from_slice(&(64u32 << 20).to_be_bytes());
        let b = GrpcBody::new(body(vec![prefix]), vec![budgets.pool(false)], 4 << 20, Duration::from_secs(5));
        let e = b.collect().await.unwrap_err();
        assert_eq!(e, BudgetError::TooLarge { len: 64 << 20, limit: 4 << 20 });
        assert_eq!(budgets.held(), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_waits_for_budget_and_fails_when_it_does_not_come() {
        let budgets = Budgets::new(800);
        let hog = budgets.pool(false).small.acquire_many_owned(96).await.unwrap();
        let b = GrpcBody::new(body(vec![message(&[1; 5])]), vec![budgets.pool(false)], 10, Duration::from_secs(3));
        let started = tokio::time::Instant::now();
        let e = b.collect().await.unwrap_err();
        assert_eq!(e, BudgetError::TooSlow { len: 5, after: Duration::from_secs(3) });
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        drop(hog);
        // With the budget back, the same message passes.
        let b = GrpcBody::new(body(vec![message(&[1; 5])]), vec![budgets.pool(false)], 10, Duration::from_secs(3));
        assert_eq!(b.collect().await.unwrap().to_bytes().len(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_message_does_not_wait_behind_large_ones_that_hold_the_pool() {
        let budgets = Budgets::new(8 << 20);
        let pool = budgets.pool(false);
        // Large messages arriving slowly hold every byte they may, and more wait.
        let hog = pool.large.clone().acquire_many_owned(7 << 20).await.unwrap();
        let large = message(&vec![2; 1 << 20]);
        let waiting = GrpcBody::new(body(vec![large]), vec![pool.clone()], 4 << 20, Duration::from_secs(3));
        let waiting = tokio::spawn(waiting.collect());
        tokio::task::yield_now().await;
        let small = GrpcBody::new(body(vec![message(b"put k v")]), vec![pool.clone()], 4 << 20, Duration::from_secs(3));
        let started = tokio::time::Instant::now();
        assert_eq!(small.collect().await.unwrap().to_bytes().len(), 12);
        assert_eq!(started.elapsed(), Duration::ZERO, "the small message waited");
        let e = waiting.await.unwrap().unwrap_err();
        assert_eq!(e, BudgetError::TooSlow { len: 1 << 20, after: Duration::from_secs(3) });
        drop(hog);
        assert_eq!(budgets.held(), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_that_stops_arriving_fails_at_its_deadline_and_frees_its_bytes() {
        let budgets = Budgets::new(8000);
        let wire = message(&[3; 500]);
        // The first part arrives, then nothing more (the body never ends).
        let first =
            futures::stream::iter(vec![Ok::<_, std::io::Error>(Frame::data(Bytes::from(wire[..100].to_vec())))]);
        let stalled = StreamBody::new(first.chain(futures::stream::pending()));
        let mut b = GrpcBody::new(stalled, vec![budgets.pool(true)], 1000, Duration::from_secs(2));
        let mut taken = 0;
        let failure = loop {
            match b.frame().await {
                Some(Ok(f)) => taken += f.into_data().map_or(0, |d| d.len()),
                Some(Err(e)) => break e,
                None => panic!("the body must fail"),
            }
            if taken == 100 {
                assert_eq!(budgets.held(), (0, 500), "the declared length is taken while the message arrives");
            }
        };
        assert!(matches!(failure, BudgetError::TooSlow { .. }), "{failure:?}");
        drop(b);
        assert_eq!(budgets.held(), (0, 0));
    }

    #[tokio::test]
    async fn raw_bodies_hold_their_frames_until_dropped_or_the_next_frame() {
        let budgets = Budgets::new(800);
        let mut whole = RawBody::new(body(vec![vec![1; 30], vec![2; 40]]), vec![budgets.pool(false)], false);
        while whole.frame().await.is_some() {}
        assert_eq!(budgets.held(), (70, 0));
        drop(whole);
        assert_eq!(budgets.held(), (0, 0));
        let mut each = RawBody::new(body(vec![vec![1; 30], vec![2; 40]]), vec![budgets.pool(false)], true);
        each.frame().await.unwrap().unwrap();
        assert_eq!(budgets.held(), (30, 0));
        each.frame().await.unwrap().unwrap();
        assert_eq!(budgets.held(), (40, 0));
    }
}
