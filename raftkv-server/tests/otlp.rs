//! With `otlp_endpoint` set, the server exports its spans over OTLP/gRPC:
//! by its exit at the latest it dials the collector and speaks HTTP/2 to it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Read;
use std::net::TcpListener;
use std::time::Duration;

use support::{cli, stdout, Dev};

#[test]
fn spans_are_exported_to_the_configured_otlp_endpoint() {
    let collector = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", collector.local_addr().unwrap());
    let received = std::thread::spawn(move || {
        let (mut conn, _) = collector.accept().expect("the exporter connects");
        conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut preface = [0u8; 24];
        conn.read_exact(&mut preface).expect("the exporter sends a request");
        preface
    });
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path(), &["--otlp-endpoint", &endpoint]);
    let out = cli(&["kv", &format!("--ctrl-peers={}", dev.ctrl_peers), "put", "k", "v"], "");
    assert_eq!(stdout(&out), "OK\n", "{out:?}");
    let status = dev.signal_and_wait("TERM", Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
    let preface = received.join().expect("collector thread");
    assert_eq!(&preface, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "OTLP/gRPC runs over HTTP/2");
}
