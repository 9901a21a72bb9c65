//! What only a local-directory UFS (`file://`) needs: its root must exist before it is mounted,
//! its directories are renamed with one `rename(2)`, and its capacity is its file system's.
//! Nothing outside this crate matches on schemes.

use std::collections::BTreeMap;

use alluvium_common::{Error, Result};

use crate::uri::{Scheme, UfsUri};
use crate::Ufs;

impl Ufs {
    /// Opens a UFS whose root must already exist: a local root that is missing or not a
    /// directory is refused, where [`Ufs::open`] would create it (opendal's fs service creates
    /// its root), so a typo in a mount would become an empty mount.
    pub async fn open_existing(uri: &str, options: &BTreeMap<String, String>) -> Result<Self> {
        let parsed = UfsUri::parse(uri)?;
        if parsed.scheme == Scheme::File {
            match tokio::fs::metadata(&parsed.path).await {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(Error::invalid_argument(format!(
                        "{parsed} is not a directory"
                    )))
                }
                Err(_) => {
                    return Err(Error::not_found(format!(
                        "UFS directory {parsed} does not exist"
                    )))
                }
            }
        }
        Self::open(uri, options)
    }

    /// Creates a missing local root directory (a new namespace on `file://`); other stores have
    /// nothing to create. Blocking: for startup, before anything is served.
    pub fn create_root(&self) -> Result<()> {
        let Some(root) = self.local_root() else {
            return Ok(());
        };
        std::fs::create_dir_all(root)
            .map_err(|e| Error::from(e).context(format!("cannot create root UFS directory {root}")))
    }

    /// (capacity, available) bytes of the file system holding a local root, from statvfs(3);
    /// None for other stores or when the root cannot be read.
    pub fn local_capacity(&self) -> Option<(u64, u64)> {
        let path = std::ffi::CString::new(self.local_root()?).ok()?;
        let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
        // SAFETY: `path` is a valid NUL-terminated string and `st` is writable memory of the
        // right type; statvfs only writes into it.
        let rc = unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) };
        if rc != 0 {
            return None;
        }
        // SAFETY: statvfs returned 0, so it filled the struct.
        let st = unsafe { st.assume_init() };
        // The field types differ between platforms (32 or 64 bits).
        #[allow(clippy::unnecessary_cast)]
        let (frsize, blocks, avail) = (st.f_frsize as u64, st.f_blocks as u64, st.f_bavail as u64);
        Some((blocks * frsize, avail * frsize))
    }

    /// Renames a directory of a local root with one `rename(2)`: opendal refuses directory
    /// renames at the operator level.
    pub(crate) async fn rename_local_dir(&self, from: &str, to: &str) -> Result<()> {
        let root = std::path::Path::new(self.local_root().expect("a local root"));
        let (src, dst) = (root.join(from), root.join(to));
        if let Some(parent) = dst.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| {
                Error::from(e).context(format!("{}: cannot create parent", self.uri_of(to)))
            })?;
        }
        tokio::fs::rename(&src, &dst).await.map_err(|e| {
            Error::from(e).context(format!(
                "cannot rename {} to {}",
                self.uri_of(from),
                self.uri_of(to)
            ))
        })
    }

    /// The root directory of a `file://` store.
    fn local_root(&self) -> Option<&str> {
        (self.scheme() == Scheme::File).then_some(self.uri.path.as_str())
    }
}
