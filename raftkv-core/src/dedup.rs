//! [`DedupTable`]: at-most-once execution of client requests — the last
//! sequence number applied for each client, with its reply.

use std::collections::BTreeMap;

use crate::api::RequestId;
use crate::types::ClientId;

/// The last request applied for each client, and what it answered. A
/// request whose sequence number is not above the client's last is a
/// retry (or older) and must not be applied again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DedupTable<R> {
    last: BTreeMap<ClientId, (u64, R)>,
}

impl<R> Default for DedupTable<R> {
    fn default() -> Self {
        Self { last: BTreeMap::new() }
    }
}

impl<R: Clone> DedupTable<R> {
    /// An empty table.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// If `id` was already applied (or a later request of its client was),
    /// the reply to give: the recorded one when `id` is the last applied,
    /// `None` for a request older than that.
    #[must_use]
    pub fn seen(&self, id: RequestId) -> Option<Option<&R>> {
        let (seq, reply) = self.last.get(&id.client)?;
        match id.seq.cmp(seq) {
            std::cmp::Ordering::Greater => None,
            std::cmp::Ordering::Equal => Some(Some(reply)),
            std::cmp::Ordering::Less => Some(None),
        }
    }

    /// Record that `id` was applied with `reply`.
    pub fn record(&mut self, id: RequestId, reply: R) {
        self.last.insert(id.client, (id.seq, reply));
    }

    /// Every client's last request, in client order.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = (ClientId, u64, &R)> {
        self.last.iter().map(|(&c, (s, r))| (c, *s, r))
    }

    /// Keep, for each client, the later of this table's entry and `other`'s
    /// (used when a shard's table arrives from another group).
    pub fn merge(&mut self, other: impl IntoIterator<Item = (ClientId, u64, R)>) {
        for (client, seq, reply) in other {
            match self.last.get(&client) {
                Some((mine, _)) if *mine >= seq => {}
                _ => {
                    self.last.insert(client, (seq, reply));
                }
            }
        }
    }

    /// Number of clients tracked.
    #[must_use]
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether no client is tracked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(c: u64, s: u64) -> RequestId {
        RequestId { client: ClientId(c), seq: s }
    }

    #[test]
    fn retries_are_recognised_and_merges_keep_the_latest() {
        let mut t = DedupTable::new();
        assert_eq!(t.seen(id(1, 1)), None);
        t.record(id(1, 1), "a");
        assert_eq!(t.seen(id(1, 1)), Some(Some(&"a")));
        assert_eq!(t.seen(id(1, 2)), None);
        t.record(id(1, 2), "b");
        assert_eq!(t.seen(id(1, 1)), Some(None), "an older request is not applied again");
        t.merge([(ClientId(1), 1, "old"), (ClientId(2), 5, "c")]);
        assert_eq!(t.seen(id(1, 2)), Some(Some(&"b")));
        assert_eq!(t.seen(id(2, 5)), Some(Some(&"c")));
        assert_eq!(t.len(), 2);
    }
}
