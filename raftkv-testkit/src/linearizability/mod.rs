//! A linearizability checker for key-value histories.
//!
//! Record what clients did with a [`Recorder`] (call, return with a Get's
//! value, or unknown outcome when the client gave up), then [`check`] the
//! history: it is split by key (keys are independent objects) and each key
//! is searched for a legal sequential order with the Wing & Gong / Lowe
//! algorithm, memoizing (linearized set, state) pairs. The model is a map
//! from key to value where a missing key reads as `None`, Put sets, Append
//! concatenates (a missing key counts as empty) and Delete removes.
//!
//! A search that runs out of its step budget reports
//! [`Verdict::Unknown`] — never `Ok`.

mod history;
mod search;

use std::collections::BTreeMap;

use bytes::Bytes;

pub use history::{KvInput, Operation, Outcome, Pending, Recorder};

/// Outcome of a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's operations have a legal linearization.
    Ok,
    /// Some key's operations have none.
    Illegal {
        /// The key.
        key: Bytes,
        /// Operations on it.
        ops: usize,
        /// The longest legal prefix of a linearization the search found.
        longest_prefix: Vec<Operation>,
    },
    /// The budget ran out before every key was decided (no key was illegal so far).
    Unknown {
        /// Keys decided linearizable before the budget ran out.
        decided: usize,
        /// Keys in the history.
        keys: usize,
    },
}

/// Default search budget: steps per key.
pub const DEFAULT_BUDGET: u64 = 2_000_000;

/// Check `history`, searching each key for at most `budget` steps. An
/// illegal key anywhere is reported even if another key was undecided.
#[must_use]
pub fn check(history: &[Operation], budget: u64) -> Verdict {
    let mut by_key: BTreeMap<&Bytes, Vec<Operation>> = BTreeMap::new();
    for op in history {
        // A Get without an answer constrains nothing.
        if op.input == KvInput::Get && op.outcome == Outcome::Unknown {
            continue;
        }
        by_key.entry(&op.key).or_default().push(op.clone());
    }
    let keys = by_key.len();
    let mut decided = 0;
    for (key, ops) in by_key {
        let mut steps = budget;
        match search::check_key(&ops, &mut steps) {
            search::KeyVerdict::Linearizable => decided += 1,
            search::KeyVerdict::Illegal(prefix) => {
                return Verdict::Illegal {
                    key: key.clone(),
                    ops: ops.len(),
                    longest_prefix: prefix.into_iter().map(|i| ops[i].clone()).collect(),
                }
            }
            search::KeyVerdict::Unknown => {}
        }
    }
    if decided == keys {
        Verdict::Ok
    } else {
        Verdict::Unknown { decided, keys }
    }
}

/// Check `history` and panic with a description if it is not linearizable.
/// An undecided check (budget exhausted) passes, with a note on stderr, as
/// the original tests' checker does.
///
/// # Panics
/// If the history is not linearizable.
pub fn assert_linearizable(history: &[Operation]) {
    match check(history, DEFAULT_BUDGET) {
        Verdict::Ok => {}
        Verdict::Unknown { decided, keys } => {
            eprintln!("linearizability: {} of {keys} keys undecided after {DEFAULT_BUDGET} steps each", keys - decided);
        }
        Verdict::Illegal { key, ops, longest_prefix } => panic!(
            "history is not linearizable: key {key:?} ({ops} operations); longest legal prefix ({} ops): {longest_prefix:#?}",
            longest_prefix.len()
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn op(
        client: u64,
        key: &'static str,
        input: KvInput,
        call: u64,
        ret: u64,
        value: Option<&'static str>,
    ) -> Operation {
        Operation {
            client,
            key: Bytes::from_static(key.as_bytes()),
            input,
            call,
            outcome: Outcome::Returned { at: ret, value: value.map(|v| Bytes::from_static(v.as_bytes())) },
        }
    }

    fn unknown(client: u64, key: &'static str, input: KvInput, call: u64) -> Operation {
        Operation { client, key: Bytes::from_static(key.as_bytes()), input, call, outcome: Outcome::Unknown }
    }

    fn put(v: &'static str) -> KvInput {
        KvInput::Put(Bytes::from_static(v.as_bytes()))
    }

    fn append(v: &'static str) -> KvInput {
        KvInput::Append(Bytes::from_static(v.as_bytes()))
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let h = vec![
            op(1, "k", KvInput::Get, 0, 1, None),
            op(1, "k", put("a"), 2, 3, None),
            op(1, "k", append("b"), 4, 5, None),
            op(1, "k", KvInput::Get, 6, 7, Some("ab")),
            op(1, "k", KvInput::Delete, 8, 9, None),
            op(1, "k", KvInput::Get, 10, 11, None),
        ];
        assert_eq!(check(&h, DEFAULT_BUDGET), Verdict::Ok);
    }

    #[test]
    fn a_read_that_misses_a_completed_write_is_illegal() {
        let h = vec![op(1, "k", put("a"), 0, 10, None), op(2, "k", KvInput::Get, 20, 30, None)];
        match check(&h, DEFAULT_BUDGET) {
            Verdict::Illegal { key, ops, .. } => {
                assert_eq!(key, Bytes::from_static(b"k"));
                assert_eq!(ops, 2);
            }
            other => panic!("expected illegal, got {other:?}"),
        }
    }

    #[test]
    fn overlapping_operations_may_take_effect_in_either_order() {
        // The put overlaps both reads: one sees the old value, the other the new.
        let h = vec![
            op(1, "k", put("a"), 0, 5, None),
            op(2, "k", put("b"), 10, 100, None),
            op(3, "k", KvInput::Get, 20, 30, Some("a")),
            op(4, "k", KvInput::Get, 40, 50, Some("b")),
            op(5, "k", KvInput::Get, 110, 120, Some("b")),
        ];
        assert_eq!(check(&h, DEFAULT_BUDGET), Verdict::Ok);
    }

    #[test]
    fn a_read_may_not_go_back_in_time() {
        // After a read saw "b", a later read may not see "a" again.
        let h = vec![
            op(1, "k", put("a"), 0, 5, None),
            op(2, "k", put("b"), 10, 100, None),
            op(3, "k", KvInput::Get, 20, 30, Some("b")),
            op(4, "k", KvInput::Get, 40, 50, Some("a")),
        ];
        assert!(matches!(check(&h, DEFAULT_BUDGET), Verdict::Illegal { .. }));
    }

    #[test]
    fn concurrent_appends_land_in_some_single_order() {
        let ok = vec![
            op(1, "k", append("x"), 0, 50, None),
            op(2, "k", append("y"), 0, 50, None),
            op(3, "k", append("z"), 0, 50, None),
            op(4, "k", KvInput::Get, 60, 70, Some("zxy")),
        ];
        assert_eq!(check(&ok, DEFAULT_BUDGET), Verdict::Ok);
        let lost = vec![
            op(1, "k", append("x"), 0, 50, None),
            op(2, "k", append("y"), 0, 50, None),
            op(4, "k", KvInput::Get, 60, 70, Some("x")),
        ];
        assert!(matches!(check(&lost, DEFAULT_BUDGET), Verdict::Illegal { .. }), "an acknowledged append is missing");
        let twice = vec![op(1, "k", append("x"), 0, 50, None), op(4, "k", KvInput::Get, 60, 70, Some("xx"))];
        assert!(matches!(check(&twice, DEFAULT_BUDGET), Verdict::Illegal { .. }), "an append applied twice");
    }

    #[test]
    fn a_write_with_unknown_outcome_may_or_may_not_have_happened() {
        let seen = vec![unknown(1, "k", put("a"), 0), op(2, "k", KvInput::Get, 100, 110, Some("a"))];
        assert_eq!(check(&seen, DEFAULT_BUDGET), Verdict::Ok);
        let unseen = vec![unknown(1, "k", put("a"), 0), op(2, "k", KvInput::Get, 100, 110, None)];
        assert_eq!(check(&unseen, DEFAULT_BUDGET), Verdict::Ok);
        // But it cannot have happened before it was called.
        let early = vec![op(2, "k", KvInput::Get, 0, 10, Some("a")), unknown(1, "k", put("a"), 20)];
        assert!(matches!(check(&early, DEFAULT_BUDGET), Verdict::Illegal { .. }));
    }

    #[test]
    fn keys_are_checked_independently() {
        let h = vec![
            op(1, "a", put("1"), 0, 10, None),
            op(1, "b", put("2"), 20, 30, None),
            op(2, "a", KvInput::Get, 40, 50, Some("1")),
            op(2, "b", KvInput::Get, 40, 50, Some("1")),
        ];
        match check(&h, DEFAULT_BUDGET) {
            Verdict::Illegal { key, .. } => assert_eq!(key, Bytes::from_static(b"b")),
            other => panic!("expected key b to be illegal, got {other:?}"),
        }
    }

    #[test]
    fn an_exhausted_budget_is_unknown_never_ok() {
        // Many concurrent puts and a read of a value none wrote: the search
        // must try every order before it can say no.
        let values = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"];
        let mut h: Vec<Operation> =
            values.iter().enumerate().map(|(c, v)| op(c as u64, "k", put(v), 0, 1000, None)).collect();
        h.push(op(99, "k", KvInput::Get, 2000, 2001, Some("never")));
        assert!(matches!(check(&h, 50), Verdict::Unknown { decided: 0, keys: 1 }));
        assert!(matches!(check(&h, DEFAULT_BUDGET), Verdict::Illegal { .. }));
    }

    #[test]
    fn append_only_histories_are_decided_quickly() {
        // 5 clients × 10 overlapping appends to one key and a final read that
        // fixes their order: the pruning of states that cannot grow into the
        // read's value keeps the search linear.
        let mut h = vec![op(0, "k", put(""), 0, 1, None)];
        let mut expected = String::new();
        for round in 0..10u64 {
            for c in 0..5u64 {
                let v: &'static str = Box::leak(format!("x{c}.{round};").into_boxed_str());
                h.push(op(c + 1, "k", append(v), 10 + round * 10, 10 + round * 10 + 9, None));
                expected.push_str(v);
            }
        }
        let expected: &'static str = Box::leak(expected.into_boxed_str());
        h.push(op(9, "k", KvInput::Get, 500, 501, Some(expected)));
        assert_eq!(check(&h, 100_000), Verdict::Ok);
    }

    #[test]
    fn an_undecided_key_does_not_hide_an_illegal_one() {
        let values = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"];
        let mut h: Vec<Operation> =
            values.iter().enumerate().map(|(c, v)| op(c as u64, "a", put(v), 0, 1000, None)).collect();
        h.push(op(99, "a", KvInput::Get, 2000, 2001, Some("never")));
        h.push(op(1, "b", put("x"), 0, 10, None));
        h.push(op(2, "b", KvInput::Get, 20, 30, None));
        assert!(matches!(check(&h, 50), Verdict::Illegal { key, .. } if key == Bytes::from_static(b"b")));
    }

    #[tokio::test(start_paused = true)]
    async fn events_at_one_instant_keep_their_recorded_order() {
        // On a paused clock a client's next call lands at the instant of its
        // previous return; a stale read right after a write must still be caught.
        let r = Recorder::new();
        let w = r.call(1, Bytes::from_static(b"k"), put("a"));
        r.returned(w, None);
        let g = r.call(1, Bytes::from_static(b"k"), KvInput::Get);
        r.returned(g, None);
        let ops = r.operations();
        assert!(
            matches!(check(&ops, DEFAULT_BUDGET), Verdict::Illegal { .. }),
            "a read after the write returned must see it"
        );
    }

    #[test]
    fn recorder_keeps_calls_and_drops_failed_operations() {
        let r = Recorder::default();
        let a = r.call(1, Bytes::from_static(b"k"), put("v"));
        let b = r.call(2, Bytes::from_static(b"k"), KvInput::Get);
        let c = r.call(3, Bytes::from_static(b"k"), append("w"));
        r.returned(a, None);
        r.returned(b, Some(Bytes::from_static(b"v")));
        r.failed(c);
        let ops = r.operations();
        assert_eq!(ops.len(), 2);
        assert!(matches!(ops[1].outcome, Outcome::Returned { value: Some(_), .. }));
        assert_eq!(check(&ops, DEFAULT_BUDGET), Verdict::Ok);
    }

    /// A history made by really running operations that each take effect at
    /// one instant inside their interval is linearizable by construction.
    fn executed_history(plan: &[(u8, u8, u8, u16, u16)]) -> Vec<Operation> {
        // (client, key, kind, start offset, duration) → ops that take effect at their midpoint.
        let mut clients_free = [0u64; 4];
        let mut ops = Vec::new();
        for &(c, k, kind, gap, len) in plan {
            let c = usize::from(c % 4);
            let call = clients_free[c] + u64::from(gap);
            let ret = call + u64::from(len) + 1;
            clients_free[c] = ret + 1;
            let key = Bytes::from(vec![b'a' + k % 3]);
            let input = match kind % 4 {
                0 => KvInput::Get,
                1 => KvInput::Put(Bytes::from(vec![b'0' + kind % 10])),
                2 => KvInput::Append(Bytes::from(vec![b'x' + c as u8])),
                _ => KvInput::Delete,
            };
            ops.push((call + (ret - call) / 2, c as u64, key, input, call, ret));
        }
        let mut by_effect: Vec<_> = ops.iter().enumerate().collect();
        by_effect.sort_by_key(|(i, o)| (o.0, *i));
        let mut state: BTreeMap<Bytes, Bytes> = BTreeMap::new();
        let mut out = vec![None; ops.len()];
        for (i, (_, client, key, input, call, ret)) in by_effect {
            let value = match input {
                KvInput::Get => state.get(key).cloned(),
                KvInput::Put(v) => {
                    state.insert(key.clone(), v.clone());
                    None
                }
                KvInput::Append(v) => {
                    let mut b = state.get(key).map(|b| b.to_vec()).unwrap_or_default();
                    b.extend_from_slice(v);
                    state.insert(key.clone(), Bytes::from(b));
                    None
                }
                KvInput::Delete => {
                    state.remove(key);
                    None
                }
            };
            out[i] = Some(Operation {
                client: *client,
                key: key.clone(),
                input: input.clone(),
                call: *call,
                outcome: Outcome::Returned { at: *ret, value },
            });
        }
        out.into_iter().flatten().collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 200, ..Default::default() })]

        #[test]
        fn executed_histories_are_linearizable(
            plan in proptest::collection::vec((0u8..4, 0u8..3, 0u8..10, 0u16..30, 0u16..60), 1..60)
        ) {
            let h = executed_history(&plan);
            proptest::prop_assert_eq!(check(&h, DEFAULT_BUDGET), Verdict::Ok);
        }

        #[test]
        fn a_corrupted_read_after_quiet_is_caught(
            plan in proptest::collection::vec((0u8..4, 0u8..3, 0u8..10, 0u16..30, 0u16..60), 1..40)
        ) {
            // After every operation has returned, one more read of key "a" that
            // reports a value no operation ever wrote cannot be linearized.
            let mut h = executed_history(&plan);
            let end = h.iter().map(|o| match o.outcome { Outcome::Returned { at, .. } => at, Outcome::Unknown => 0 }).max().unwrap_or(0);
            h.push(op(9, "a", KvInput::Get, end + 10, end + 20, Some("never written")));
            let illegal = matches!(check(&h, DEFAULT_BUDGET), Verdict::Illegal { .. });
            proptest::prop_assert!(illegal, "a read of a value never written passed");
        }
    }
}
