//! The HTTP gateways that let existing tools use Alluvium unchanged:
//!
//! - [`webhdfs`]: the WebHDFS REST API v1 (`webhdfs://host:9870/...`), as Hadoop's
//!   `WebHdfsFileSystem` (Spark, MapReduce) and HdfsCLI speak it.
//! - [`s3`]: the S3 API (path-style), with AWS Signature V4, multipart uploads and object metadata;
//!   buckets are the top-level directories of the namespace.
//!
//! Both are clients of the cluster through [`alluvium_client::FileSystem`], acting as the calling
//! user ([`users::UserFileSystems`]). Data streams both ways: no object is ever held in memory.

pub mod body;
pub mod limits;
pub mod metrics;
pub mod s3;
pub mod server;
pub mod time;
pub mod users;
pub mod webhdfs;

pub use server::ProxyServer;

/// Top-level namespace directory that holds the gateways' own state (S3 object metadata,
/// multipart staging). Hidden from every listing the gateways answer.
pub const STATE_DIR: &str = "/.alluvium_s3";

/// Names the gateways never show in listings: their state and in-flight temporary files.
pub fn is_hidden_name(name: &str) -> bool {
    name.starts_with(".alluvium_s3") || name.starts_with(".alluvium-tmp-")
}
