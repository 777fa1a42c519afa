//! # raftkv-server
//!
//! The `raftkv-server` binary (roles `ctrler`, `shardkv`, `dev`) and the
//! `raftkv` CLI, assembled from the storage and transport crates by Cargo
//! features (`grpc`, `http`, `redb`, `sqlite`, `mem`; default `grpc` +
//! `redb`) and chosen among those by configuration ([`config::Config`]).

pub mod admin;
pub mod backend;
pub mod cli;
pub mod config;
pub mod datadir;
pub mod dev;
pub mod node;
pub mod setup;
pub mod telemetry;
