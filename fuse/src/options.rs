//! Mount options (`-o key[=value],...`): the kernel-facing ones (ro, allow_other, caching) and the
//! Alluvium-facing ones (write and read type, retry bound, threads).

use std::time::Duration;

use alluvium_common::config::{parse_read_type, parse_write_type};
use alluvium_common::{ByteSize, Error, Result};
use alluvium_proto::{ReadType, WriteType};

/// How a mount behaves. `Default` is what `alluvium fuse mount` uses without `-o`.
#[derive(Debug, Clone, PartialEq)]
pub struct FuseOptions {
    /// `ro`: every change fails with EROFS, in the kernel and here.
    pub read_only: bool,
    /// `allow_other`: users other than the mounting one may use the mount (the master still
    /// checks each caller's permissions).
    pub allow_other: bool,
    /// `allow_root`: root may use the mount too.
    pub allow_root: bool,
    /// `attr_timeout=DURATION`: how long the kernel caches attributes (default 1s).
    pub attr_timeout: Duration,
    /// `entry_timeout=DURATION`: how long the kernel caches name lookups (default 1s).
    pub entry_timeout: Duration,
    /// `kernel_cache` (default) / `no_kernel_cache`: keep the page cache of a file across opens
    /// while the file is unchanged (files are write-once, so this is safe as long as the file id,
    /// length and mtime are the same).
    pub kernel_cache: bool,
    /// `direct_io`: bypass the page cache entirely (every read reaches this daemon).
    pub direct_io: bool,
    /// `max_readahead=SIZE`: kernel read-ahead window (default 1MiB, capped by the kernel).
    pub max_readahead: u32,
    /// `threads=N`: threads serving kernel requests (default 4).
    pub threads: usize,
    /// `write_type=...`: write type of files created through the mount (default `client.write_type`).
    pub write_type: Option<WriteType>,
    /// `read_type=...`: read type of files read through the mount (default `client.read_type`).
    pub read_type: Option<ReadType>,
    /// `retry=DURATION`: how long an operation keeps retrying while the master or a worker is
    /// unavailable before it fails with EIO (default 15s).
    pub retry: Duration,
    /// `fsname=NAME`: the source shown by `mount`/`df` (default `alluvium:<path>`).
    pub fsname: Option<String>,
}

impl Default for FuseOptions {
    fn default() -> Self {
        Self {
            read_only: false,
            allow_other: false,
            allow_root: false,
            attr_timeout: Duration::from_secs(1),
            entry_timeout: Duration::from_secs(1),
            kernel_cache: true,
            direct_io: false,
            max_readahead: 1 << 20,
            threads: 4,
            write_type: None,
            read_type: None,
            retry: Duration::from_secs(15),
            fsname: None,
        }
    }
}

impl FuseOptions {
    /// Parses `-o` values; each may hold several comma-separated options (`-o ro,allow_other`).
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<Self> {
        let mut o = Self::default();
        for value in values {
            for opt in value.as_ref().split(',').map(str::trim) {
                if opt.is_empty() {
                    continue;
                }
                o.apply(opt)?;
            }
        }
        if o.threads == 0 || o.threads > 256 {
            return Err(Error::invalid_argument(format!(
                "fuse option threads={} must be between 1 and 256",
                o.threads
            )));
        }
        Ok(o)
    }

    fn apply(&mut self, opt: &str) -> Result<()> {
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (opt, None),
        };
        fn need<'v>(key: &str, v: Option<&'v str>) -> Result<&'v str> {
            v.filter(|v| !v.is_empty()).ok_or_else(|| {
                Error::invalid_argument(format!("fuse option '{key}' needs a value ({key}=...)"))
            })
        }
        let duration = |v: Option<&str>| -> Result<Duration> {
            let v = need(key, v)?;
            humantime::parse_duration(v).map_err(|e| {
                Error::invalid_argument(format!("fuse option {key}={v}: not a duration ({e})"))
            })
        };
        match key {
            "ro" => self.read_only = true,
            "rw" => self.read_only = false,
            "allow_other" => self.allow_other = true,
            "allow_root" => self.allow_root = true,
            "kernel_cache" => self.kernel_cache = true,
            "no_kernel_cache" => self.kernel_cache = false,
            "direct_io" => self.direct_io = true,
            "attr_timeout" => self.attr_timeout = duration(value)?,
            "entry_timeout" => self.entry_timeout = duration(value)?,
            "retry" => self.retry = duration(value)?,
            "max_readahead" => {
                let v = need(key, value)?;
                let size: ByteSize = v.parse().map_err(|e| {
                    Error::invalid_argument(format!("fuse option max_readahead={v}: {e}"))
                })?;
                self.max_readahead = u32::try_from(size.0).unwrap_or(u32::MAX).max(4096);
            }
            "threads" => {
                let v = need(key, value)?;
                self.threads = v.parse().map_err(|_| {
                    Error::invalid_argument(format!("fuse option threads={v}: not a number"))
                })?;
            }
            "write_type" => self.write_type = Some(parse_write_type(need(key, value)?)?),
            "read_type" => self.read_type = Some(parse_read_type(need(key, value)?)?),
            "fsname" => self.fsname = Some(need(key, value)?.to_string()),
            // Accepted for compatibility with mount(8) habits; they change nothing here.
            "defaults" | "nodev" | "nosuid" | "noatime" | "async" => {}
            other => {
                return Err(Error::invalid_argument(format!(
                    "unknown fuse option '{other}' (known: ro, rw, allow_other, allow_root, \
                     attr_timeout=, entry_timeout=, kernel_cache, no_kernel_cache, direct_io, \
                     max_readahead=, threads=, write_type=, read_type=, retry=, fsname=)"
                )))
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_lists() {
        let o = FuseOptions::parse::<&str>(&[]).unwrap();
        assert_eq!(o, FuseOptions::default());
        let o = FuseOptions::parse(&[
            "ro,allow_other",
            "attr_timeout=5s,entry_timeout=250ms",
            "max_readahead=4MiB,threads=8",
            "write_type=CACHE_THROUGH,read_type=no_cache,retry=2s",
        ])
        .unwrap();
        assert!(o.read_only && o.allow_other);
        assert_eq!(o.attr_timeout, Duration::from_secs(5));
        assert_eq!(o.entry_timeout, Duration::from_millis(250));
        assert_eq!(o.max_readahead, 4 << 20);
        assert_eq!(o.threads, 8);
        assert_eq!(o.write_type, Some(WriteType::CacheThrough));
        assert_eq!(o.read_type, Some(ReadType::NoCache));
        assert_eq!(o.retry, Duration::from_secs(2));
    }

    #[test]
    fn bad_options_are_named() {
        let e = FuseOptions::parse(&["bogus"]).unwrap_err();
        assert!(e.message.contains("bogus"), "{e}");
        assert!(FuseOptions::parse(&["attr_timeout=soon"]).is_err());
        assert!(FuseOptions::parse(&["threads=0"]).is_err());
        assert!(FuseOptions::parse(&["write_type"]).is_err());
        assert!(FuseOptions::parse(&["write_type=SOMETIMES"]).is_err());
    }
}
