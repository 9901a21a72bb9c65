//! Deleting files and directories, in Alluvium and in the UFS.

use std::sync::Arc;

use alluvium_common::time::now_ms;
use alluvium_common::{path, Error, Reason, Result};
use alluvium_proto::{InodeRecord, WriteType};
use alluvium_ufs::Ufs;

use crate::inode::{self};
use crate::mount_table::Mount;
use crate::permission::{Access, Checker};
use crate::tx::Tx;

use super::lookup::{lookup, norm};
use super::Namespace;

/// Outcome of a planned delete, checked again under the lock before committing.
struct DeletePlan {
    target: InodeRecord,
    mount: Arc<Mount>,
    rel: String,
}

impl Namespace {
    fn plan_delete(
        &self,
        tx: &Tx<'_>,
        checker: &Checker,
        p: &str,
        recursive: bool,
    ) -> Result<DeletePlan> {
        let w = lookup(tx, checker, p)?;
        let target = w.last().clone();
        let parent = w.parent(p)?;
        if target.mount_id != 0 {
            return Err(Error::failed_precondition(format!(
                "{p}: is a mount point; unmount it first"
            )));
        }
        if let Some(m) = self.mounts.has_mount_below(p) {
            return Err(Error::failed_precondition(format!(
                "{p}: contains the mount point {m}; unmount it first"
            )));
        }
        let res = self.mounts.resolve(p)?;
        res.mount.check_writable(p)?;
        let parent_path = path::parent(p).unwrap_or("/");
        checker.check(parent, parent_path, Access::Write)?;
        if target.is_dir && target.child_count > 0 {
            if !recursive {
                return Err(Error::failed_precondition(format!(
                    "{p}: directory not empty ({} entries; use recursive)",
                    target.child_count
                ))
                .with_reason(Reason::NotEmpty));
            }
            if !checker.superuser {
                // As rm -r: every non-empty directory inside must be writable too.
                checker.check(&target, p, Access::Write)?;
                for d in tx.descendants(&target)? {
                    if d.is_dir && d.child_count > 0 && !checker.allows(&d, Access::Write) {
                        return Err(Error::permission_denied(format!(
                            "{p}: no write permission on directory {} inside it",
                            d.name
                        )));
                    }
                }
            }
        }
        Ok(DeletePlan {
            target,
            mount: res.mount,
            rel: res.rel,
        })
    }

    pub async fn delete(
        &self,
        checker: &Checker,
        p: &str,
        recursive: bool,
        alluvium_only: bool,
    ) -> Result<()> {
        let p = norm(p)?;
        if p == "/" {
            return Err(Error::permission_denied("/: the root cannot be deleted"));
        }
        self.sync_path(&p, false).await?;
        let first = {
            let tx = self.tx();
            self.plan_delete(&tx, checker, &p, recursive)?
        };
        let _detach = self
            .publish_fence
            .begin_detach(|| self.tx(), first.target.id, &p)
            .await?;
        // Planned again now that no publish below runs: one that ended while this delete
        // waited may have persisted the target, whose UFS copy must then go too.
        let plan = {
            let tx = self.tx();
            self.plan_delete(&tx, checker, &p, recursive)?
        };
        if plan.target.id != first.target.id {
            return Err(Error::failed_precondition(format!(
                "{p}: replaced while deleting; try again"
            )));
        }
        let ufs: &Ufs = &plan.mount.ufs;
        if !alluvium_only && inode::is_persisted(&plan.target) {
            if plan.target.is_dir {
                ufs.delete_dir_all(&plan.rel).await?;
            } else {
                ufs.delete_file(&plan.rel).await?;
            }
        } else if !alluvium_only
            && !plan.target.is_dir
            && !plan.target.completed
            && matches!(
                inode::write_type(&plan.target),
                WriteType::Through | WriteType::CacheThrough
            )
        {
            // The UFS path of a THROUGH or CACHE_THROUGH file never completed holds what its own
            // writer put there before CompleteFile failed (the master restarted, the client
            // died). Left there, the next sync would bring the failed write back as complete.
            // (Other write types put nothing there: a previous file may still be there.)
            ufs.delete_file(&plan.rel).await?;
        }
        let now = now_ms();
        let mut tx = self.tx();
        let again = self.plan_delete(&tx, checker, &p, recursive)?;
        if again.target.id != plan.target.id {
            return Err(Error::failed_precondition(format!(
                "{p}: replaced while deleting; try again"
            )));
        }
        tx.delete_tree(&again.target, now)?;
        self.commit(tx)?;
        tracing::debug!(path = %p, recursive, alluvium_only, "deleted");
        Ok(())
    }
}
