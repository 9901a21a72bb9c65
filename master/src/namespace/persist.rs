//! Persisting files: scheduling, the worker's persist command, and publishing its staged copy.

use alluvium_common::time::now_ms;
use alluvium_common::{Error, Reason, Result};
use alluvium_proto::{InodeRecord, PersistCommand, PersistenceState, UfsLocation};
use alluvium_ufs::persist_staging_path;

use crate::inode::{self};
use crate::metastore::Op;
use crate::permission::{Access, Checker};
use crate::publish_fence::NotNow;
use crate::tx::Tx;

use super::lookup::{lookup, norm, walk};
use super::{Namespace, Publish};

/// Marks every directory among `nodes` persisted (its UFS copy now has children).
pub(super) fn persist_ancestors(tx: &mut Tx<'_>, nodes: &[InodeRecord]) -> Result<()> {
    for n in nodes {
        let cur = tx.get(n.id)?.unwrap_or_else(|| n.clone());
        if cur.is_dir && !inode::is_persisted(&cur) {
            let mut c = cur;
            c.persistence_state = PersistenceState::Persisted as i32;
            tx.put(c);
        }
    }
    Ok(())
}

impl Namespace {
    pub async fn schedule_async_persistence(&self, checker: &Checker, p: &str) -> Result<()> {
        let p = norm(p)?;
        self.sync_path(&p, false).await?;
        let res = self.mounts.resolve(&p)?;
        res.mount.check_writable(&p)?;
        let mut tx = self.tx();
        let w = lookup(&tx, checker, &p)?;
        let mut r = w.last().clone();
        if r.is_dir {
            return Err(
                Error::invalid_argument(format!("{p}: is a directory; persist files"))
                    .with_reason(Reason::IsADirectory),
            );
        }
        if !r.completed {
            return Err(
                Error::failed_precondition(format!("{p}: is not complete yet"))
                    .with_reason(Reason::Busy),
            );
        }
        checker.check(&r, &p, Access::Write)?;
        if inode::persistence(&r) != PersistenceState::NotPersisted {
            return Ok(());
        }
        r.persistence_state = PersistenceState::ToBePersisted as i32;
        tx.op(Op::PutPersist(r.id));
        tx.put(r);
        self.commit(tx)
    }

    /// The persist command for a file waiting in the persist queue; `None` (and the queue entry
    /// dropped) when the file is gone or no longer waiting.
    pub fn persist_command(&self, id: u64) -> Result<Option<PersistCommand>> {
        let rec = self.store.get_inode(id)?;
        let path = match &rec {
            Some(r) if !r.is_dir && inode::persistence(r) == PersistenceState::ToBePersisted => {
                self.path_of(id)?
            }
            _ => None,
        };
        let (Some(r), Some(p)) = (rec, path) else {
            let mut tx = self.tx();
            tx.op(Op::DeletePersist(id));
            self.commit(tx)?;
            return Ok(None);
        };
        let res = self.mounts.resolve(&p)?;
        Ok(Some(PersistCommand {
            file_id: id,
            path: p,
            // Staged, published by `publish_persisted` only if the file is still there.
            ufs: Some(UfsLocation {
                mount_id: res.mount.id(),
                ufs_path: persist_staging_path(id),
            }),
            length: r.length,
            blocks: self.blocks.block_infos(&r),
        }))
    }

    /// Publishes the copy of file `id` a worker staged at `staged` (its persist command's
    /// location): renames it to the file's UFS path and marks the file PERSISTED, if the file
    /// still waits to be persisted; otherwise removes the staged copy, so a file deleted while
    /// it was being persisted never comes back.
    pub async fn publish_persisted(
        &self,
        id: u64,
        staged: Option<&UfsLocation>,
    ) -> Result<Publish> {
        let staged_rel = persist_staging_path(id);
        // No await while the transaction (the mutation lock) is held.
        let begun = {
            let tx = self.tx();
            let rec = tx.get(id)?;
            let waiting = rec
                .as_ref()
                .filter(|r| !r.is_dir && inode::persistence(r) == PersistenceState::ToBePersisted);
            let p = match waiting {
                Some(_) => self.path_of(id)?,
                None => None,
            };
            match (waiting, p) {
                (Some(rec), Some(p)) => match self.publish_fence.begin_publish(&tx, rec)? {
                    Ok(guard) => Ok((self.mounts.resolve(&p)?, p, guard)),
                    Err(why) => Err(Some(why)),
                },
                _ => Err(None),
            }
        };
        let (res, p, _guard) = match begun {
            Ok(begun) => begun,
            // The file went, or no longer waits to be persisted.
            Err(None) => {
                self.discard_staged(id, staged).await;
                return Ok(Publish::Discarded);
            }
            // A delete or rename above is in progress: the file will likely go, and a retry
            // copies it again, so this copy would only stay behind.
            Err(Some(NotNow::Detaching)) => {
                self.discard_staged(id, staged).await;
                return Ok(Publish::Deferred);
            }
            // The other publish takes care of the staged copy (both copies are the same file).
            Err(Some(NotNow::AlreadyPublishing)) => return Ok(Publish::Deferred),
        };
        if staged.is_some_and(|s| s.mount_id != res.mount.id()) {
            // Staged in a mount the file is no longer in (remounted meanwhile): copy again.
            self.discard_staged(id, staged).await;
            return Ok(Publish::Deferred);
        }
        let ufs = &res.mount.ufs;
        ufs.rename(&staged_rel, &res.rel, false).await?;
        let fingerprint = ufs
            .stat(&res.rel)
            .await?
            .map(|s| s.fingerprint)
            .unwrap_or_default();
        let now = now_ms();
        let mut tx = self.tx();
        let w = walk(&tx, &p)?;
        if !w.found() || w.last().id != id {
            // Deletes and renames wait for the fence, so only an unmount (the UFS keeps the
            // copy, as it keeps everything else of an unmounted mount) or a create that
            // overwrote the file (not fenced yet: issue 17) gets here.
            return Ok(Publish::Discarded);
        }
        let mut r = w.last().clone();
        r.persistence_state = PersistenceState::Persisted as i32;
        r.ufs_fingerprint = fingerprint;
        r.last_sync_ms = now;
        tx.op(Op::DeletePersist(id));
        persist_ancestors(&mut tx, w.ancestors())?;
        tx.put(r);
        self.commit(tx)?;
        Ok(Publish::Published)
    }

    /// Removes a staged copy that will not be published (best effort: it is hidden from
    /// listings either way, and a later persist of the same file overwrites it).
    async fn discard_staged(&self, id: u64, staged: Option<&UfsLocation>) {
        let Some(staged) = staged else { return };
        let rel = persist_staging_path(id);
        if staged.ufs_path != rel {
            tracing::warn!(file_id = id, staged = %staged.ufs_path, "persist: a worker reports a staged copy outside the staging directory; left alone");
            return;
        }
        let Some(mount) = self.mounts.get(staged.mount_id) else {
            return;
        };
        if let Err(e) = mount.ufs.delete_file(&rel).await {
            tracing::warn!(file_id = id, error = %e, "persist: cannot remove a staged copy");
        }
    }
}
