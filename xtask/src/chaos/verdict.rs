//! The chaos run's verdict on the history: the linearizability checker, and
//! a direct count of acknowledged writes missing from the final state.

use std::collections::BTreeMap;

use bytes::Bytes;
use raftkv_testkit::linearizability::{check, KvInput, Operation, Outcome, Verdict, DEFAULT_BUDGET};

/// Operations by what became of them.
#[derive(Debug, Default)]
pub struct Tally {
    pub operations: usize,
    pub ok: usize,
    pub unknown: usize,
    /// Acknowledged Put, Append and Delete.
    pub acknowledged_writes: usize,
    /// Acknowledged Appends that no Put or Delete could have overwritten:
    /// each must be in the key's final value.
    pub checkable_appends: usize,
    /// Of those, the ones missing: lost writes.
    pub lost: Vec<String>,
}

/// Count the history and look for lost appends. `final_values`: each key's
/// value read after healing.
pub fn tally(history: &[Operation], final_values: &BTreeMap<Bytes, Option<Bytes>>) -> Tally {
    let mut t = Tally { operations: history.len(), ..Tally::default() };
    let mut by_key: BTreeMap<&Bytes, Vec<&Operation>> = BTreeMap::new();
    for op in history {
        match op.outcome {
            Outcome::Returned { .. } => {
                t.ok += 1;
                if op.input != KvInput::Get {
                    t.acknowledged_writes += 1;
                }
            }
            Outcome::Unknown => t.unknown += 1,
        }
        by_key.entry(&op.key).or_default().push(op);
    }
    for (key, ops) in by_key {
        let Some(Some(value)) =
            final_values.get(key).map(|v| v.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()))
        else {
            // Missing or deleted at the end: only appends after every overwrite count.
            count_missing(&mut t, &ops, "");
            continue;
        };
        count_missing(&mut t, &ops, &value);
    }
    t
}

fn count_missing(t: &mut Tally, ops: &[&Operation], value: &str) {
    for a in ops {
        let (KvInput::Append(token), Outcome::Returned { .. }) = (&a.input, &a.outcome) else { continue };
        // An overwrite that returned before this append was called is
        // ordered before it; any other may have come after it.
        let overwritten = ops.iter().any(|o| {
            matches!(o.input, KvInput::Put(_) | KvInput::Delete)
                && !matches!(o.outcome, Outcome::Returned { at, .. } if at < a.call)
        });
        if overwritten {
            continue;
        }
        t.checkable_appends += 1;
        let token = String::from_utf8_lossy(token);
        if !value.contains(token.as_ref()) {
            t.lost.push(format!("append {token} to {:?} (acknowledged) is missing from its final value", a.key));
        }
    }
}

/// The checker's verdict, in words, and whether it passed.
pub fn linearizable(history: &[Operation]) -> (bool, String) {
    match check(history, DEFAULT_BUDGET) {
        Verdict::Ok => (true, "linearizable".into()),
        Verdict::Unknown { decided, keys } => {
            (false, format!("undecided: {decided} of {keys} keys linearizable, the rest exhausted the search budget"))
        }
        Verdict::Illegal { key, ops, longest_prefix } => (
            false,
            format!(
                "NOT linearizable: key {key:?} ({ops} operations); longest legal prefix {} operations, ending {:?}",
                longest_prefix.len(),
                longest_prefix.iter().rev().take(3).collect::<Vec<_>>()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: u64, input: KvInput, call: u64, ret: Option<u64>) -> Operation {
        Operation {
            client,
            key: Bytes::from_static(b"k"),
            input,
            call,
            outcome: ret.map_or(Outcome::Unknown, |at| Outcome::Returned { at, value: None }),
        }
    }

    fn append(t: &str) -> KvInput {
        KvInput::Append(Bytes::from(t.to_string()))
    }

    fn finals(v: &str) -> BTreeMap<Bytes, Option<Bytes>> {
        BTreeMap::from([(Bytes::from_static(b"k"), Some(Bytes::from(v.to_string())))])
    }

    #[test]
    fn an_acknowledged_append_missing_at_the_end_is_lost() {
        let h = vec![op(1, append("a1;"), 1, Some(2)), op(2, append("a2;"), 3, Some(4))];
        let t = tally(&h, &finals("a1;"));
        assert_eq!((t.checkable_appends, t.lost.len()), (2, 1), "{:?}", t.lost);
        assert!(t.lost[0].contains("a2;"));
    }

    #[test]
    fn an_append_a_later_or_concurrent_put_may_have_overwritten_is_not_counted() {
        let put = KvInput::Put(Bytes::from_static(b"p;"));
        // The put overlaps the append (called before it returned): either order is legal.
        let h = vec![op(1, append("a1;"), 1, Some(5)), op(2, put.clone(), 3, Some(6))];
        assert_eq!(tally(&h, &finals("p;")).checkable_appends, 0);
        // An unknown put may apply at any time after its call.
        let h = vec![op(2, put, 0, None), op(1, append("a1;"), 1, Some(2))];
        let t = tally(&h, &finals("p;"));
        assert_eq!((t.checkable_appends, t.lost.len(), t.unknown), (0, 0, 1));
    }

    #[test]
    fn an_append_after_a_finished_put_must_survive() {
        let h = vec![op(2, KvInput::Put(Bytes::from_static(b"p;")), 0, Some(1)), op(1, append("a1;"), 2, Some(3))];
        assert_eq!(tally(&h, &finals("p;")).lost.len(), 1);
        assert!(tally(&h, &finals("p;a1;")).lost.is_empty());
    }
}
