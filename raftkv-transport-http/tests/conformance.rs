//! The transport conformance suite, the TLS cases, the trace-context cases
//! and a 3-member Raft group, all over the HTTP transport on loopback.

mod common;

use common::HttpFixture;

raftkv_wire::transport_conformance_tests!(HttpFixture);
raftkv_wire::tls_conformance_tests!(HttpFixture, raftkv_wire::pki::generate().expect("test certificates"));
raftkv_wire::transport_cluster_tests!(HttpFixture);
raftkv_wire::trace_conformance_tests!(HttpFixture, tracing_subscriber::registry());
