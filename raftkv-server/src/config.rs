//! [`Config`]: everything a `raftkv-server` process needs, layered by figment:
//! defaults < `raftkv.toml` (or `--config FILE`) < `RAFTKV_*` environment
//! variables < command-line flags. A bad value is refused at start with its
//! key, the value and what was expected.

use std::path::PathBuf;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Smallest `net.max_message_bytes`: a run of a shard holding a value of
/// the largest size a key may hold, with room to spare.
pub const MIN_MESSAGE_BYTES: usize = 4 * raftkv_core::shardkv::MAX_STORED_VALUE_BYTES;

/// Smallest `net.max_client_message_bytes`: the largest key and value a
/// client may send, with framing.
pub const MIN_CLIENT_MESSAGE_BYTES: usize = 2 << 20;

/// What a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// One member of the shard controller group.
    Ctrler,
    /// One member of a ShardKV group.
    Shardkv,
    /// A whole cluster (controllers and groups) in this process, on localhost.
    Dev,
}

/// The network transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// gRPC over HTTP/2 (feature `grpc`).
    Grpc,
    /// Protobuf over HTTP/1.1 (feature `http`).
    Http,
}

impl TransportKind {
    /// The default: the first compiled in (`grpc`, else `http`).
    #[must_use]
    pub fn compiled_default() -> Self {
        if cfg!(feature = "grpc") || !cfg!(feature = "http") {
            Self::Grpc
        } else {
            Self::Http
        }
    }
}

/// Where Raft logs and snapshots live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// redb (feature `redb`).
    Redb,
    /// SQLite (feature `sqlite`).
    Sqlite,
    /// Memory only (feature `mem`): nothing survives a restart.
    Mem,
}

impl StorageKind {
    /// The default: the first compiled in (`redb`, `sqlite`, else `mem`).
    #[must_use]
    pub fn compiled_default() -> Self {
        if cfg!(feature = "redb") {
            Self::Redb
        } else if cfg!(feature = "sqlite") {
            Self::Sqlite
        } else if cfg!(feature = "mem") {
            Self::Mem
        } else {
            Self::Redb
        }
    }
}

/// Raft timing and snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftSettings {
    /// Length of one tick, in milliseconds.
    pub tick_ms: u64,
    /// Ticks between heartbeats.
    pub heartbeat_ticks: u32,
    /// Minimum election timeout, in ticks.
    pub election_ticks: u32,
    /// Snapshot once the log holds this many bytes.
    pub snapshot_log_bytes: u64,
}

impl Default for RaftSettings {
    fn default() -> Self {
        Self { tick_ms: 10, heartbeat_ticks: 10, election_ticks: 50, snapshot_log_bytes: 32 << 20 }
    }
}

/// TLS files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// The cluster CA certificate (PEM).
    pub ca: PathBuf,
    /// This node's certificate chain (PEM); a server needs one, a client
    /// presents it when given (with `key`).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// The private key of `cert` (PEM).
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Require client certificates signed by the CA (mTLS).
    #[serde(default)]
    pub require_client_cert: bool,
}

/// Network deadlines and limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetSettings {
    /// Connect (TCP + TLS) deadline, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Deadline of one call, in milliseconds.
    pub request_timeout_ms: u64,
    /// Largest message, in bytes.
    pub max_message_bytes: usize,
    /// TLS; absent: plaintext.
    pub tls: Option<TlsSettings>,
    /// A file holding the cluster token (at least 16 printable characters):
    /// members send it with every request, and peer RPCs without it are refused.
    pub cluster_token_file: Option<PathBuf>,
    /// Most connections a listener holds (lowered to fit the process's
    /// file descriptor limit).
    pub max_connections: usize,
    /// Of `max_connections`, how many only peers may use.
    pub reserved_for_peers: usize,
    /// Most connections yet to send their first request (the oldest is closed past it).
    pub max_silent_connections: usize,
    /// A connection must send its first request within this, in milliseconds.
    pub first_request_timeout_ms: u64,
    /// A connection with no request in progress for this long is closed, in milliseconds.
    pub idle_timeout_ms: u64,
    /// Largest client (key-value, controller, status, migration) request, in bytes.
    pub max_client_message_bytes: usize,
    /// Bytes of requests still arriving that clients may make a listener
    /// hold; peers get as much again of their own.
    pub max_buffered_bytes: usize,
}

impl Default for NetSettings {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 1000,
            request_timeout_ms: 3000,
            max_message_bytes: 64 << 20,
            tls: None,
            cluster_token_file: None,
            max_connections: 4096,
            reserved_for_peers: 256,
            max_silent_connections: 1024,
            first_request_timeout_ms: 10_000,
            idle_timeout_ms: 300_000,
            max_client_message_bytes: 4 << 20,
            max_buffered_bytes: 256 << 20,
        }
    }
}

/// The `dev` role's cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DevSettings {
    /// Host every node listens on.
    pub host: String,
    /// First port: controllers take `base_port..`, then each group's replicas.
    pub base_port: u16,
    /// Controller servers.
    pub ctrlers: usize,
    /// ShardKV groups (ids 1, 2, …).
    pub groups: usize,
    /// Servers per group.
    pub replicas: usize,
    /// Join the groups the controller does not know yet, one by one in gid order.
    pub join: bool,
}

impl Default for DevSettings {
    fn default() -> Self {
        Self { host: "127.0.0.1".into(), base_port: 7000, ctrlers: 3, groups: 2, replicas: 3, join: true }
    }
}

/// The whole configuration of a process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// What this process runs.
    pub role: Role,
    /// The cluster's name, recorded in every data dir it creates and
    /// checked on every start: give each cluster its own.
    pub cluster: String,
    /// Address to listen on for Raft and service RPCs.
    pub listen: String,
    /// Directory of the durable state.
    pub data_dir: PathBuf,
    /// Transport.
    pub transport: TransportKind,
    /// Storage.
    pub storage: StorageKind,
    /// Shards in the cluster (fixed when it is created).
    pub shards: usize,
    /// Addresses of the controller's servers.
    pub ctrl_peers: Vec<String>,
    /// This node's ShardKV group id (role `shardkv`).
    pub group: u64,
    /// The servers of this node's group, in order (role `ctrler`: the controllers).
    pub peers: Vec<String>,
    /// This node's position in `peers`, from 1.
    pub me: usize,
    /// Address of the admin HTTP server (`/metrics`, `/health`, …); empty: none.
    pub admin_listen: String,
    /// OTLP (gRPC) endpoint to export traces to; empty: no export.
    pub otlp_endpoint: String,
    /// Which spans are exported (env-filter syntax): `info` covers elections,
    /// snapshots, configuration changes and migrations; `debug` adds every
    /// replication, commit, apply and RPC span.
    pub trace_filter: String,
    /// Log filter (`tracing` env-filter syntax).
    pub log: String,
    /// On SIGTERM/SIGINT, how long requests in flight may take to finish.
    pub shutdown_grace_ms: u64,
    /// Bytes of keys and values per run when pulling a shard from another
    /// group (role `shardkv`); each run is one log entry.
    pub pull_chunk_bytes: usize,
    /// Raft settings.
    pub raft: RaftSettings,
    /// Network settings.
    pub net: NetSettings,
    /// The `dev` role's cluster.
    pub dev: DevSettings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            role: Role::Dev,
            cluster: "raftkv".into(),
            listen: "0.0.0.0:8000".into(),
            data_dir: PathBuf::from("raftkv-data"),
            transport: TransportKind::compiled_default(),
            storage: StorageKind::compiled_default(),
            shards: 10,
            ctrl_peers: Vec::new(),
            group: 0,
            peers: Vec::new(),
            me: 0,
            admin_listen: String::new(),
            otlp_endpoint: String::new(),
            trace_filter: "info".into(),
            log: "info".into(),
            shutdown_grace_ms: 5000,
            pull_chunk_bytes: 256 << 10,
            raft: RaftSettings::default(),
            net: NetSettings::default(),
            dev: DevSettings::default(),
        }
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file, variable or flag did not parse (figment names the key and source).
    #[error("configuration: {0}")]
    Parse(String),
    /// A value is not allowed.
    #[error("configuration key `{key}` = {value}: expected {expected}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: String,
    },
    /// A backend was chosen that this binary was built without.
    #[error("configuration key `{key}` = {value}: this binary was built without the `{feature}` feature (rebuild with `--features {feature}`)")]
    NotCompiledIn {
        /// The key.
        key: &'static str,
        /// The value given.
        value: String,
        /// The Cargo feature it needs.
        feature: &'static str,
    },
}

impl Config {
    /// Layer the defaults, the configuration file (`file`, which must exist,
    /// or `./raftkv.toml` if present), `RAFTKV_*` environment variables
    /// (`RAFTKV_NET__REQUEST_TIMEOUT_MS` for a nested key, `[a, b]` for a
    /// list) and `flags` (the command line's values, serialized; absent ones
    /// skipped), then check the result.
    pub fn load(file: Option<&std::path::Path>, flags: impl Serialize) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(f) if !f.exists() => {
                return Err(ConfigError::Parse(format!("configuration file {} does not exist", f.display())));
            }
            Some(f) => figment = figment.merge(Toml::file(f)),
            None => figment = figment.merge(Toml::file("raftkv.toml")),
        }
        figment = figment.merge(Env::prefixed("RAFTKV_").split("__")).merge(Serialized::defaults(flags));
        let mut config: Config = figment.extract().map_err(|e| ConfigError::Parse(describe(&e)))?;
        // A controller's group is the controller: `--ctrl-peers` names it too, as in the reference topology.
        if config.role == Role::Ctrler && config.peers.is_empty() {
            config.peers = config.ctrl_peers.clone();
        }
        config.validate()?;
        Ok(config)
    }

    /// Check values figment cannot (ranges, required keys per role, compiled-in backends).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid =
            |key, value: String, expected: &str| Err(ConfigError::Invalid { key, value, expected: expected.into() });
        match self.transport {
            TransportKind::Grpc if !cfg!(feature = "grpc") => {
                return Err(ConfigError::NotCompiledIn { key: "transport", value: "grpc".into(), feature: "grpc" })
            }
            TransportKind::Http if !cfg!(feature = "http") => {
                return Err(ConfigError::NotCompiledIn { key: "transport", value: "http".into(), feature: "http" })
            }
            _ => {}
        }
        match self.storage {
            StorageKind::Redb if !cfg!(feature = "redb") => {
                return Err(ConfigError::NotCompiledIn { key: "storage", value: "redb".into(), feature: "redb" })
            }
            StorageKind::Sqlite if !cfg!(feature = "sqlite") => {
                return Err(ConfigError::NotCompiledIn { key: "storage", value: "sqlite".into(), feature: "sqlite" })
            }
            StorageKind::Mem if !cfg!(feature = "mem") => {
                return Err(ConfigError::NotCompiledIn { key: "storage", value: "mem".into(), feature: "mem" })
            }
            _ => {}
        }
        let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if self.cluster.is_empty() || self.cluster.len() > 64 || !self.cluster.chars().all(name_char) {
            return invalid(
                "cluster",
                format!("{:?}", self.cluster),
                "a name of 1 to 64 letters, digits, '-', '_' or '.'",
            );
        }
        if self.shards == 0 || self.shards > 1 << 16 {
            return invalid("shards", self.shards.to_string(), "a number of shards from 1 to 65536");
        }
        if self.raft.tick_ms == 0 {
            return invalid("raft.tick_ms", "0".into(), "at least 1 millisecond");
        }
        if self.raft.election_ticks <= self.raft.heartbeat_ticks {
            return invalid(
                "raft.election_ticks",
                self.raft.election_ticks.to_string(),
                &format!("more than raft.heartbeat_ticks ({})", self.raft.heartbeat_ticks),
            );
        }
        if self.net.request_timeout_ms == 0 || self.net.connect_timeout_ms == 0 {
            return invalid(
                "net.request_timeout_ms",
                self.net.request_timeout_ms.to_string(),
                "at least 1 millisecond",
            );
        }
        // A value of the largest size a key may hold, with a pull run, must fit in one message.
        if self.net.max_message_bytes < MIN_MESSAGE_BYTES {
            return invalid(
                "net.max_message_bytes",
                self.net.max_message_bytes.to_string(),
                &format!("at least {MIN_MESSAGE_BYTES} bytes (twice the largest value a key may hold, and more)"),
            );
        }
        let net = &self.net;
        if net.max_client_message_bytes < MIN_CLIENT_MESSAGE_BYTES
            || net.max_client_message_bytes > net.max_message_bytes
        {
            return invalid(
                "net.max_client_message_bytes",
                net.max_client_message_bytes.to_string(),
                &format!(
                    "from {MIN_CLIENT_MESSAGE_BYTES} (the largest key and value, and framing) to net.max_message_bytes ({})",
                    net.max_message_bytes
                ),
            );
        }
        if net.max_buffered_bytes < net.max_message_bytes {
            return invalid(
                "net.max_buffered_bytes",
                net.max_buffered_bytes.to_string(),
                &format!("at least net.max_message_bytes ({})", net.max_message_bytes),
            );
        }
        if net.max_connections < 16 {
            return invalid("net.max_connections", net.max_connections.to_string(), "at least 16");
        }
        if net.reserved_for_peers >= net.max_connections {
            return invalid(
                "net.reserved_for_peers",
                net.reserved_for_peers.to_string(),
                &format!("fewer than net.max_connections ({})", net.max_connections),
            );
        }
        if net.max_silent_connections == 0 || net.max_silent_connections > net.max_connections {
            return invalid(
                "net.max_silent_connections",
                net.max_silent_connections.to_string(),
                &format!("from 1 to net.max_connections ({})", net.max_connections),
            );
        }
        if net.first_request_timeout_ms < 100 || net.idle_timeout_ms < net.first_request_timeout_ms {
            let (key, value) = if net.first_request_timeout_ms < 100 {
                ("net.first_request_timeout_ms", net.first_request_timeout_ms)
            } else {
                ("net.idle_timeout_ms", net.idle_timeout_ms)
            };
            return invalid(
                key,
                value.to_string(),
                "at least 100 ms, and net.idle_timeout_ms at least net.first_request_timeout_ms",
            );
        }
        // A run, with the framing of its entries, must fit in one message.
        if self.pull_chunk_bytes == 0 || self.pull_chunk_bytes > self.net.max_message_bytes / 2 {
            return invalid(
                "pull_chunk_bytes",
                self.pull_chunk_bytes.to_string(),
                &format!("from 1 to half of net.max_message_bytes ({})", self.net.max_message_bytes / 2),
            );
        }
        let address = |key: &'static str, a: &str| -> Result<(), ConfigError> {
            if raftkv_wire::net::host_of(a).is_none() {
                return Err(ConfigError::Invalid {
                    key,
                    value: format!("{a:?}"),
                    expected: "a host:port address".into(),
                });
            }
            Ok(())
        };
        match self.role {
            Role::Dev => {
                if self.dev.ctrlers == 0 || self.dev.groups == 0 || self.dev.replicas == 0 {
                    return invalid(
                        "dev",
                        format!("{:?}", self.dev),
                        "at least one controller, one group and one replica",
                    );
                }
            }
            Role::Ctrler | Role::Shardkv => {
                address("listen", &self.listen)?;
                if self.peers.is_empty() {
                    return invalid("peers", "[]".into(), "the addresses of this node's group, in order");
                }
                for p in &self.peers {
                    address("peers", p)?;
                }
                once_each("peers", &self.peers)?;
                if self.me == 0 || self.me > self.peers.len() {
                    return invalid(
                        "me",
                        self.me.to_string(),
                        &format!("this node's position in peers, 1..={}", self.peers.len()),
                    );
                }
                let mine = &self.peers[self.me - 1];
                if !listens_as(&self.listen, mine) {
                    return invalid(
                        "listen",
                        format!("{:?}", self.listen),
                        &format!(
                            "the address peers[{}] names for this node (`me` = {}), {mine:?}, or its port on 0.0.0.0 or [::]",
                            self.me - 1,
                            self.me
                        ),
                    );
                }
                if self.role == Role::Shardkv {
                    if self.group == 0 {
                        return invalid("group", "0".into(), "a group id of 1 or more");
                    }
                    if self.ctrl_peers.is_empty() {
                        return invalid("ctrl_peers", "[]".into(), "the controller's addresses");
                    }
                    for p in &self.ctrl_peers {
                        address("ctrl_peers", p)?;
                    }
                    once_each("ctrl_peers", &self.ctrl_peers)?;
                }
            }
        }
        if !self.admin_listen.is_empty() {
            address("admin_listen", &self.admin_listen)?;
        }
        if let Some(tls) = &self.net.tls {
            if tls.cert.is_none() || tls.key.is_none() {
                let key = if tls.cert.is_none() { "net.tls.cert" } else { "net.tls.key" };
                return invalid(key, "(missing)".into(), "a PEM file: a server presents its certificate and key");
            }
        }
        let url = |e: &str| e.starts_with("http://") || e.starts_with("https://");
        if !self.otlp_endpoint.is_empty() && !url(&self.otlp_endpoint) {
            return invalid(
                "otlp_endpoint",
                format!("{:?}", self.otlp_endpoint),
                "a URL such as http://127.0.0.1:4317",
            );
        }
        for (key, filter) in [("log", &self.log), ("trace_filter", &self.trace_filter)] {
            if tracing_subscriber::EnvFilter::try_new(filter).is_err() {
                return invalid(
                    key,
                    format!("{filter:?}"),
                    "a tracing filter such as `info` or `warn,raftkv_core=debug`",
                );
            }
        }
        Ok(())
    }
}

/// An address as compared: the host (an IP address in its canonical form,
/// else the lowercase name) and the port.
fn endpoint(addr: &str) -> Option<(String, u16)> {
    let host = raftkv_wire::net::host_of(addr)?;
    let port = addr.rsplit_once(':')?.1.parse().ok()?;
    let host = host.parse::<std::net::IpAddr>().map_or_else(|_| host.to_ascii_lowercase(), |ip| ip.to_string());
    Some((host, port))
}

/// Refuse a list that names the same address twice.
fn once_each(key: &'static str, addrs: &[String]) -> Result<(), ConfigError> {
    for (j, a) in addrs.iter().enumerate() {
        if let Some(i) = addrs[..j].iter().position(|b| endpoint(b) == endpoint(a)) {
            return Err(ConfigError::Invalid {
                key,
                value: format!("{a:?}"),
                expected: format!(
                    "each address once (it is at positions {} and {}: two servers cannot share an address)",
                    i + 1,
                    j + 1
                ),
            });
        }
    }
    Ok(())
}

/// Whether listening on `listen` serves the address `peer`: the same port,
/// and the same host unless `listen`'s is unspecified (0.0.0.0, [::]).
/// Hosts are compared when both are IP addresses or both names (an IP
/// address and a name would need a DNS lookup; their ports still must agree).
fn listens_as(listen: &str, peer: &str) -> bool {
    let (Some((lh, lp)), Some((ph, pp))) = (endpoint(listen), endpoint(peer)) else { return false };
    let ip = |h: &str| h.parse::<std::net::IpAddr>().ok();
    lp == pp
        && match (ip(&lh), ip(&ph)) {
            (Some(l), _) if l.is_unspecified() => true,
            (Some(l), Some(p)) => l == p,
            (None, None) => lh == ph,
            _ => true,
        }
}

fn describe(e: &figment::Error) -> String {
    e.clone().into_iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")
}
