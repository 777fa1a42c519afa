//! What to tell the operator when the cluster did not answer because the
//! CLI and the servers disagree about TLS. A client without `--tls-ca`
//! meets a TLS server as a connection that fails without a word, which the
//! transports can only call "unreachable"; so, after such a failure, the CLI
//! asks the servers' ports itself: it sends the first bytes of a plaintext
//! HTTP/2 connection (what a client without TLS sends) and looks at the
//! answer. A TLS server answers with a TLS record (it refuses the bytes with
//! an alert); a plaintext server answers with HTTP.

use std::time::Duration;

use raftkv_core::client::ClerkError;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};

/// The client preface of HTTP/2, with which a plaintext gRPC client opens.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a server's port speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speaks {
    /// It answered plaintext bytes with a TLS record.
    Tls,
    /// It answered with something else (HTTP).
    Plaintext,
    /// It could not be reached, or closed without a word.
    Unknown,
}

/// Whether `first` (the first bytes a server sent) begin a TLS record: an
/// alert (21) or handshake (22) record of version 3.x.
#[must_use]
pub fn is_tls_record(first: &[u8]) -> bool {
    matches!(first, [21 | 22, 3, 0..=4, ..])
}

/// Ask the server at `addr` what it speaks, waiting at most `within` for
/// each step (connecting, writing, reading).
#[must_use]
pub fn probe(addr: &str, within: Duration) -> Speaks {
    let Ok(targets) = addr.to_socket_addrs() else { return Speaks::Unknown };
    let Some(mut tcp) = targets.into_iter().find_map(|a| TcpStream::connect_timeout(&a, within).ok()) else {
        return Speaks::Unknown;
    };
    if tcp.set_read_timeout(Some(within)).and(tcp.set_write_timeout(Some(within))).is_err()
        || tcp.write_all(H2_PREFACE).is_err()
    {
        return Speaks::Unknown;
    }
    let mut first = [0u8; 3];
    let mut got = 0;
    while got < first.len() {
        match tcp.read(&mut first[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    match &first[..got] {
        [] => Speaks::Unknown,
        bytes if is_tls_record(bytes) => Speaks::Tls,
        // A record cut short still starts as one.
        [21 | 22] | [21 | 22, 3] => Speaks::Tls,
        _ => Speaks::Plaintext,
    }
}

/// How this client speaks to the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client {
    /// It speaks TLS (it was given a CA).
    pub tls: bool,
    /// It presents a certificate.
    pub cert: bool,
}

/// The hint for a failed request `e` to the cluster at `addrs`: `None`
/// when TLS does not seem to be the trouble.
#[must_use]
pub fn explain(e: &ClerkError, client: Client, addrs: &[String]) -> Option<String> {
    match e {
        ClerkError::TimedOut { .. } => unreached(client, addrs),
        _ => None,
    }
}

/// The hint for servers among `addrs` that could not be reached: what
/// the first of them that answers the probe speaks, against what `client` speaks.
#[must_use]
pub fn unreached(client: Client, addrs: &[String]) -> Option<String> {
    let (addr, speaks) = addrs
        .iter()
        .take(3)
        .map(|a| (a, probe(a, Duration::from_secs(1))))
        .find(|(_, speaks)| *speaks != Speaks::Unknown)?;
    match (speaks, client) {
        (Speaks::Tls, Client { tls: false, .. }) => Some(format!(
            "{addr} speaks TLS and this client does not: give the cluster CA with --tls-ca FILE \
             (or RAFTKV_NET__TLS__CA), and --tls-cert/--tls-key if the cluster requires client certificates"
        )),
        (Speaks::Tls, Client { tls: true, cert: false }) => Some(format!(
            "{addr} speaks TLS but did not take this client: if the cluster requires client certificates, \
             give --tls-cert FILE and --tls-key FILE (or RAFTKV_NET__TLS__CERT and RAFTKV_NET__TLS__KEY); \
             else check that --tls-ca is the CA that signed the cluster's certificates"
        )),
        (Speaks::Tls, Client { tls: true, cert: true }) => Some(format!(
            "{addr} speaks TLS but did not take this client: check that --tls-ca is the CA that signed \
             the cluster's certificates and --tls-cert one it signed"
        )),
        (Speaks::Plaintext, Client { tls: true, .. }) => Some(format!(
            "{addr} does not speak TLS (it answered in plaintext): leave out --tls-ca and RAFTKV_NET__TLS__*"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_records_are_told_from_http() {
        assert!(is_tls_record(&[21, 3, 3, 0, 2, 2, 50]), "a decode_error alert");
        assert!(is_tls_record(&[22, 3, 1]), "a handshake");
        assert!(!is_tls_record(b"HTTP/1.1 400"));
        assert!(!is_tls_record(&[0, 0, 18, 4, 0]), "an HTTP/2 SETTINGS frame");
        assert!(!is_tls_record(&[]));
    }

    #[test]
    fn a_port_answering_with_an_alert_speaks_tls_and_one_answering_http_does_not() {
        fn server(answer: &'static [u8]) -> String {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
            let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
            std::thread::spawn(move || {
                if let Ok((mut s, _)) = listener.accept() {
                    let mut buf = [0u8; 24];
                    let _ = s.read_exact(&mut buf);
                    let _ = s.write_all(answer);
                }
            });
            addr
        }
        let tls = server(&[21, 3, 3, 0, 2, 2, 50]);
        assert_eq!(probe(&tls, Duration::from_secs(5)), Speaks::Tls);
        let http = server(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        assert_eq!(probe(&http, Duration::from_secs(5)), Speaks::Plaintext);
        let silent = server(b"");
        assert_eq!(probe(&silent, Duration::from_secs(5)), Speaks::Unknown);
    }
}
