//! [`GrpcError`]: why the gRPC transport could not be set up.

/// Setting up a gRPC client or server failed: unusable TLS settings, or an
/// address the server cannot listen on.
pub type GrpcError = raftkv_wire::net::SetupError;
