//! [`PeerChannel`]: a connection's channel that sends the cluster token
//! (when configured) in the metadata of every call made on it.

use std::task::{Context, Poll};

use http::HeaderValue;
use raftkv_wire::net::TOKEN_HEADER;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::transport::Channel;

/// A [`Channel`] whose every request carries the cluster token.
#[derive(Clone, Debug)]
pub(crate) struct PeerChannel {
    channel: Channel,
    token: Option<HeaderValue>,
}

impl PeerChannel {
    pub(crate) fn new(channel: Channel, token: Option<HeaderValue>) -> Self {
        Self { channel, token }
    }
}

impl Service<http::Request<Body>> for PeerChannel {
    type Response = <Channel as Service<http::Request<Body>>>::Response;
    type Error = <Channel as Service<http::Request<Body>>>::Error;
    type Future = <Channel as Service<http::Request<Body>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::<http::Request<Body>>::poll_ready(&mut self.channel, cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        if let Some(token) = &self.token {
            request.headers_mut().insert(TOKEN_HEADER, token.clone());
        }
        self.channel.call(request)
    }
}
