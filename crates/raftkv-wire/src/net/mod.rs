//! Network plumbing shared by the transports (feature `net`): connections in
//! plaintext or TLS ([`NetStream`]), dialling peers with a deadline
//! ([`Dialer`]), accepting and serving connections with a hard stop
//! ([`listen`]), and rustls settings from a
//! [`TlsConfig`](raftkv_core::transport::TlsConfig) ([`tls`]).

mod dial;
mod listen;
mod stream;
pub mod tls;

pub use dial::{host_of, DialError, DialService, Dialer};
pub use listen::{listen, ListenOptions, ServerHandle};
pub use stream::NetStream;
pub use tls::TlsError;
