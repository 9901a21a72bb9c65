//! Alluvium's wire types: the master's `FileSystemMaster` and `BlockMaster` services, the worker's
//! `BlockWorker` service, and the master's metadata records. Generated from `alluvium/v1/*.proto`.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("alluvium.v1");
}

pub use v1::*;

pub mod block_transfer;

/// The Container Storage Interface (`csi.v1`, spec v1.12): the Identity, Controller and Node
/// services the CSI driver serves, generated from `csi/v1/csi.proto`.
pub mod csi {
    #[allow(clippy::all, clippy::pedantic, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("csi.v1");
    }
}

/// gRPC metadata key carrying the caller's user name.
pub const USER_HEADER: &str = "x-alluvium-user";
/// gRPC metadata key carrying the caller's groups, comma separated.
pub const GROUPS_HEADER: &str = "x-alluvium-groups";
/// gRPC metadata key carrying the cluster's shared secret, when one is configured.
pub const SECRET_HEADER: &str = "x-alluvium-secret";

/// Messages may carry data chunks of a few MiB; allow well above the chunk size.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// HTTP/2 flow-control windows and frame size for every Alluvium channel: block data streams in
/// 1 MiB chunks, and the 64 KiB default windows would stall each stream every few frames.
pub const STREAM_WINDOW_BYTES: u32 = 16 * 1024 * 1024;
pub const CONNECTION_WINDOW_BYTES: u32 = 64 * 1024 * 1024;
pub const MAX_FRAME_BYTES: u32 = 1024 * 1024;
