//! Renaming files and directories, in Alluvium and in the UFS.

use alluvium_common::time::now_ms;
use alluvium_common::{path, Error, Reason, Result};
use alluvium_proto::InodeRecord;

use crate::inode::{self};
use crate::permission::{Access, Checker};
use crate::tx::Tx;

use super::lookup::{check_traverse, lookup, norm, walk};
use super::persist::persist_ancestors;
use super::Namespace;

impl Namespace {
    fn plan_rename(
        &self,
        tx: &Tx<'_>,
        checker: &Checker,
        src: &str,
        dst: &str,
    ) -> Result<(InodeRecord, InodeRecord)> {
        let w = lookup(tx, checker, src)?;
        let s = w.last().clone();
        if s.mount_id != 0 {
            return Err(Error::failed_precondition(format!(
                "{src}: is a mount point; unmount and mount again elsewhere"
            )));
        }
        if let Some(m) = self.mounts.has_mount_below(src) {
            return Err(Error::failed_precondition(format!(
                "{src}: contains the mount point {m}; cannot rename it"
            )));
        }
        checker.check(
            w.parent(src)?,
            path::parent(src).unwrap_or("/"),
            Access::Write,
        )?;
        let w = walk(tx, dst)?;
        check_traverse(checker, &w.nodes, dst)?;
        if w.found() {
            return Err(Error::already_exists(format!("{dst}: already exists")));
        }
        if w.missing.len() > 1 {
            return Err(Error::not_found(format!(
                "{dst}: parent directory {} does not exist",
                path::parent(dst).unwrap_or("/")
            )));
        }
        let dp = w.last().clone();
        if !dp.is_dir {
            return Err(
                Error::failed_precondition(format!("{dst}: parent is not a directory"))
                    .with_reason(Reason::NotADirectory),
            );
        }
        checker.check(&dp, path::parent(dst).unwrap_or("/"), Access::Write)?;
        Ok((s, dp))
    }

    pub async fn rename(&self, checker: &Checker, src: &str, dst: &str) -> Result<()> {
        let src = norm(src)?;
        let dst = norm(dst)?;
        if src == "/" || dst == "/" {
            return Err(Error::invalid_argument(
                "the root cannot be renamed or replaced",
            ));
        }
        path::validate_name(path::name(&dst))?;
        if src == dst {
            return Ok(());
        }
        if path::is_ancestor_or_self(&src, &dst) {
            return Err(Error::invalid_argument(format!(
                "cannot rename {src} into itself ({dst})"
            )));
        }
        if self.mounts.at_path(&src).is_some() {
            return Err(Error::failed_precondition(format!(
                "{src}: is a mount point; unmount and mount again elsewhere"
            )));
        }
        self.sync_path(&src, false).await?;
        self.sync_path(&dst, false).await?;
        let rs = self.mounts.resolve(&src)?;
        let rd = self.mounts.resolve(&dst)?;
        if rs.mount.id() != rd.mount.id() {
            return Err(Error::invalid_argument(format!(
                "cannot rename {src} to {dst}: they are in different mounts ({} and {})",
                rs.mount.path(),
                rd.mount.path()
            )));
        }
        rs.mount.check_writable(&src)?;
        rd.mount
            .ufs
            .check_fits(&rd.rel)
            .map_err(|e| e.context(&dst))?;
        let (first, _) = {
            let tx = self.tx();
            self.plan_rename(&tx, checker, &src, &dst)?
        };
        let _detach = self
            .publish_fence
            .begin_detach(|| self.tx(), first.id, &src)
            .await?;
        // Planned again now that no publish below runs (one that ended meanwhile may have
        // persisted the source, which then moves in the UFS too).
        let (s, _) = {
            let tx = self.tx();
            self.plan_rename(&tx, checker, &src, &dst)?
        };
        if s.id != first.id {
            return Err(Error::failed_precondition(format!(
                "{src}: replaced while renaming; try again"
            )));
        }
        if inode::is_persisted(&s) {
            rs.mount.ufs.rename(&rs.rel, &rd.rel, s.is_dir).await?;
        }
        let now = now_ms();
        let mut tx = self.tx();
        let (s2, dp) = self.plan_rename(&tx, checker, &src, &dst)?;
        if s2.id != s.id {
            return Err(Error::failed_precondition(format!(
                "{src}: replaced while renaming; try again"
            )));
        }
        tx.unlink(&s2, now)?;
        let mut moved = s2.clone();
        moved.last_modification_time_ms = now;
        tx.relink(moved, dp.id, path::name(&dst), now)?;
        if inode::is_persisted(&s2) {
            let w = walk(&tx, &dst)?;
            persist_ancestors(&mut tx, w.ancestors())?;
        }
        self.commit(tx)?;
        tracing::debug!(src = %src, dst = %dst, "renamed");
        Ok(())
    }
}
