//! open(2) of an existing file: a reader, a new empty file to write (O_TRUNC, or the file is
//! empty), or a write-only handle that can only be truncated.

use alluvium_common::{Error, Reason, Result};
use fuser::{FopenFlags, OpenAccMode, OpenFlags};

use super::AlluviumFuse;
use crate::handles::{ExistingHandle, Handle, ReadHandle};
use alluvium_client::FileSystem;

impl AlluviumFuse {
    /// Opens `path` (inode `ino`) with `flags` for user `uid`, process `pid`; returns the new
    /// handle and the flags for the kernel.
    pub(super) async fn open_handle(
        &self,
        fs: &FileSystem,
        path: &str,
        ino: u64,
        uid: u32,
        pid: u32,
        flags: OpenFlags,
    ) -> Result<(u64, FopenFlags)> {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            let info = fs.get_attributes(path).await?;
            if info.is_folder {
                return Err(Error::invalid_argument(format!("{path}: is a directory"))
                    .with_reason(Reason::IsADirectory));
            }
            let truncate = flags.0 & libc::O_TRUNC != 0;
            if truncate || info.length == 0 {
                let out = self.replace_with_empty(fs, path, info.mode).await?;
                let h = self.write_handle(path, ino, out, pid);
                return Ok((self.handles.insert(h), FopenFlags::empty()));
            }
            if flags.0 & libc::O_APPEND != 0 {
                return Err(Error::unimplemented(format!(
                    "{path}: cannot append to an existing file (Alluvium files are write-once; \
                     open with O_TRUNC to replace it)"
                )));
            }
            if flags.acc_mode() == OpenAccMode::O_WRONLY {
                let h = Handle::Existing(ExistingHandle {
                    path: path.to_string(),
                    mode: info.mode & 0o7777,
                });
                return Ok((self.handles.insert(h), FopenFlags::empty()));
            }
            // O_RDWR without O_TRUNC: reads work, writes will be refused.
        }
        let stream = self.open_reader(fs, ino, path).await?;
        let info = stream.info();
        let key = (info.file_id, info.length, info.last_modification_time_ms);
        let mut fopen = FopenFlags::empty();
        if self.opts.direct_io {
            fopen |= FopenFlags::FOPEN_DIRECT_IO;
        } else if self.opts.kernel_cache && self.inodes.open_keeps_cache(ino, key) {
            fopen |= FopenFlags::FOPEN_KEEP_CACHE;
        }
        let h = Handle::Read(ReadHandle {
            path: path.to_string(),
            uid,
            stream,
            next: 0,
            random: Vec::new(),
        });
        Ok((self.handles.insert(h), fopen))
    }
}
