//! [`HttpError`]: why the HTTP transport could not be set up.

/// Setting up a HTTP client or server failed: unusable TLS settings, or an
/// address the server cannot listen on.
pub type HttpError = raftkv_wire::net::SetupError;
