//! What the HTTP transport puts on the wire beyond the protobuf bodies:
//! paths, content types, and the error replies a RaftKV server makes.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

/// Content type of every protobuf body.
pub(crate) const PROTOBUF: &str = "application/x-protobuf";
/// Header on every error reply a RaftKV server makes, naming the kind of error.
pub(crate) const ERROR_HEADER: &str = "x-raftkv-error";

/// The path of RPC `rpc` (`service/method`): `/service/v1/method`.
pub(crate) fn path(rpc: &str) -> String {
    let (service, method) = rpc.split_once('/').unwrap_or((rpc, ""));
    format!("/{service}/v1/{method}")
}

/// The RPC (`service/method`) a path names, if it is of the form `/service/v1/method`.
pub(crate) fn rpc_of(path: &str) -> Result<String, String> {
    let mut parts = path.trim_start_matches('/').split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(service), Some("v1"), Some(method), None) if !service.is_empty() && !method.is_empty() => {
            Ok(format!("{service}/{method}"))
        }
        (Some(_), Some(version), Some(_), None) => {
            Err(format!("unknown API version `{version}` (this server speaks v1)"))
        }
        _ => Err(format!("no route {path}; RPCs are POST /<service>/v1/<method>")),
    }
}

/// A successful reply carrying `body`.
pub(crate) fn ok(body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROTOBUF));
    r
}

/// An error reply: `status`, the kind in [`ERROR_HEADER`], `message` as text.
pub(crate) fn error(status: StatusCode, kind: &'static str, message: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(message)));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r.headers_mut().insert(ERROR_HEADER, HeaderValue::from_static(kind));
    r
}

/// The error kind of a member that stopped: retry elsewhere, like an unreachable one.
pub(crate) const STOPPED: &str = "stopped";
