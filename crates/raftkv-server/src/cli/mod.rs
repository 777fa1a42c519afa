//! The `raftkv` CLI's pieces: command parsing (words as given, quotes
//! honoured in the REPL) and execution in the seed's syntax, output formats,
//! the REPL loop, `status`, the transport settings (TLS from flags and
//! `RAFTKV_NET__*`), the hint when TLS is the trouble, and `cert`.

pub mod cert;
pub mod commands;
pub mod format;
pub mod net;
pub mod repl;
pub mod status;
pub mod tls_hint;
pub mod words;
