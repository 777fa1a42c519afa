//! Majority arithmetic.

use crate::types::LogIndex;

/// Votes needed for a majority of `voters`.
#[must_use]
pub fn majority(voters: usize) -> usize {
    voters / 2 + 1
}

/// The highest index replicated on a majority, given every voter's match index.
#[must_use]
pub fn committed_index(mut matched: Vec<LogIndex>) -> LogIndex {
    if matched.is_empty() {
        return LogIndex(0);
    }
    matched.sort_unstable_by(|a, b| b.cmp(a));
    matched[majority(matched.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_of_odd_and_even_groups() {
        assert_eq!(majority(1), 1);
        assert_eq!(majority(3), 2);
        assert_eq!(majority(4), 3);
        assert_eq!(majority(5), 3);
    }

    #[test]
    fn committed_index_is_the_majority_floor() {
        let m = |v: &[u64]| committed_index(v.iter().copied().map(LogIndex).collect());
        assert_eq!(m(&[5]), LogIndex(5));
        assert_eq!(m(&[5, 3, 1]), LogIndex(3));
        assert_eq!(m(&[1, 5, 3]), LogIndex(3));
        assert_eq!(m(&[9, 9, 2, 2, 2]), LogIndex(2));
        assert_eq!(m(&[9, 9, 9, 2, 2]), LogIndex(9));
        assert_eq!(m(&[4, 4, 1, 1]), LogIndex(1));
    }
}
