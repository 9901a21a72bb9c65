//! Reads: status, listing in pages, and the FileInfo of an inode.

use std::sync::Arc;

use alluvium_common::{path, Error, Result};
use alluvium_proto::{FileInfo, InodeRecord, TtlAction, UfsLocation};
use tokio::sync::mpsc;

use crate::inode::{self, ROOT_ID};
use crate::permission::{Access, Checker};

use super::lookup::{lookup, norm};
use super::Namespace;

/// Default and maximum entries per ListStatus page.
pub const DEFAULT_PAGE_SIZE: usize = 1000;
pub const MAX_PAGE_SIZE: usize = 10_000;

impl Namespace {
    pub fn file_info(&self, p: &str, r: &InodeRecord, with_blocks: bool) -> FileInfo {
        let (mount_id, ufs_path, ufs_uri) = match self.mounts.resolve(p) {
            Ok(res) => (
                res.mount.id(),
                res.rel.clone(),
                res.mount.ufs.uri_of(&res.rel),
            ),
            Err(_) => (0, String::new(), String::new()),
        };
        let (mem, any) = self.blocks.percentages(r);
        let persisted = inode::is_persisted(r);
        FileInfo {
            file_id: r.id,
            name: r.name.clone(),
            path: p.to_string(),
            is_folder: r.is_dir,
            length: r.length,
            block_size: r.block_size,
            block_ids: inode::block_ids(r),
            owner: r.owner.clone(),
            group: r.group.clone(),
            mode: r.mode,
            creation_time_ms: r.creation_time_ms,
            last_modification_time_ms: r.last_modification_time_ms,
            last_access_time_ms: r.last_access_time_ms,
            completed: r.completed,
            persisted,
            persistence_state: inode::persistence(r) as i32,
            pinned: r.pinned,
            ttl_ms: r.ttl_ms,
            ttl_action: if r.ttl_ms.is_some() {
                inode::ttl_action(r) as i32
            } else {
                TtlAction::Unspecified as i32
            },
            in_memory_percentage: mem,
            in_alluvium_percentage: any,
            mount_point: r.mount_id != 0,
            mount_id,
            ufs_uri,
            blocks: if with_blocks && !r.is_dir {
                self.blocks.block_infos(r)
            } else {
                Vec::new()
            },
            ufs: Some(UfsLocation { mount_id, ufs_path }),
            child_count: if r.is_dir { r.child_count } else { 0 },
        }
    }

    /// The path of an inode, from its parent chain.
    pub fn path_of(&self, id: u64) -> Result<Option<String>> {
        let mut names = Vec::new();
        let mut cur = id;
        while cur != ROOT_ID {
            let Some(r) = self.store.get_inode(cur)? else {
                return Ok(None);
            };
            names.push(r.name);
            cur = r.parent_id;
            if names.len() > 4096 {
                return Err(Error::internal(format!(
                    "inode {id}: parent chain too deep"
                )));
            }
        }
        names.reverse();
        Ok(Some(format!("/{}", names.join("/"))))
    }

    // ---- reads ----

    pub async fn get_status(
        &self,
        checker: &Checker,
        p: &str,
        with_blocks: bool,
    ) -> Result<FileInfo> {
        let p = norm(p)?;
        self.sync_path(&p, false).await?;
        let w = lookup(&*self.store, checker, &p)?;
        Ok(self.file_info(&p, w.last(), with_blocks))
    }

    /// Lists `p` in pages sent on the returned channel. Errors found before the first page are
    /// returned directly.
    pub async fn list_status(
        self: &Arc<Self>,
        checker: &Checker,
        p: &str,
        recursive: bool,
        start_after: &str,
        limit: u64,
        page_size: u32,
    ) -> Result<mpsc::Receiver<Result<Vec<FileInfo>>>> {
        let p = norm(p)?;
        self.sync_path(&p, false).await?;
        let w = lookup(&*self.store, checker, &p)?;
        let target = w.last().clone();
        let (tx, rx) = mpsc::channel(2);
        if !target.is_dir {
            checker.check(&target, &p, Access::Read)?;
            let info = self.file_info(&p, &target, false);
            let _ = tx.send(Ok(vec![info])).await;
            return Ok(rx);
        }
        checker.check(&target, &p, Access::Read)?;
        self.sync_listing(&p, false).await?;
        let page = match page_size as usize {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let limit = if limit == 0 { u64::MAX } else { limit };
        let ns = self.clone();
        let checker = checker.clone();
        let start_after = (!start_after.is_empty() && !recursive).then(|| start_after.to_string());
        tokio::spawn(async move {
            if let Err(e) = ns
                .list_pages(
                    &checker,
                    p,
                    target.id,
                    recursive,
                    start_after,
                    limit,
                    page,
                    &tx,
                )
                .await
            {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(rx)
    }

    #[allow(clippy::too_many_arguments)]
    async fn list_pages(
        &self,
        checker: &Checker,
        p: String,
        dir_id: u64,
        recursive: bool,
        start_after: Option<String>,
        limit: u64,
        page: usize,
        out: &mpsc::Sender<Result<Vec<FileInfo>>>,
    ) -> Result<()> {
        let mut sent = 0u64;
        let mut queue = std::collections::VecDeque::from([(p, dir_id, start_after)]);
        let mut buf: Vec<FileInfo> = Vec::with_capacity(page);
        let mut first = true;
        while let Some((dir, id, mut after)) = queue.pop_front() {
            if !first {
                // Subdirectories of a recursive listing: check and sync each as it is reached.
                let Some(rec) = self.store.get_inode(id)? else {
                    continue;
                };
                checker.check(&rec, &dir, Access::Read)?;
                checker.check(&rec, &dir, Access::Execute)?;
                self.sync_listing(&dir, false).await?;
            }
            first = false;
            loop {
                let want = page.min((limit - sent) as usize);
                let children = self.store.list_children(id, after.as_deref(), want)?;
                let done = children.len() < want;
                after = children.last().map(|(n, _)| n.clone());
                for (name, cid) in children {
                    let Some(r) = self.store.get_inode(cid)? else {
                        continue;
                    };
                    let cp = path::join(&dir, &name);
                    if recursive && r.is_dir {
                        queue.push_back((cp.clone(), r.id, None));
                    }
                    buf.push(self.file_info(&cp, &r, false));
                    sent += 1;
                    if buf.len() >= page {
                        if out.send(Ok(std::mem::take(&mut buf))).await.is_err() {
                            return Ok(()); // the caller went away
                        }
                        buf.reserve(page);
                    }
                    if sent >= limit {
                        break;
                    }
                }
                if done || sent >= limit {
                    break;
                }
            }
            if sent >= limit {
                break;
            }
        }
        if !buf.is_empty() || sent == 0 {
            let _ = out.send(Ok(buf)).await;
        }
        Ok(())
    }
}
