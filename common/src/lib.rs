//! Alluvium's shared vocabulary, kept small: every crate speaks these types.
//!
//! - [`error`]: one error type with a stable [`ErrorCode`] that crosses the wire as a gRPC status.
//! - [`config`]: the one typed configuration (TOML file + `ALLUVIUM_*` env + flags).
//! - [`path`]: namespace path normalization (no `..` escapes).
//! - [`ids`]: block ids derived from file ids.
//! - [`size`]: exact byte sizes (`GiB` vs `GB`).
//! - [`identity`]: who is calling, and the cluster secret, on gRPC metadata.
//! - [`blocking`]: blocking work from async code without stalling the runtime.

pub mod blocking;
pub mod config;
pub mod error;
pub mod identity;
pub mod ids;
pub mod metrics;
pub mod net;
pub mod path;
pub mod prom_text;
pub mod size;
pub mod time;

pub use config::Config;
pub use error::{Error, ErrorCode, Reason, Result};
pub use size::ByteSize;

/// The version every component reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
