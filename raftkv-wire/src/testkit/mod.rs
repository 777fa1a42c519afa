//! Test support for the network transports (feature `testkit`): the
//! transport conformance suite every network transport runs.

pub mod transport;
