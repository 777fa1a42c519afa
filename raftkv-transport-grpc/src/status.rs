//! Errors ↔ gRPC statuses. A server marks the statuses it makes with the
//! `raftkv-error` metadata key, so a client can tell a refusal by the peer
//! from a failing connection.

use raftkv_core::transport::{Peer, TransportError};
use raftkv_wire::net::RouteError;
use raftkv_wire::DecodeError;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

/// Metadata key on every status a RaftKV server makes itself.
const MARK: &str = "raftkv-error";

fn marked(code: Code, message: String, kind: &'static str) -> Status {
    let mut md = MetadataMap::new();
    md.insert(MARK, tonic::metadata::MetadataValue::from_static(kind));
    Status::with_metadata(code, message, md)
}

/// A request that does not decode.
pub(crate) fn malformed(e: &DecodeError) -> Status {
    marked(Code::InvalidArgument, e.to_string(), "malformed")
}

/// A request the server cannot deliver.
pub(crate) fn route(e: &RouteError) -> Status {
    match e {
        RouteError::Stopped { .. } | RouteError::ShuttingDown => marked(Code::Unavailable, e.to_string(), "stopped"),
        RouteError::UnknownMember { .. } | RouteError::NoService => marked(Code::NotFound, e.to_string(), "not_found"),
        RouteError::Unauthorized { .. } => marked(Code::PermissionDenied, e.to_string(), "unauthorized"),
        _ => marked(Code::InvalidArgument, e.to_string(), "bad_stream"),
    }
}

/// A request body that broke a budget rule (too large, too slow).
pub(crate) fn budget(e: &raftkv_wire::net::BudgetError) -> Status {
    use raftkv_wire::net::BudgetError;
    match e {
        BudgetError::TooLarge { .. } => marked(Code::OutOfRange, e.to_string(), "too_large"),
        BudgetError::TooSlow { .. } => marked(Code::DeadlineExceeded, e.to_string(), "too_slow"),
        _ => marked(Code::InvalidArgument, e.to_string(), "bad_body"),
    }
}

/// A handler that answered with the wrong kind of message (a server bug).
pub(crate) fn mismatch(what: &str) -> Status {
    marked(Code::Internal, format!("the handler answered {what} with another kind of message"), "mismatch")
}

/// Whether a failed call means the connection itself is in trouble (as
/// opposed to the peer refusing this one request).
#[must_use]
pub(crate) fn connection_failed(status: &Status) -> bool {
    if status.metadata().get(MARK).is_some() {
        return false;
    }
    !matches!(
        status.code(),
        Code::InvalidArgument
            | Code::NotFound
            | Code::ResourceExhausted
            | Code::Unimplemented
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::DeadlineExceeded
    )
}

/// The transport error for a call to `peer` that failed with `status`.
#[must_use]
pub(crate) fn to_transport_error(peer: Peer, status: &Status, deadline: std::time::Duration) -> TransportError {
    let message = error_text(status);
    match status.code() {
        Code::DeadlineExceeded => TransportError::Timeout { peer, after: deadline },
        Code::Unavailable if status.metadata().get(MARK).is_some() => TransportError::unreachable(peer, message),
        _ if connection_failed(status) => TransportError::unreachable(peer, message),
        _ => TransportError::rejected(peer, message),
    }
}

/// A status's message followed by the chain of errors under it.
pub(crate) fn error_text(status: &Status) -> String {
    if status.message().is_empty() {
        return format!("{:?}", status.code());
    }
    raftkv_wire::net::error_chain(status)
}
