//! `raftkv`: the command-line client of a RaftKV cluster. `raftkv ctrl` and
//! `raftkv kv` open REPLs in the compatible syntax (or run one command given
//! as words), `raftkv status` shows every node, `raftkv cert` makes the
//! certificates of a TLS cluster.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use raftkv_core::client::{ClerkConfig, ClerkError, CtrlClerk, KvClerk};
use raftkv_core::ClientId;
use raftkv_server::backend::Net;
use raftkv_server::cli::cert::{self, CertCommand};
use raftkv_server::cli::commands::{self, CTRL_BANNER, KV_BANNER};
use raftkv_server::cli::format::{self, Format};
use raftkv_server::cli::net::{self, TlsFlags};
use raftkv_server::cli::words::Words;
use raftkv_server::cli::{repl, status, tls_hint};
use raftkv_server::config::TransportKind;

#[derive(Debug, Parser)]
#[command(name = "raftkv", version, about = "The RaftKV command-line client")]
struct Args {
    /// Output format.
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "simple", global = true)]
    format: Format,
    /// Transport the cluster speaks (default: grpc if compiled in, else http).
    #[arg(long, value_enum, global = true)]
    transport: Option<TransportArg>,
    /// Give up on a command after this many seconds.
    #[arg(long, default_value_t = 10, global = true)]
    timeout_secs: u64,
    #[command(flatten)]
    tls: TlsFlags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum TransportArg {
    Grpc,
    Http,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The shard controller: `Join gid:addr1,addr2 ...`, `Leave gid1,gid2`, `Move shard gid`, `Query [num]`.
    Ctrl {
        /// The controller's addresses, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        ctrl_peers: Vec<String>,
        /// One command to run instead of the REPL (e.g. `query`, `join 1:a:8000,b:8000`).
        words: Vec<String>,
    },
    /// The key-value store: `Put key value`, `Get key`, `Append key suffix`, `Delete key`.
    Kv {
        /// The controller's addresses, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        ctrl_peers: Vec<String>,
        /// One command to run instead of the REPL (e.g. `put k v`, `get k`).
        words: Vec<String>,
    },
    /// Every node's role, term, leader, commit, applied, lag and shards.
    Status {
        /// The controller's addresses, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        ctrl_peers: Vec<String>,
    },
    /// Make the certificates of a TLS cluster: a CA, member and client certificates.
    Cert {
        #[command(subcommand)]
        what: CertCommand,
    },
}

fn client_id() -> ClientId {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    ClientId((nanos as u64) ^ (u64::from(std::process::id()) << 40))
}

/// What a one-shot command's exit code is, from its printed answer (an
/// error is the whole answer: `Error: …`, or a JSON object `{"error": …}`;
/// a value that merely holds such words is no failure).
fn exit_code(text: &str) -> u8 {
    if text.starts_with("Error:") || text.starts_with("{\"error\"") {
        1
    } else if text.starts_with("usage:") || text.starts_with("Invalid") || text.starts_with("Unknown") {
        2
    } else {
        0
    }
}

/// The REPL when no command words were given, else the one command they
/// form (each word as given); the process's exit code. `answer` gets the
/// words of a line, or why the line does not split into words.
fn session(
    banner: &str,
    words: &[String],
    out: &mut std::io::Stdout,
    mut answer: impl FnMut(Result<Words, String>) -> Option<String>,
) -> u8 {
    if words.is_empty() {
        repl::run(banner, repl::Lines::stdin(), out, |line| answer(Words::from_line(line).map_err(|e| e.to_string())));
        return 0;
    }
    let text = answer(Ok(Words::from_args(words))).unwrap_or_default();
    let _ = writeln!(out, "{text}");
    exit_code(&text)
}

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("raftkv: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

/// The command line, with the compatible client names honoured: a binary
/// named `shardctrler-client` (or `shardctrler_client`) runs `raftkv ctrl`,
/// one named `shardkv-client` (or `shardkv_client`) runs `raftkv kv`.
fn command_line() -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let name =
        args.first().and_then(|a| std::path::Path::new(a).file_stem()).map(|s| s.to_string_lossy().replace('_', "-"));
    let implied = match name.as_deref() {
        Some("shardctrler-client") => Some("ctrl"),
        Some("shardkv-client") => Some("kv"),
        _ => None,
    };
    if let Some(sub) = implied {
        args.insert(1.min(args.len()), sub.into());
    }
    args
}

fn real_main() -> Result<u8> {
    let args = Args::parse_from(command_line());
    let out = &mut std::io::stdout();
    let command = match args.command {
        Command::Cert { what } => {
            let _ = writeln!(out, "{}", cert::run(&what)?);
            return Ok(0);
        }
        other => other,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    let _guard = rt.enter();
    let kind = match args.transport {
        Some(TransportArg::Grpc) => TransportKind::Grpc,
        Some(TransportArg::Http) => TransportKind::Http,
        None => TransportKind::compiled_default(),
    };
    let settings = net::settings(&args.tls)?;
    let client =
        tls_hint::Client { tls: settings.tls.is_some(), cert: settings.tls.as_ref().is_some_and(|t| t.cert.is_some()) };
    let net = net::net_config(&settings).and_then(|cfg| Net::new(kind, cfg)).with_context(|| {
        if client.tls {
            format!("TLS files {}", net::tls_files(&settings, &args.tls))
        } else {
            "the transport settings".to_string()
        }
    })?;
    let clerk_cfg =
        ClerkConfig { retry_pause: Duration::from_millis(100), deadline: Some(Duration::from_secs(args.timeout_secs)) };
    let fmt = args.format;
    // A failed request's text, with a hint when TLS seems to be the trouble.
    let failed =
        |e: &ClerkError, peers: &[String]| commands::failure(e, tls_hint::explain(e, client, peers).as_deref(), fmt);
    match command {
        Command::Ctrl { ctrl_peers, words } => {
            let mut clerk = CtrlClerk::new(ctrl_peers.clone(), net.services(), client_id(), clerk_cfg);
            let answer = |words: Result<Words, String>| match words.and_then(|w| commands::parse_ctrl(&w)) {
                Ok(Some(c)) => Some(
                    rt.block_on(commands::run_ctrl(&mut clerk, c, fmt)).unwrap_or_else(|e| failed(&e, &ctrl_peers)),
                ),
                Ok(None) => None,
                Err(usage) => Some(format::error(&usage, fmt)),
            };
            Ok(session(CTRL_BANNER, &words, out, answer))
        }
        Command::Kv { ctrl_peers, words } => {
            let ctrl = CtrlClerk::new(ctrl_peers.clone(), net.services(), client_id(), clerk_cfg.clone());
            let mut clerk = KvClerk::new(ctrl, net.services(), client_id(), clerk_cfg);
            let answer = |words: Result<Words, String>| match words.and_then(|w| commands::parse_kv(&w)) {
                Ok(Some(c)) => {
                    Some(rt.block_on(commands::run_kv(&mut clerk, c, fmt)).unwrap_or_else(|e| failed(&e, &ctrl_peers)))
                }
                Ok(None) => None,
                Err(usage) => Some(format::error(&usage, fmt)),
            };
            Ok(session(KV_BANNER, &words, out, answer))
        }
        Command::Status { ctrl_peers } => {
            let mut ctrl = CtrlClerk::new(ctrl_peers.clone(), net.services(), client_id(), clerk_cfg);
            let nodes = rt.block_on(status::collect(net.services(), &ctrl_peers, &mut ctrl));
            let _ = writeln!(out, "{}", format::statuses(&nodes, fmt));
            let unreached: Vec<String> = nodes.iter().filter(|(_, s)| s.is_err()).map(|(a, _)| a.clone()).collect();
            if let Some(hint) = tls_hint::unreached(client, &unreached) {
                eprintln!("hint: {hint}");
            }
            Ok(u8::from(!unreached.is_empty()))
        }
        // Carried out above, before the runtime and the transport.
        Command::Cert { .. } => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::exit_code;

    #[test]
    fn only_an_answer_that_is_an_error_fails() {
        assert_eq!(exit_code("Error: refused: too large"), 1);
        assert_eq!(exit_code(r#"{"error":"refused: too large"}"#), 1);
        assert_eq!(exit_code("Invalid quoting: the \" at column 7 is never closed"), 2);
        assert_eq!(exit_code(r#"Value: the "error" word"#), 0);
        assert_eq!(exit_code(r#"{"value":"the \"error\" word"}"#), 0);
        assert_eq!(exit_code("Value: Error: not really"), 0);
    }
}
