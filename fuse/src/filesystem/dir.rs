//! Listing a directory: the kernel asks by offset, the master answers pages by name; a handle
//! keeps one page and fetches the next (or starts over) as the offsets move.

use alluvium_common::Result;
use fuser::{Errno, FileType, INodeNo, ReplyDirectory};

use super::AlluviumFuse;
use crate::handles::{DirEntry, DirHandle, Handle, Shared};
use crate::inodes::ROOT;

/// Entries asked of the master per directory page.
pub(super) const DIR_PAGE: u32 = 1000;

impl AlluviumFuse {
    /// readdir: fills `reply` from `offset` on. Offsets: 0 = ".", 1 = "..", 2 + i = child i;
    /// each entry carries the offset of the next.
    pub(super) async fn fill_dir(
        &self,
        h: &Shared,
        ino: INodeNo,
        offset: u64,
        reply: &mut ReplyDirectory,
    ) -> std::result::Result<(), Errno> {
        let mut h = h.lock().await;
        let Handle::Dir(d) = &mut *h else {
            return Err(Errno::ENOTDIR);
        };
        let mut next = offset;
        loop {
            let full = match next {
                0 => reply.add(ino, 1, FileType::Directory, "."),
                1 => reply.add(INodeNo(ROOT), 2, FileType::Directory, ".."),
                _ => {
                    let index = next - 2;
                    match self.dir_seek(d, index).await {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) => return Err(self.fail("readdir", &d.path, &e)),
                    }
                    let e = &d.page[(index - d.page_start) as usize];
                    let kind = if e.is_folder {
                        FileType::Directory
                    } else {
                        FileType::RegularFile
                    };
                    let child = self.inodes.peek(ino.0, &e.name, e.file_id);
                    reply.add(INodeNo(child), next + 1, kind, &e.name)
                }
            };
            if full {
                break;
            }
            next += 1;
        }
        Ok(())
    }

    /// Makes sure `page` holds child `index` of the directory; false past the end.
    pub(super) async fn dir_seek(&self, d: &mut DirHandle, index: u64) -> Result<bool> {
        if index < d.page_start {
            d.page_start = 0;
            d.page.clear();
            d.last_page = false;
            self.dir_fetch(d, "").await?;
        }
        if d.page.is_empty() && !d.last_page && d.page_start == 0 {
            self.dir_fetch(d, "").await?;
        }
        while index >= d.page_start + d.page.len() as u64 {
            if d.last_page {
                return Ok(false);
            }
            let after = match d.page.last() {
                Some(e) => e.name.clone(),
                None => return Ok(false),
            };
            d.page_start += d.page.len() as u64;
            self.dir_fetch(d, &after).await?;
        }
        Ok(true)
    }

    pub(super) async fn dir_fetch(&self, d: &mut DirHandle, after: &str) -> Result<()> {
        let fs = self.users.client(d.uid).await?;
        let items = fs.list_page(&d.path, after, DIR_PAGE).await?;
        tracing::debug!(path = %d.path, after, n = items.len(), first = ?items.first().map(|f| &f.name), last = ?items.last().map(|f| &f.name), "fuse: directory page");
        d.last_page = items.len() < DIR_PAGE as usize;
        d.page = items
            .into_iter()
            .map(|f| DirEntry {
                name: f.name,
                is_folder: f.is_folder,
                file_id: f.file_id,
            })
            .collect();
        Ok(())
    }
}
