//! Attributes: mode, owner, times, pins, TTL, replication; and freeing cached data.

use alluvium_common::time::now_ms;
use alluvium_common::{Error, Reason, Result};
use alluvium_proto::{InodeRecord, SetAttributeRequest};

use crate::inode::{self};
use crate::metastore::Op;
use crate::permission::{Access, Checker};

use super::lookup::{lookup, norm};
use super::Namespace;

impl Namespace {
    pub async fn set_attribute(&self, checker: &Checker, req: &SetAttributeRequest) -> Result<()> {
        let p = norm(&req.path)?;
        self.sync_path(&p, false).await?;
        let now = now_ms();
        let mut tx = self.tx();
        let w = lookup(&tx, checker, &p)?;
        let target = w.last().clone();
        let mut all = vec![(p.clone(), target.clone())];
        if req.recursive && target.is_dir {
            for d in tx.descendants(&target)? {
                all.push((format!("{p}/…/{}", d.name), d));
            }
        }
        for (np, n) in &all {
            self.check_attr(checker, np, n, req)?;
        }
        for (_, n) in all {
            let mut r = tx.get(n.id)?.unwrap_or(n);
            let before = r.clone();
            if let Some(m) = req.mode {
                r.mode = m & 0o7777;
            }
            if let Some(o) = &req.owner {
                r.owner = o.clone();
            }
            if let Some(g) = &req.group {
                r.group = g.clone();
            }
            if let Some(pin) = req.pinned {
                if pin != r.pinned {
                    r.pinned = pin;
                    if !r.is_dir {
                        tx.op(if pin { Op::Pin(r.id) } else { Op::Unpin(r.id) });
                        tx.pin_changes.push((r.id, pin));
                    }
                }
                r.pinned_media = req.pinned_media.clone();
            }
            if req.unset_ttl || req.ttl_ms.is_some() {
                if let Some(exp) = inode::ttl_expiry(&before) {
                    tx.op(Op::DeleteTtl {
                        expiry_ms: exp,
                        inode: r.id,
                    });
                }
                r.ttl_ms = if req.unset_ttl { None } else { req.ttl_ms };
                r.ttl_action = req.ttl_action;
                if let Some(exp) = inode::ttl_expiry(&r) {
                    tx.op(Op::PutTtl {
                        expiry_ms: exp,
                        inode: r.id,
                    });
                }
            }
            if r != before {
                r.last_access_time_ms = now;
            }
            if let Some(m) = req.mtime_ms {
                r.last_modification_time_ms = m;
            }
            if let Some(a) = req.atime_ms {
                r.last_access_time_ms = a;
            }
            if r != before {
                tx.put(r);
            }
        }
        self.commit(tx)
    }

    fn check_attr(
        &self,
        checker: &Checker,
        p: &str,
        n: &InodeRecord,
        req: &SetAttributeRequest,
    ) -> Result<()> {
        // As utimes(2) with explicit times: only the owner (or the superuser) may set them.
        if req.mode.is_some() || req.mtime_ms.is_some() || req.atime_ms.is_some() {
            checker.check_owner(n, p)?;
        }
        if let Some(o) = &req.owner {
            if *o != n.owner {
                checker.require_superuser(&format!("{p}: chown"))?;
            }
        }
        if let Some(g) = &req.group {
            if *g != n.group {
                checker.check_chgrp(n, p, g)?;
            }
        }
        if req.pinned.is_some() || req.ttl_ms.is_some() || req.unset_ttl {
            checker.check(n, p, Access::Write)?;
        }
        Ok(())
    }

    pub async fn free(
        &self,
        checker: &Checker,
        p: &str,
        recursive: bool,
        forced: bool,
    ) -> Result<()> {
        let p = norm(p)?;
        let mut tx = self.tx();
        let w = lookup(&tx, checker, &p)?;
        let target = w.last().clone();
        checker.check(&target, &p, Access::Read)?;
        let files: Vec<InodeRecord> = if target.is_dir {
            if target.child_count > 0 && !recursive {
                return Err(Error::failed_precondition(format!(
                    "{p}: directory not empty; free it recursively"
                ))
                .with_reason(Reason::NotEmpty));
            }
            tx.descendants(&target)?
                .into_iter()
                .filter(|r| !r.is_dir)
                .collect()
        } else {
            vec![target]
        };
        for f in &files {
            if !f.completed {
                continue;
            }
            if !inode::is_persisted(f) {
                return Err(Error::failed_precondition(format!(
                    "{p}: cannot free {} (file {}): it is not persisted, its cache is the only copy",
                    f.name, f.id
                )));
            }
            if f.pinned && !forced {
                return Err(Error::failed_precondition(format!(
                    "{p}: {} is pinned; unpin it or free with forced",
                    f.name
                )));
            }
        }
        let mut ids = Vec::new();
        for f in files.into_iter().filter(|f| f.completed) {
            if f.pinned {
                let mut r = f.clone();
                r.pinned = false;
                tx.op(Op::Unpin(r.id));
                tx.pin_changes.push((r.id, false));
                tx.put(r);
            }
            ids.push(f.id);
        }
        self.commit(tx)?;
        self.blocks.free_files(&ids);
        tracing::debug!(path = %p, files = ids.len(), "freed");
        Ok(())
    }
}
