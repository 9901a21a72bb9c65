//! UFS URIs: parsing, normalization and overlap checks.

use std::fmt;

use alluvium_common::{path, Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    File,
    S3,
    WebHdfs,
    Memory,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::File => "file",
            Scheme::S3 => "s3",
            Scheme::WebHdfs => "webhdfs",
            Scheme::Memory => "memory",
        }
    }
}

/// A parsed UFS URI: `scheme://authority/path`, with `path` normalized and absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UfsUri {
    pub scheme: Scheme,
    /// Bucket for S3, `host:port` for WebHDFS, store name for memory, empty for file.
    pub authority: String,
    /// Absolute, normalized path inside the store (`/` for its root).
    pub path: String,
}

impl UfsUri {
    /// Parses a URI. A bare path (`/data` or `data`) means `file://` (relative paths are made
    /// absolute against the current directory).
    pub fn parse(uri: &str) -> Result<Self> {
        let uri = uri.trim();
        if uri.is_empty() {
            return Err(Error::invalid_argument("empty UFS URI"));
        }
        let Some((scheme, rest)) = uri.split_once("://") else {
            // A plain local path.
            let abs = if uri.starts_with('/') {
                uri.to_string()
            } else {
                let cwd = std::env::current_dir()
                    .map_err(|e| Error::internal(format!("current directory: {e}")))?;
                format!("{}/{}", cwd.display(), uri)
            };
            return Ok(UfsUri {
                scheme: Scheme::File,
                authority: String::new(),
                path: norm(&abs, uri)?,
            });
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "file" => Scheme::File,
            "s3" | "s3a" => Scheme::S3,
            "webhdfs" => Scheme::WebHdfs,
            "memory" | "mem" => Scheme::Memory,
            other => {
                return Err(Error::invalid_argument(format!(
                    "{uri}: unsupported UFS scheme '{other}' (file, s3, webhdfs, memory)"
                )))
            }
        };
        let (authority, p) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        match scheme {
            Scheme::File if !authority.is_empty() && authority != "localhost" => {
                return Err(Error::invalid_argument(format!(
                    "{uri}: file URIs take no host (file:///absolute/path)"
                )))
            }
            Scheme::S3 if authority.is_empty() => {
                return Err(Error::invalid_argument(format!(
                    "{uri}: S3 URI needs a bucket (s3://bucket/prefix)"
                )))
            }
            Scheme::WebHdfs if authority.is_empty() => {
                return Err(Error::invalid_argument(format!(
                    "{uri}: WebHDFS URI needs host:port"
                )))
            }
            _ => {}
        }
        Ok(UfsUri {
            scheme,
            authority: if scheme == Scheme::File {
                String::new()
            } else {
                authority.to_string()
            },
            path: norm(p, uri)?,
        })
    }

    /// The URI of `rel` (a path relative to this URI).
    pub fn join(&self, rel: &str) -> String {
        let rel = rel.trim_matches('/');
        if rel.is_empty() {
            return self.to_string();
        }
        let base = self.to_string();
        if base.ends_with('/') {
            format!("{base}{rel}")
        } else {
            format!("{base}/{rel}")
        }
    }
}

impl fmt::Display for UfsUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme.as_str(),
            self.authority,
            self.path
        )
    }
}

fn norm(p: &str, uri: &str) -> Result<String> {
    path::normalize(p).map_err(|e| Error::invalid_argument(format!("{uri}: {}", e.message)))
}

/// The canonical form of a UFS URI (`file:///abs/path` for local paths, no `..`, no trailing `/`).
pub fn normalize_uri(uri: &str) -> Result<String> {
    UfsUri::parse(uri).map(|u| u.to_string())
}

/// Whether two UFS URIs name the same store and one path contains the other.
pub fn uris_overlap(a: &str, b: &str) -> bool {
    match (UfsUri::parse(a), UfsUri::parse(b)) {
        (Ok(a), Ok(b)) => {
            a.scheme == b.scheme
                && a.authority == b.authority
                && (path::is_ancestor_or_self(&a.path, &b.path)
                    || path::is_ancestor_or_self(&b.path, &a.path))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_schemes() {
        let u = UfsUri::parse("s3://bucket/a/b/").unwrap();
        assert_eq!(
            (u.scheme, u.authority.as_str(), u.path.as_str()),
            (Scheme::S3, "bucket", "/a/b")
        );
        assert_eq!(u.to_string(), "s3://bucket/a/b");
        let u = UfsUri::parse("webhdfs://nn:9870").unwrap();
        assert_eq!((u.authority.as_str(), u.path.as_str()), ("nn:9870", "/"));
        assert_eq!(normalize_uri("/tmp/x/../y").unwrap(), "file:///tmp/y");
        assert_eq!(normalize_uri("file:///tmp/x").unwrap(), "file:///tmp/x");
        assert_eq!(
            UfsUri::parse("s3://b/p").unwrap().join("x/y"),
            "s3://b/p/x/y"
        );
        assert_eq!(UfsUri::parse("s3://b").unwrap().join("x"), "s3://b/x");
    }

    #[test]
    fn rejects_bad_uris() {
        for bad in [
            "",
            "ftp://x/y",
            "s3:///nobucket",
            "file:///../etc",
            "webhdfs:///p",
            "file://host/x",
        ] {
            assert!(UfsUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overlap() {
        assert!(uris_overlap("s3://b/a", "s3://b/a/b"));
        assert!(uris_overlap("file:///data", "/data/x"));
        assert!(!uris_overlap("s3://b/a", "s3://b/ab"));
        assert!(!uris_overlap("s3://b/a", "s3://c/a"));
    }
}
