//! Network plumbing shared by the transports (feature `net`): connections in
//! plaintext or TLS ([`NetStream`]), dialling peers with a deadline
//! ([`Dialer`]), accepting and serving connections with a hard stop
//! ([`listen`]), and rustls settings from a
//! [`TlsConfig`](raftkv_core::transport::TlsConfig) ([`tls`]), and
//! streaming a snapshot into a request body ([`feed_snapshot`]).

pub mod budget;
pub mod connections;
mod dial;
mod error;
mod listen;
mod snapshot_feed;
mod stream;
pub mod tls;

pub use budget::{BudgetError, Budgets, GrpcBody, HeldBody, Pool, RawBody};
pub use connections::{CloseReason, Conn, ConnCounts, ConnTable, RequestGuard, TooManyClients};
pub use dial::{host_of, jitter_seed, DialError, DialService, Dialer};
pub use error::{error_chain, SetupError};
pub use listen::{listen, ConnInfo, ListenOptions, ServerHandle};
pub use snapshot_feed::feed_snapshot;
pub use stream::NetStream;
pub use tls::TlsError;
