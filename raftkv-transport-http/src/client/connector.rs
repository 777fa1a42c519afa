//! Connections for hyper's pooling client: the shared [`DialService`]
//! (plaintext or TLS, with the connect deadline), wrapped so the pool can
//! use them.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use raftkv_wire::net::{DialError, DialService, NetStream};

/// One pooled connection.
pub(crate) struct PooledIo(TokioIo<NetStream>);

impl Connection for PooledIo {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl Read for PooledIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl Write for PooledIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }
}

/// Dials connections for the pool.
#[derive(Clone, Debug)]
pub(crate) struct Connector(pub(crate) DialService);

impl tower_service::Service<http::Uri> for Connector {
    type Response = PooledIo;
    type Error = DialError;
    type Future = Pin<Box<dyn Future<Output = Result<PooledIo, DialError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), DialError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let dial = self.0.call(uri);
        Box::pin(async move { dial.await.map(PooledIo) })
    }
}
