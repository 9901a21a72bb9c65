//! Under-storage (UFS) access for Alluvium, through opendal.
//!
//! A mount names a UFS by URI (`file:///data`, `s3://bucket/prefix`, `webhdfs://nn:9870/path`,
//! `memory://name`) plus options (endpoint, region, credentials). [`Ufs::open`] turns that into one
//! opendal `Operator` rooted at the URI's path, wrapped in retry and timeout layers. Every path the
//! rest of Alluvium passes here is *relative to that root* and already normalized, so nothing can
//! name a UFS object outside its mount.

mod error;
mod local;
mod options;
mod staging;
mod ufs;
mod uri;

pub use error::map_err;
pub use options::{is_secret_option, redact_options, REDACTED};
pub use staging::{is_hidden_path, persist_staging_path, PERSIST_STAGING_DIR};
pub use ufs::{Ufs, UfsStatus, UfsWriter};
pub use uri::{normalize_uri, uris_overlap, UfsUri};
