//! The Alluvium client library: the native file-system API every other part builds on (the `fs`
//! shell, FUSE, the gateways, the CSI driver).
//!
//! - [`FileSystem`]: metadata operations on the master and data streams to workers.
//! - [`FileOutStream`] / [`FileInStream`]: block-wise writes (short-circuit into a local worker's
//!   tier files or streamed over gRPC) and reads ([`read`]: mmap of a local worker's block file,
//!   streamed from a remote worker, or read through a worker from the UFS).
//! - [`blocking`]: the same API for synchronous code (`std::io::Read`/`Write`/`Seek`).

pub mod block_transfer;
pub mod blocking;
pub mod config;
mod context;
pub mod file_system;
pub mod locality;
pub mod master_client;
pub mod metrics;
pub mod out_stream;
pub mod read;
pub mod worker_pool;

pub use alluvium_proto::{
    BlockInfo, BlockLocation, FileInfo, MasterInfo, MountInfo, PersistenceState, ReadType,
    TtlAction, WorkerInfo, WriteType,
};
pub use config::options::{
    CreateDirectoryOptions, CreateFileOptions, DeleteOptions, MountOptions, OpenFileOptions,
    SetAttributeOptions,
};
pub use context::{no_live_worker, with_path};
pub use file_system::{FileSystem, LoadSummary};
pub use metrics::ClientMetrics;
pub use out_stream::FileOutStream;
pub use read::FileInStream;
