//! The transport conformance suite, the TLS cases, the trace-context cases
//! and a 3-member Raft group, all over the gRPC transport on loopback.

mod common;

use common::GrpcFixture;

raftkv_wire::transport_conformance_tests!(GrpcFixture);
raftkv_wire::tls_conformance_tests!(GrpcFixture, raftkv_wire::pki::generate().expect("test certificates"));
raftkv_wire::transport_cluster_tests!(GrpcFixture);
raftkv_wire::trace_conformance_tests!(GrpcFixture, tracing_subscriber::registry());
