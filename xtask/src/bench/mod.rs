//! `cargo xtask bench …`: the benchmarks, one module each, and the latency
//! histogram they share.

pub mod cluster;
pub mod core;
pub mod hist;
pub mod memory;
pub mod migration;
pub mod storage;
pub mod transport;
