//! Which failed attempts a clerk retries. Unreachable servers, timeouts,
//! followers and wrong groups are passing states of a cluster: retry. A
//! request too large to send never will be: give up at once. A server that
//! rejects the request itself (it does not decode, it is over the server's
//! message limit) may be one odd server: give up once every server of a
//! round has rejected it and no attempt ended any other way — then nothing
//! was applied, and [`ClerkError::Invalid`] says so truthfully.

use super::ClerkError;
use crate::transport::TransportError;

/// What one failed call means for the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Try again, on another server or in a later round.
    Retry,
    /// This server refused the request itself.
    Rejected,
    /// It can never succeed.
    Never,
}

/// The verdict on a call that failed with `e`.
pub(crate) fn verdict(e: &TransportError) -> Verdict {
    match e {
        TransportError::TooLarge { .. } => Verdict::Never,
        TransportError::Rejected { .. } => Verdict::Rejected,
        _ => Verdict::Retry,
    }
}

/// A request's failed attempts so far, to tell when to give up before the deadline.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    attempts: usize,
    rejected: usize,
}

impl Refusals {
    /// Note an attempt that did not fail at the transport (an answer, even
    /// "not the leader"), or failed in a way worth retrying.
    pub(crate) fn other(&mut self) {
        self.attempts += 1;
    }

    /// Note a call that failed with `e`: `Err` if the request is to be given
    /// up now, when `servers` servers are asked in each round.
    pub(crate) fn failed(&mut self, e: &TransportError, servers: usize) -> Result<(), ClerkError> {
        self.attempts += 1;
        match verdict(e) {
            Verdict::Never => Err(ClerkError::Invalid(e.to_string())),
            Verdict::Rejected => {
                self.rejected += 1;
                if self.rejected == self.attempts && self.rejected >= servers.max(1) {
                    Err(ClerkError::Invalid(format!("every server rejected the request; the last: {e}")))
                } else {
                    Ok(())
                }
            }
            Verdict::Retry => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::transport::Peer;

    fn rejected() -> TransportError {
        TransportError::rejected(Peer::addr("a:1"), "cannot decode kv.put: bad field")
    }

    #[test]
    fn a_request_too_large_to_send_is_given_up_at_once() {
        let mut r = Refusals::default();
        let e = TransportError::TooLarge { what: "kv.put", size: 100 << 20, limit: 64 << 20 };
        let Err(ClerkError::Invalid(why)) = r.failed(&e, 3) else { panic!("retried") };
        assert!(why.contains("exceeds the configured limit"), "{why}");
    }

    #[test]
    fn passing_failures_are_retried() {
        let mut r = Refusals::default();
        for _ in 0..10 {
            assert_eq!(r.failed(&TransportError::unreachable(Peer::addr("a:1"), "connection refused"), 3), Ok(()));
            let timeout = TransportError::Timeout { peer: Peer::addr("a:1"), after: Duration::from_secs(1) };
            assert_eq!(r.failed(&timeout, 3), Ok(()));
        }
    }

    #[test]
    fn a_rejection_by_every_server_of_a_round_is_final() {
        let mut r = Refusals::default();
        assert_eq!(r.failed(&rejected(), 3), Ok(()));
        assert_eq!(r.failed(&rejected(), 3), Ok(()));
        assert!(matches!(r.failed(&rejected(), 3), Err(ClerkError::Invalid(w)) if w.contains("cannot decode")));
    }

    #[test]
    fn a_rejection_after_an_attempt_of_unknown_outcome_is_not_final() {
        let mut r = Refusals::default();
        let timeout = TransportError::Timeout { peer: Peer::addr("a:1"), after: Duration::from_secs(1) };
        assert_eq!(r.failed(&timeout, 2), Ok(()), "it may have been applied");
        for _ in 0..5 {
            assert_eq!(r.failed(&rejected(), 2), Ok(()));
        }
        let mut r = Refusals::default();
        r.other();
        assert_eq!(r.failed(&rejected(), 1), Ok(()));
    }
}
