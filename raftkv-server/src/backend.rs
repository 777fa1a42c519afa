//! The backends compiled into this binary, chosen by configuration: the
//! storage every member of the process keeps its log and snapshots in, and
//! the network transport (client pool and servers).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use raftkv_core::api::ServiceClient;
use raftkv_core::storage::{LogStore, SnapshotStore};
use raftkv_core::transport::Transport;
use raftkv_core::{GroupId, NodeId};
use raftkv_wire::net::{NetConfig, Routes};

use crate::config::{StorageKind, TransportKind};

/// Durable state of every member this process hosts (one database, many logs).
pub enum Storage {
    /// redb.
    #[cfg(feature = "redb")]
    Redb(raftkv_storage_redb::RedbStorage),
    /// SQLite.
    #[cfg(feature = "sqlite")]
    Sqlite(raftkv_storage_sqlite::SqliteStorage),
    /// Memory only.
    #[cfg(feature = "mem")]
    Mem(std::sync::Mutex<BTreeMap<(GroupId, NodeId), raftkv_core::storage::MemDisk>>),
}

impl Storage {
    /// Open (or create) the storage of `kind` in `dir`.
    pub async fn open(kind: StorageKind, dir: &Path) -> Result<Self> {
        let _ = dir;
        match kind {
            #[cfg(feature = "redb")]
            StorageKind::Redb => Ok(Self::Redb(
                raftkv_storage_redb::RedbStorage::open(dir, raftkv_storage_redb::RedbOptions::default())
                    .await
                    .with_context(|| format!("opening the redb storage in {}", dir.display()))?,
            )),
            #[cfg(feature = "sqlite")]
            StorageKind::Sqlite => Ok(Self::Sqlite(
                raftkv_storage_sqlite::SqliteStorage::open(dir, raftkv_storage_sqlite::SqliteOptions::default())
                    .await
                    .with_context(|| format!("opening the SQLite storage in {}", dir.display()))?,
            )),
            #[cfg(feature = "mem")]
            StorageKind::Mem => Ok(Self::Mem(std::sync::Mutex::new(BTreeMap::new()))),
            #[allow(unreachable_patterns)]
            other => anyhow::bail!("storage {other:?} is not compiled into this binary"),
        }
    }

    /// The log and snapshot stores of member `node` of `group`.
    pub async fn member(&self, group: GroupId, node: NodeId) -> Result<(Arc<dyn LogStore>, Arc<dyn SnapshotStore>)> {
        let _ = (group, node);
        match self {
            #[cfg(feature = "redb")]
            Self::Redb(s) => {
                let (log, snapshots) =
                    s.member(group, node).await.with_context(|| format!("opening member {node} of group {group}"))?;
                Ok((Arc::new(log), Arc::new(snapshots)))
            }
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => {
                let (log, snapshots) =
                    s.member(group, node).await.with_context(|| format!("opening member {node} of group {group}"))?;
                Ok((Arc::new(log), Arc::new(snapshots)))
            }
            #[cfg(feature = "mem")]
            Self::Mem(disks) => {
                let disk = disks
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .entry((group, node))
                    .or_default()
                    .clone();
                Ok((Arc::new(disk.log_store()), Arc::new(disk.snapshot_store())))
            }
        }
    }
}

/// A running transport server.
pub enum Server {
    /// gRPC.
    #[cfg(feature = "grpc")]
    Grpc(raftkv_transport_grpc::GrpcServer),
    /// HTTP.
    #[cfg(feature = "http")]
    Http(raftkv_transport_http::HttpServer),
}

impl Server {
    /// The address it listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        match self {
            #[cfg(feature = "grpc")]
            Self::Grpc(s) => s.addr(),
            #[cfg(feature = "http")]
            Self::Http(s) => s.addr(),
        }
    }

    /// Stop it.
    pub async fn stop(self) {
        match self {
            #[cfg(feature = "grpc")]
            Self::Grpc(s) => s.stop().await,
            #[cfg(feature = "http")]
            Self::Http(s) => s.stop().await,
        }
    }
}

/// The client side of the transport: one connection pool for the process.
#[derive(Clone)]
pub enum Net {
    /// gRPC.
    #[cfg(feature = "grpc")]
    Grpc(raftkv_transport_grpc::GrpcClient, NetConfig),
    /// HTTP.
    #[cfg(feature = "http")]
    Http(raftkv_transport_http::HttpClient, NetConfig),
}

impl Net {
    /// The client of `kind` with `cfg`.
    pub fn new(kind: TransportKind, cfg: NetConfig) -> Result<Self> {
        match kind {
            #[cfg(feature = "grpc")]
            TransportKind::Grpc => Ok(Self::Grpc(raftkv_transport_grpc::GrpcClient::new(cfg.clone())?, cfg)),
            #[cfg(feature = "http")]
            TransportKind::Http => Ok(Self::Http(raftkv_transport_http::HttpClient::new(cfg.clone())?, cfg)),
            #[allow(unreachable_patterns)]
            other => {
                let _ = cfg;
                anyhow::bail!("transport {other:?} is not compiled into this binary")
            }
        }
    }

    /// The Raft transport of `group`, reaching member `n` at `peers[n]`.
    #[must_use]
    pub fn raft(&self, group: GroupId, peers: BTreeMap<NodeId, String>) -> Arc<dyn Transport> {
        let _ = (&group, &peers);
        match self {
            #[cfg(feature = "grpc")]
            Self::Grpc(c, _) => Arc::new(c.raft(group, peers)),
            #[cfg(feature = "http")]
            Self::Http(c, _) => Arc::new(c.raft(group, peers)),
        }
    }

    /// Service calls through the pool.
    #[must_use]
    pub fn services(&self) -> Arc<dyn ServiceClient> {
        match self {
            #[cfg(feature = "grpc")]
            Self::Grpc(c, _) => Arc::new(c.clone()),
            #[cfg(feature = "http")]
            Self::Http(c, _) => Arc::new(c.clone()),
        }
    }

    /// Serve `routes` on `addr` with this transport's settings.
    pub async fn serve(&self, addr: SocketAddr, routes: Routes) -> Result<Server> {
        let _ = (&addr, &routes);
        match self {
            #[cfg(feature = "grpc")]
            Self::Grpc(_, cfg) => Ok(Server::Grpc(raftkv_transport_grpc::GrpcServer::start(addr, routes, cfg).await?)),
            #[cfg(feature = "http")]
            Self::Http(_, cfg) => Ok(Server::Http(raftkv_transport_http::HttpServer::start(addr, routes, cfg).await?)),
        }
    }
}
