//! Clients (clerks) of the shard controller and of ShardKV: they retry across
//! servers with the same request id (so a server applies it at most once),
//! follow leader hints, and back off between rounds — but give up at once on
//! a request that can never succeed (see [`ClerkError::Invalid`]).

mod ctrler;
mod kv;
mod retry;

use std::time::Duration;

pub use ctrler::CtrlClerk;
pub use kv::KvClerk;

/// How a clerk retries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClerkConfig {
    /// Pause after every server was tried once without success.
    pub retry_pause: Duration,
    /// Give up on a request after this long (`None`: retry forever, as the
    /// course's clerks do).
    pub deadline: Option<Duration>,
}

impl Default for ClerkConfig {
    fn default() -> Self {
        Self { retry_pause: Duration::from_millis(100), deadline: None }
    }
}

/// Why a clerk gave up on a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClerkError {
    /// The request can never succeed, and was not applied: the cluster
    /// refused it (a bad argument, a key or value over the servers' limits),
    /// every server rejected it (it does not decode, it is over their message
    /// limit), or it is over this client's message limit and was never sent.
    /// Returned at once, not retried until the deadline.
    #[error("refused: {0}")]
    Invalid(String),
    /// No server answered within the clerk's deadline; a write's outcome is unknown.
    #[error("no answer within {after:?}; last error: {last}")]
    TimedOut {
        /// The deadline.
        after: Duration,
        /// The last failure seen.
        last: String,
    },
    /// The clerk was given no server to talk to.
    #[error("no servers to talk to")]
    NoServers,
}

/// The clock of a request with an optional deadline.
pub(crate) struct Attempts {
    started: tokio::time::Instant,
    deadline: Option<Duration>,
    pub(crate) last: String,
}

impl Attempts {
    pub(crate) fn new(deadline: Option<Duration>) -> Self {
        Self { started: tokio::time::Instant::now(), deadline, last: String::from("no attempt yet") }
    }

    /// Fail if the deadline has passed.
    pub(crate) fn check(&self) -> Result<(), ClerkError> {
        match self.deadline {
            Some(after) if self.started.elapsed() >= after => {
                Err(ClerkError::TimedOut { after, last: self.last.clone() })
            }
            _ => Ok(()),
        }
    }
}
