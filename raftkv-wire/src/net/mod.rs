//! Network plumbing shared by the transports.
//!
//! Always: [`Routes`] (the members and service handler a server hosts, and
//! the in-order delivery of requests and snapshot streams to them),
//! [`NetConfig`] (deadlines, message limits, socket buffers, [`Backoff`],
//! [`TlsConfig`]), [`Reconnect`] (backoff with jitter per peer), and the
//! [`AccessPolicy`] that decides from the [`Credentials`] a request presents
//! which callers may send peer traffic (Raft and migration RPCs).
//!
//! With feature `net`: connections in plaintext or TLS ([`NetStream`]),
//! dialling peers with a deadline ([`Dialer`]), accepting and serving
//! connections with a hard stop ([`listen`]), rustls settings from a
//! [`TlsConfig`] ([`tls`]), byte budgets, and streaming a snapshot into a
//! request body ([`feed_snapshot`]).

mod access;
mod backoff;
mod config;
mod routes;

#[cfg(feature = "net")]
pub mod budget;
#[cfg(feature = "net")]
pub mod connections;
#[cfg(feature = "net")]
mod dial;
#[cfg(feature = "net")]
mod error;
#[cfg(feature = "net")]
mod listen;
#[cfg(feature = "net")]
mod snapshot_feed;
#[cfg(feature = "net")]
mod stream;
#[cfg(feature = "net")]
pub mod tls;

pub use access::{
    member_uri, parse_member_uri, AccessPolicy, Caller, CertIdentity, ClusterToken, Credentials, TokenError,
    MEMBER_URI_PREFIX, MIN_TOKEN_BYTES, TOKEN_HEADER,
};
pub use backoff::{Backoff, Reconnect};
#[cfg(feature = "net")]
pub use budget::{BudgetError, Budgets, GrpcBody, HeldBody, Pool, RawBody};
pub use config::{Identity, NetConfig, ServerLimits, TlsConfig};
#[cfg(feature = "net")]
pub use connections::{CloseReason, Conn, ConnCounts, ConnTable, RequestGuard, TooManyClients};
#[cfg(feature = "net")]
pub use dial::{host_of, jitter_seed, DialError, DialService, Dialer};
#[cfg(feature = "net")]
pub use error::{error_chain, SetupError};
#[cfg(feature = "net")]
pub use listen::{listen, ConnInfo, ListenOptions, ServerHandle};
pub use routes::{RaftRoute, RouteError, Routes};
#[cfg(feature = "net")]
pub use snapshot_feed::feed_snapshot;
#[cfg(feature = "net")]
pub use stream::NetStream;
#[cfg(feature = "net")]
pub use tls::TlsError;
