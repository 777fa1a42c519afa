#![doc = include_str!("../README.md")]

pub mod crash;
pub mod linearizability;
pub mod sim;
mod storage_conformance;

pub use storage_conformance::{storage_conformance, MemHarness, StoreHarness};

use raftkv_core::raft::{Entry, EntryPayload};
use raftkv_core::types::{LogIndex, Term};

/// Entries `range` of `term` whose commands read `"<tag>-<index>"` (for store tests).
#[must_use]
pub fn tagged_entries(range: std::ops::RangeInclusive<u64>, term: u64, tag: &str) -> Vec<Entry> {
    range
        .map(|i| Entry {
            term: Term(term),
            index: LogIndex(i),
            payload: EntryPayload::Command(bytes::Bytes::from(format!("{tag}-{i}"))),
        })
        .collect()
}

/// The message of a caught panic.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}
