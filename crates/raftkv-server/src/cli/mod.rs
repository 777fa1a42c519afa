//! The `raftkv` CLI's pieces: command parsing and execution in the seed's
//! syntax, output formats, the REPL loop, and `status`.

pub mod commands;
pub mod format;
pub mod repl;
pub mod status;
