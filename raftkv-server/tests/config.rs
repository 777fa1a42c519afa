//! A wrong configuration is refused at start with the key, the value and what
//! was expected, from a file, the environment or a flag.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use raftkv_server::config::{Config, ConfigError, Role};

fn load_toml(text: &str) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("raftkv.toml");
    std::fs::write(&file, text).unwrap();
    Config::load(Some(&file), serde_json::json!({}))
}

fn message(r: Result<Config, ConfigError>) -> String {
    r.expect_err("the configuration is refused").to_string()
}

#[test]
fn a_good_file_is_layered_under_the_environment_and_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.toml");
    std::fs::write(
        &file,
        "role = \"ctrler\"\nlisten = \"127.0.0.1:9000\"\npeers = [\"127.0.0.1:9000\", \"127.0.0.1:9001\", \"127.0.0.1:9002\"]\nme = 1\n[raft]\ntick_ms = 5\n",
    )
    .unwrap();
    std::env::set_var("RAFTKV_ME", "2");
    std::env::set_var("RAFTKV_RAFT__HEARTBEAT_TICKS", "4");
    let cfg = Config::load(Some(&file), serde_json::json!({"listen": "127.0.0.1:9001"})).unwrap();
    std::env::remove_var("RAFTKV_ME");
    std::env::remove_var("RAFTKV_RAFT__HEARTBEAT_TICKS");
    assert_eq!(cfg.role, Role::Ctrler);
    assert_eq!(cfg.me, 2, "the environment overrides the file");
    assert_eq!(cfg.listen, "127.0.0.1:9001", "a flag overrides the file");
    assert_eq!(
        (cfg.raft.tick_ms, cfg.raft.heartbeat_ticks, cfg.raft.election_ticks),
        (5, 4, 50),
        "defaults fill the rest"
    );
    assert_eq!(cfg.shards, 10);
}

#[test]
fn bad_values_name_the_key_the_value_and_the_expectation() {
    let m = message(load_toml("shards = \"ten\"\n"));
    assert!(m.contains("shards") && m.contains("ten") && m.contains("raftkv.toml"), "{m}");
    let m = message(load_toml("lisen = \"127.0.0.1:1\"\n"));
    assert!(m.contains("unknown field") && m.contains("lisen") && m.contains("listen"), "{m}");
    let m = message(load_toml("shards = 0\n"));
    assert_eq!(m, "configuration key `shards` = 0: expected a number of shards from 1 to 65536");
    let m = message(load_toml("[raft]\nelection_ticks = 5\n"));
    assert_eq!(m, "configuration key `raft.election_ticks` = 5: expected more than raft.heartbeat_ticks (10)");
    let m = message(load_toml("pull_chunk_bytes = 0\n"));
    assert_eq!(
        m,
        "configuration key `pull_chunk_bytes` = 0: expected from 1 to half of net.max_message_bytes (33554432)"
    );
    let m = message(load_toml("transport = \"quic\"\n"));
    assert!(m.contains("transport") && m.contains("quic") && m.contains("grpc"), "{m}");
    let m = message(load_toml(
        "role = \"shardkv\"\nlisten = \"127.0.0.1:1\"\npeers = [\"127.0.0.1:1\"]\nme = 1\ngroup = 1\n",
    ));
    assert_eq!(m, "configuration key `ctrl_peers` = []: expected the controller's addresses");
    let m = message(load_toml(
        "role = \"ctrler\"\nlisten = \"127.0.0.1:1\"\npeers = [\"127.0.0.1:1\", \"nowhere\"]\nme = 1\n",
    ));
    assert_eq!(m, "configuration key `peers` = \"nowhere\": expected a host:port address");
    let m = message(load_toml("role = \"ctrler\"\nlisten = \"127.0.0.1:1\"\npeers = [\"127.0.0.1:1\"]\nme = 3\n"));
    assert_eq!(m, "configuration key `me` = 3: expected this node's position in peers, 1..=1");
    let m = message(load_toml("otlp_endpoint = \"collector:4317\"\n"));
    assert_eq!(
        m,
        "configuration key `otlp_endpoint` = \"collector:4317\": expected a URL such as http://127.0.0.1:4317"
    );
    let m = message(load_toml("trace_filter = \"info,[\"\n"));
    assert!(m.starts_with("configuration key `trace_filter` = \"info,[\": expected a tracing filter"), "{m}");
    let m = message(load_toml("shards = [\n"));
    assert!(m.contains("raftkv.toml"), "a syntax error names the file: {m}");
    let m = message(Config::load(Some(std::path::Path::new("/no/such/raftkv.toml")), serde_json::json!({})));
    assert_eq!(m, "configuration: configuration file /no/such/raftkv.toml does not exist");
}

#[test]
fn a_bad_environment_variable_is_named() {
    std::env::set_var("RAFTKV_NET__REQUEST_TIMEOUT_MS", "soon");
    let m = message(Config::load(None, serde_json::json!({})));
    std::env::remove_var("RAFTKV_NET__REQUEST_TIMEOUT_MS");
    assert!(m.contains("NET.REQUEST_TIMEOUT_MS") && m.contains("RAFTKV_") && m.contains("\"soon\""), "{m}");
}

#[test]
fn the_server_refuses_a_bad_file_with_exit_code_2_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[raft]\ntick_ms = 0\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_raftkv-server"))
        .args(["dev", "--config", &file.display().to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "raftkv-server: configuration key `raft.tick_ms` = 0: expected at least 1 millisecond\n"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_raftkv-server")).args(["dve"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid value 'dve'") && err.contains("dev"), "{err}");
}

#[test]
fn an_address_that_does_not_resolve_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_raftkv-server"))
        .args(["ctrler", "--listen", "no-such-host.invalid:7000", "--peers", "no-such-host.invalid:7000", "--me", "1"])
        .args(["--data-dir", &dir.path().display().to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot resolve no-such-host.invalid:7000"), "{err}");
}

#[cfg(not(all(feature = "grpc", feature = "http", feature = "redb", feature = "sqlite", feature = "mem")))]
#[test]
fn a_backend_not_compiled_in_names_its_feature() {
    let missing =
        [("grpc", "transport"), ("http", "transport"), ("redb", "storage"), ("sqlite", "storage"), ("mem", "storage")]
            .into_iter()
            .find(|(f, _)| match *f {
                "grpc" => !cfg!(feature = "grpc"),
                "http" => !cfg!(feature = "http"),
                "redb" => !cfg!(feature = "redb"),
                "sqlite" => !cfg!(feature = "sqlite"),
                _ => !cfg!(feature = "mem"),
            })
            .unwrap();
    let m = message(load_toml(&format!("{} = \"{}\"\n", missing.1, missing.0)));
    assert_eq!(
        m,
        format!(
            "configuration key `{}` = {}: this binary was built without the `{}` feature (rebuild with `--features {}`)",
            missing.1, missing.0, missing.0, missing.0
        )
    );
}
