//! The Alluvium worker: a tiered block store (MEM/SSD/HDD dirs, mmap reads), allocation with
//! eviction and promotion, the `BlockWorker` gRPC data service (streamed reads and writes, UFS
//! read-through and write-through, short-circuit leases), heartbeats to the master, and an HTTP
//! face (a status page at `/`, `/api/v1/worker`, `/metrics`, `/healthz`).
//!
//! The lead's binary only needs [`WorkerServer`]; the block store is public for tools and tests.

mod block_transfer;
mod http;
mod lease;
mod master_client;
pub mod metrics;
mod persist;
mod read_through;
mod server;
mod service;
pub mod store;
mod ufs_mounts;
mod web;

#[cfg(test)]
mod test_support;

pub use server::WorkerServer;
