//! setattr: mode, owner, group and times go to the master; a size change is possible only as
//! "no change" or a truncate to 0 (files are write-once).

use alluvium_common::{Error, Reason, Result};
use alluvium_proto::FileInfo;

use super::AlluviumFuse;
use crate::handles::{Handle, Shared};
use crate::users::{group_name, user_name};
use alluvium_client::FileSystem;
use alluvium_client::SetAttributeOptions;

/// What a setattr asks to change.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct AttrChanges {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime_ms: Option<i64>,
    pub mtime_ms: Option<i64>,
}

impl AttrChanges {
    /// Whether anything changes at all.
    pub fn any(&self) -> bool {
        self.size.is_some() || self.of_inode()
    }

    /// Whether an attribute the master keeps (not the size) changes.
    fn of_inode(&self) -> bool {
        self.mode.is_some()
            || self.uid.is_some()
            || self.gid.is_some()
            || self.atime_ms.is_some()
            || self.mtime_ms.is_some()
    }
}

impl AlluviumFuse {
    /// Applies `c` to `path` (inode `ino`) for process `pid`; `writer` is the handle the call
    /// came through, if any (ftruncate). Returns the new status.
    pub(super) async fn set_attr(
        &self,
        fs: &FileSystem,
        path: &str,
        ino: u64,
        pid: u32,
        writer: Option<Shared>,
        c: AttrChanges,
    ) -> Result<FileInfo> {
        if c.of_inode() {
            let opts = SetAttributeOptions {
                mode: c.mode.map(|m| m & 0o7777),
                owner: c.uid.map(user_name),
                group: c.gid.map(group_name),
                mtime_ms: c.mtime_ms,
                atime_ms: c.atime_ms,
                ..Default::default()
            };
            fs.set_attribute(path, opts).await?;
        }
        if let Some(size) = c.size {
            if !self
                .resize_through(writer, fs, path, ino, pid, size)
                .await?
            {
                let info = fs.get_attributes(path).await?;
                if info.is_folder {
                    return Err(Error::invalid_argument(format!("{path}: is a directory"))
                        .with_reason(Reason::IsADirectory));
                }
                if size == 0 && info.length > 0 {
                    self.replace_with_empty(fs, path, info.mode)
                        .await?
                        .close()
                        .await?;
                    self.inodes.invalidate_cache(ino);
                } else if size != info.length && !(size == 0 && info.length == 0) {
                    return Err(Error::unimplemented(format!(
                        "{path}: cannot truncate to {size} bytes (only to 0: Alluvium files are \
                         write-once)"
                    )));
                }
            }
        }
        fs.get_attributes(path).await
    }

    /// A size change through an open handle: "no change" of a file being written, or
    /// ftruncate(fd, 0) of an existing file, which is replaced by a new, empty one that the
    /// handle then writes. False when the handle cannot do it (the caller tries by path).
    async fn resize_through(
        &self,
        writer: Option<Shared>,
        fs: &FileSystem,
        path: &str,
        ino: u64,
        pid: u32,
        size: u64,
    ) -> Result<bool> {
        let Some(h) = writer else {
            return Ok(false);
        };
        let mut h = h.lock().await;
        match &mut *h {
            Handle::Write(w) => {
                if size != w.written() {
                    return Err(Error::unimplemented(format!(
                        "{path}: cannot resize a file being written to {size} bytes (files are \
                         written once, sequentially)"
                    )));
                }
                Ok(true)
            }
            Handle::Existing(x) if size == 0 => {
                let out = self.replace_with_empty(fs, path, x.mode).await?;
                *h = self.write_handle(path, ino, out, pid);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
