//! Options of each file-system operation. `*::from_config` takes the defaults from
//! `config.client` (write/read type, block size, umask), so a program and the command line behave
//! the same under the same configuration.

use std::collections::BTreeMap;
use std::time::Duration;

use alluvium_common::config::{parse_read_type, parse_write_type};
use alluvium_common::{Config, Result};
use alluvium_proto::{ReadType, TtlAction, WriteType};

/// Default permission bits of new files and directories, before the umask.
pub const DEFAULT_FILE_MODE: u32 = 0o666;
pub const DEFAULT_DIR_MODE: u32 = 0o777;

/// Applies a umask to permission bits.
pub fn apply_umask(mode: u32, umask: u32) -> u32 {
    mode & !umask & 0o7777
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateFileOptions {
    /// `Unspecified` = `client.write_type`.
    pub write_type: WriteType,
    /// 0 = `client.block_size`, and if that is 0 too, the master's default block size.
    pub block_size: u64,
    /// Permission bits (the umask is already applied by `from_config`).
    pub mode: u32,
    /// Create missing parent directories.
    pub recursive: bool,
    pub overwrite: bool,
    pub ttl: Option<Duration>,
    pub ttl_action: TtlAction,
    pub pinned: bool,
}

impl CreateFileOptions {
    pub fn from_config(config: &Config) -> Result<Self> {
        Ok(Self {
            write_type: parse_write_type(&config.client.write_type)?,
            block_size: config.client.block_size.0,
            mode: apply_umask(DEFAULT_FILE_MODE, config.client.umask),
            recursive: true,
            overwrite: false,
            ttl: None,
            ttl_action: TtlAction::Delete,
            pinned: false,
        })
    }
}

impl Default for CreateFileOptions {
    /// Write type unspecified (`client.write_type` applies when the file is created), block size
    /// 0 (`client.block_size`, else the master's), mode 0o644.
    fn default() -> Self {
        Self {
            write_type: WriteType::Unspecified,
            block_size: 0,
            mode: apply_umask(DEFAULT_FILE_MODE, 0o022),
            recursive: true,
            overwrite: false,
            ttl: None,
            ttl_action: TtlAction::Delete,
            pinned: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OpenFileOptions {
    /// `Unspecified` = `client.read_type`.
    pub read_type: ReadType,
}

impl OpenFileOptions {
    pub fn from_config(config: &Config) -> Result<Self> {
        Ok(Self {
            read_type: parse_read_type(&config.client.read_type)?,
        })
    }
}

impl Default for OpenFileOptions {
    /// Read type unspecified: `client.read_type` applies when the file is opened.
    fn default() -> Self {
        Self {
            read_type: ReadType::Unspecified,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeleteOptions {
    pub recursive: bool,
    /// Remove from the namespace and cache only; keep the UFS copy.
    pub alluvium_only: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateDirectoryOptions {
    pub recursive: bool,
    pub allow_exists: bool,
    pub mode: u32,
}

impl CreateDirectoryOptions {
    pub fn from_config(config: &Config) -> Self {
        Self {
            recursive: false,
            allow_exists: false,
            mode: apply_umask(DEFAULT_DIR_MODE, config.client.umask),
        }
    }
}

impl Default for CreateDirectoryOptions {
    fn default() -> Self {
        Self {
            recursive: false,
            allow_exists: false,
            mode: apply_umask(DEFAULT_DIR_MODE, 0o022),
        }
    }
}

/// Attributes to change; `None` leaves an attribute as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SetAttributeOptions {
    pub mode: Option<u32>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub pinned: Option<bool>,
    pub ttl: Option<Duration>,
    pub ttl_action: Option<TtlAction>,
    pub unset_ttl: bool,
    pub recursive: bool,
    /// Explicit modification / access times in ms since the epoch (owner or superuser only).
    pub mtime_ms: Option<i64>,
    pub atime_ms: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MountOptions {
    pub read_only: bool,
    pub shared: bool,
    /// UFS options (endpoint, region, credentials, sync_interval, ...).
    pub options: BTreeMap<String, String>,
}

impl MountOptions {
    /// Parses `k=v` pairs as given to `mount --option`.
    pub fn parse_pairs<S: AsRef<str>>(pairs: &[S]) -> Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for p in pairs {
            let p = p.as_ref();
            match p.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    out.insert(k.trim().to_string(), v.to_string());
                }
                _ => {
                    return Err(alluvium_common::Error::invalid_argument(format!(
                        "mount option '{p}' is not of the form key=value"
                    )))
                }
            }
        }
        Ok(out)
    }
}

/// A duration as whole milliseconds for the wire (saturating).
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn umask_is_applied() {
        assert_eq!(apply_umask(0o666, 0o022), 0o644);
        assert_eq!(apply_umask(0o777, 0o027), 0o750);
        assert_eq!(apply_umask(0o17777, 0), 0o7777);
    }

    #[test]
    fn defaults_come_from_config() {
        let mut c = Config::default();
        c.client.write_type = "cache-through".into();
        c.client.read_type = "NO_CACHE".into();
        c.client.umask = 0o077;
        c.client.block_size = alluvium_common::ByteSize(1 << 20);
        let o = CreateFileOptions::from_config(&c).unwrap();
        assert_eq!(o.write_type, WriteType::CacheThrough);
        assert_eq!(o.block_size, 1 << 20);
        assert_eq!(o.mode, 0o600);
        assert_eq!(
            OpenFileOptions::from_config(&c).unwrap().read_type,
            ReadType::NoCache
        );
        assert_eq!(CreateDirectoryOptions::from_config(&c).mode, 0o700);
        assert_eq!(CreateFileOptions::default().mode, 0o644);
        assert_eq!(
            CreateFileOptions::default().write_type,
            WriteType::Unspecified
        );
        assert_eq!(CreateDirectoryOptions::default().mode, 0o755);
    }

    #[test]
    fn bad_type_names_are_errors() {
        let mut c = Config::default();
        c.client.write_type = "SOMETIMES".into();
        assert!(CreateFileOptions::from_config(&c).is_err());
    }

    #[test]
    fn mount_option_pairs() {
        let m = MountOptions::parse_pairs(&["a=1", "b=x=y", "c="]).unwrap();
        assert_eq!(m["a"], "1");
        assert_eq!(m["b"], "x=y");
        assert_eq!(m["c"], "");
        assert!(MountOptions::parse_pairs(&["novalue"]).is_err());
        assert!(MountOptions::parse_pairs(&["=v"]).is_err());
    }
}
