//! Test support: deterministic simulator, conformance suites, checkers.

pub mod crash;
pub mod sim;
mod storage_conformance;

pub use storage_conformance::{storage_conformance, MemHarness, StoreHarness};
