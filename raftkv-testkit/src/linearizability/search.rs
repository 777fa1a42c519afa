//! The Wing & Gong / Lowe search for a linearization of one key's
//! operations, with memoization of (linearized set, state) pairs.

use std::collections::HashSet;

use bytes::{Bytes, BytesMut};

use super::history::{KvInput, Operation, Outcome};

/// A key's value as the model sees it (`None`: missing).
type State = Option<Bytes>;

/// Apply `input` in `state`: the new state, if the operation's observed
/// output is legal there.
fn step(state: &State, input: &KvInput, observed: Option<&Option<Bytes>>) -> Option<State> {
    match input {
        KvInput::Get => match observed {
            // A Get whose answer is unknown constrains nothing.
            None => Some(state.clone()),
            Some(v) if v == state => Some(state.clone()),
            Some(_) => None,
        },
        KvInput::Put(v) => Some(Some(v.clone())),
        KvInput::Append(v) => {
            let mut b = BytesMut::from(state.as_deref().unwrap_or_default());
            b.extend_from_slice(v);
            Some(Some(b.freeze()))
        }
        KvInput::Delete => Some(None),
    }
}

/// A set of operation indices.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Self(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// The result of searching one key.
pub(super) enum KeyVerdict {
    /// A linearization exists.
    Linearizable,
    /// None exists; the longest legal prefix found (operation indices).
    Illegal(Vec<usize>),
    /// The step budget ran out.
    Unknown,
}

const HEAD: usize = usize::MAX;

/// One call or return event, in a doubly linked list ordered by time.
#[derive(Clone, Copy)]
struct Event {
    op: usize,
    is_call: bool,
    prev: usize,
    next: usize,
}

/// With no overwrite left to linearize, whether `state` can still grow into
/// the value the first pending Get (in return order, other than `skip`) saw.
fn grows_into_pending_read(ops: &[Operation], events: &[Event], head: usize, skip: usize, state: &State) -> bool {
    let mut k = head;
    while k != HEAD {
        let e = events[k];
        if !e.is_call && e.op != skip && ops[e.op].input == KvInput::Get {
            if let Outcome::Returned { value, .. } = &ops[e.op].outcome {
                return match (state, value) {
                    (None, _) => true,
                    (Some(s), Some(v)) => v.starts_with(s),
                    (Some(_), None) => false,
                };
            }
        }
        k = e.next;
    }
    true
}

/// Search for a linearization of `ops` (all on one key) within `budget` steps.
pub(super) fn check_key(ops: &[Operation], budget: &mut u64) -> KeyVerdict {
    // Events sorted by time; at equal times calls come first (overlap is allowed).
    let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        order.push((op.call, true, i));
        let ret = match op.outcome {
            Outcome::Returned { at, .. } => at,
            Outcome::Unknown => u64::MAX,
        };
        order.push((ret, false, i));
    }
    order.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    let n = order.len();
    let mut events: Vec<Event> = order
        .iter()
        .enumerate()
        .map(|(k, &(_, is_call, op))| Event {
            op,
            is_call,
            prev: if k == 0 { HEAD } else { k - 1 },
            next: if k + 1 == n { HEAD } else { k + 1 },
        })
        .collect();
    let mut call_of = vec![0; ops.len()];
    let mut ret_of = vec![0; ops.len()];
    for (k, e) in events.iter().enumerate() {
        if e.is_call {
            call_of[e.op] = k;
        } else {
            ret_of[e.op] = k;
        }
    }
    let mut head = if n == 0 { HEAD } else { 0 };
    let unlink = |events: &mut Vec<Event>, head: &mut usize, k: usize| {
        let (p, nx) = (events[k].prev, events[k].next);
        if p == HEAD {
            *head = nx;
        } else {
            events[p].next = nx;
        }
        if nx != HEAD {
            events[nx].prev = p;
        }
    };
    let relink = |events: &mut Vec<Event>, head: &mut usize, k: usize| {
        let (p, nx) = (events[k].prev, events[k].next);
        if p == HEAD {
            *head = k;
        } else {
            events[p].next = k;
        }
        if nx != HEAD {
            events[nx].prev = k;
        }
    };

    let is_overwrite = |op: usize| matches!(ops[op].input, KvInput::Put(_) | KvInput::Delete);
    // Puts and Deletes not yet linearized: while there are none, the value only
    // grows, so a state that is not a prefix of what a pending Get saw is a dead end.
    let mut open_overwrites = (0..ops.len()).filter(|&op| is_overwrite(op)).count();
    let mut state: State = None;
    let mut linearized = Bits::new(ops.len());
    let mut seen: HashSet<(Bits, State)> = HashSet::new();
    // (operation, state before it)
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut longest: Vec<usize> = Vec::new();
    let mut cursor = head;
    loop {
        if head == HEAD {
            return KeyVerdict::Linearizable;
        }
        if *budget == 0 {
            return KeyVerdict::Unknown;
        }
        *budget -= 1;
        if cursor != HEAD && events[cursor].is_call {
            let op = events[cursor].op;
            let observed = match &ops[op].outcome {
                Outcome::Returned { value, .. } if ops[op].input == KvInput::Get => Some(value),
                _ => None,
            };
            let next = step(&state, &ops[op].input, observed);
            let still_open = open_overwrites - usize::from(is_overwrite(op));
            let viable = |s: &State| still_open > 0 || grows_into_pending_read(ops, &events, head, op, s);
            if let Some(next_state) = next.filter(viable) {
                let mut bits = linearized.clone();
                bits.set(op);
                if seen.insert((bits.clone(), next_state.clone())) {
                    linearized = bits;
                    open_overwrites = still_open;
                    stack.push((op, std::mem::replace(&mut state, next_state)));
                    if stack.len() > longest.len() {
                        longest = stack.iter().map(|(o, _)| *o).collect();
                    }
                    unlink(&mut events, &mut head, call_of[op]);
                    unlink(&mut events, &mut head, ret_of[op]);
                    cursor = head;
                    continue;
                }
            }
            cursor = events[cursor].next;
            continue;
        }
        // A return of an operation not yet linearized (or the end): backtrack.
        let Some((op, before)) = stack.pop() else {
            return KeyVerdict::Illegal(longest);
        };
        linearized.clear(op);
        open_overwrites += usize::from(is_overwrite(op));
        state = before;
        relink(&mut events, &mut head, ret_of[op]);
        relink(&mut events, &mut head, call_of[op]);
        cursor = events[call_of[op]].next;
    }
}
