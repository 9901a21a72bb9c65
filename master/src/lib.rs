//! The Alluvium master: the namespace (an inode tree kept in RocksDB), the mount table, the block
//! master (workers and block locations), UFS metadata sync, TTL, async persistence, and the
//! master's gRPC and HTTP servers.
//!
//! The public surface is [`MasterServer`]; the parts are modules of this crate:
//! [`metastore`] (the only RocksDB code), `namespace` + `tx` + `sync` (the inode tree),
//! `mount_table`, `permission`, `block_master`, `ttl`, `persist`, `grpc`, `http` + `web` (the web
//! UI and its JSON REST API), `server`.

pub mod metastore;
pub mod metastore_cache;

mod block_master;
mod grpc;
mod http;
mod inode;
mod metrics;
mod mount_table;
mod namespace;
mod permission;
mod persist;
mod publish_fence;
mod server;
mod ttl;
mod tx;
mod web;

#[cfg(test)]
mod testutil;

pub use server::MasterServer;
