//! The `raftkv` CLI's pieces: command parsing (words as given, quotes
//! honoured in the REPL) and execution in the compatible syntax, output
//! formats, the REPL loop, `status`, the transport settings (TLS from flags
//! and `RAFTKV_NET__*`), the hint when TLS is the trouble, and `cert`.
//!
//! The CLI's syntax and output are a compatibility contract with the CLI of
//! the original project RaftKV grew from, recorded in a transcript of its
//! sessions (`seed-cli-transcript.md`, in the project's reference material).
//! The commands (`Join gid:addr1,addr2 ...`, `Leave gid1,gid2,...`,
//! `Move shard gid`, `Query [num]`; `Put key value`, `Get key`,
//! `Append key suffix`), the REPLs' `> ` prompts and every line the
//! transcript shows them print (`OK`, `Value: 12`, `Config #n: {...}`, the
//! error messages) must match it exactly. Additions are allowed (`Delete`,
//! `-w json|table`, `status`, history); changes to what it records are not.
//! `tests/cli.rs` replays its sessions against a dev cluster, and
//! `cargo xtask docker-test` its controller session in the Docker
//! deployment.

pub mod cert;
pub mod commands;
pub mod format;
pub mod net;
pub mod repl;
pub mod status;
pub mod tls_hint;
pub mod words;
