//! Creating files and directories, and completing a written file.

use alluvium_common::size::ByteSize;
use alluvium_common::time::now_ms;
use alluvium_common::{ids, path, Error, Reason, Result};
use alluvium_proto::{
    CompleteFileRequest, CreateDirectoryRequest, CreateFileRequest, FileInfo, InodeRecord,
    PersistenceState, WriteType,
};

use crate::inode::{self, DEFAULT_DIR_MODE, DEFAULT_FILE_MODE};
use crate::metastore::Op;
use crate::permission::{Access, Checker};
use crate::tx::Tx;

use super::lookup::{check_traverse, lookup, norm, path_of_nodes, walk};
use super::persist::persist_ancestors;
use super::{Namespace, Walk};

impl Namespace {
    pub async fn create_file(
        &self,
        checker: &Checker,
        req: &CreateFileRequest,
    ) -> Result<FileInfo> {
        let p = norm(&req.path)?;
        if p == "/" {
            return Err(Error::already_exists("/: the root is a directory"));
        }
        path::validate_name(path::name(&p))?;
        self.sync_path(&p, false).await?;
        let res = self.mounts.resolve(&p)?;
        res.mount.check_writable(&p)?;
        res.mount
            .ufs
            .check_fits(&res.rel)
            .map_err(|e| e.context(&p))?;
        let block_size = if req.block_size == 0 {
            self.default_block_size
        } else {
            req.block_size
        };
        if block_size > ids::MAX_BLOCK_SIZE {
            return Err(Error::invalid_argument(format!(
                "{p}: block size {block_size} is larger than the maximum {} ({})",
                ids::MAX_BLOCK_SIZE,
                ByteSize::human(ids::MAX_BLOCK_SIZE)
            )));
        }
        let now = now_ms();
        let mut tx = self.tx();
        let w = walk(&tx, &p)?;
        check_traverse(checker, &w.nodes, &p)?;
        let mut parent = if w.found() {
            let old = w.last().clone();
            if old.is_dir {
                return Err(Error::already_exists(format!("{p}: exists as a directory")));
            }
            if !req.overwrite {
                return Err(Error::already_exists(format!(
                    "{p}: already exists (use overwrite)"
                )));
            }
            let parent = w.parent(&p)?.clone();
            checker.check(&parent, path::parent(&p).unwrap_or("/"), Access::Write)?;
            tx.delete_tree(&old, now)?;
            tx.must(parent.id, &p)?
        } else {
            self.make_parents(&mut tx, checker, &w, &p, req.recursive, now, None)?
        };
        if !parent.is_dir {
            return Err(
                Error::failed_precondition(format!("{p}: parent is not a directory"))
                    .with_reason(Reason::NotADirectory),
            );
        }
        let id = tx.alloc_id();
        if id >= (1u64 << (64 - ids::BLOCK_INDEX_BITS)) {
            return Err(Error::resource_exhausted("inode ids exhausted"));
        }
        let rec = InodeRecord {
            id,
            parent_id: parent.id,
            name: path::name(&p).to_string(),
            is_dir: false,
            length: 0,
            block_size,
            owner: checker.caller.user.clone(),
            group: checker.caller.primary_group().to_string(),
            mode: req.mode.unwrap_or(DEFAULT_FILE_MODE) & 0o7777,
            creation_time_ms: now,
            last_modification_time_ms: now,
            last_access_time_ms: now,
            completed: false,
            persistence_state: PersistenceState::NotPersisted as i32,
            pinned: req.pinned || parent.pinned,
            ttl_ms: req.ttl_ms,
            ttl_action: req.ttl_action,
            write_type: req.write_type,
            ..Default::default()
        };
        parent = tx.must(parent.id, &p)?;
        tx.add_child(parent, rec.clone(), now);
        self.commit(tx)?;
        tracing::debug!(path = %p, file_id = id, user = %checker.caller.user, "file created");
        Ok(self.file_info(&p, &rec, false))
    }

    /// Creates the missing directories of `w` (all but the last missing component) and returns
    /// the parent of the target. Checks `w`+`x` on the deepest existing ancestor.
    #[allow(clippy::too_many_arguments)]
    fn make_parents(
        &self,
        tx: &mut Tx<'_>,
        checker: &Checker,
        w: &Walk,
        p: &str,
        recursive: bool,
        now: i64,
        persisted: Option<bool>,
    ) -> Result<InodeRecord> {
        let base = w.last().clone();
        if !base.is_dir {
            return Err(Error::failed_precondition(format!(
                "{p}: {} is a file, not a directory",
                path_of_nodes(&w.nodes)
            ))
            .with_reason(Reason::NotADirectory));
        }
        let base_path = path_of_nodes(&w.nodes);
        if w.missing.len() > 1 && !recursive {
            return Err(Error::not_found(format!(
                "{p}: parent directory {} does not exist (use recursive)",
                path::parent(p).unwrap_or("/")
            )));
        }
        checker.check(&base, &base_path, Access::Write)?;
        checker.check(&base, &base_path, Access::Execute)?;
        let mut parent = base;
        for name in &w.missing[..w.missing.len() - 1] {
            path::validate_name(name)?;
            let id = tx.alloc_id();
            let mut d = inode::new_dir(
                id,
                parent.id,
                name,
                &checker.caller.user,
                checker.caller.primary_group(),
                DEFAULT_DIR_MODE,
                now,
            );
            d.pinned = parent.pinned;
            if persisted == Some(true) {
                d.persistence_state = PersistenceState::Persisted as i32;
                d.last_sync_ms = now;
            }
            let cur_parent = tx.must(parent.id, p)?;
            tx.add_child(cur_parent, d.clone(), now);
            parent = d;
        }
        tx.must(parent.id, p)
    }

    pub async fn complete_file(
        &self,
        checker: &Checker,
        req: &CompleteFileRequest,
    ) -> Result<FileInfo> {
        let p = norm(&req.path)?;
        let w = lookup(&*self.store, checker, &p)?;
        let rec = w.last().clone();
        self.check_completable(checker, &p, &rec, req)?;
        let res = self.mounts.resolve(&p)?;
        // The fingerprint of the UFS copy, so a later sync does not take it for a change.
        let fingerprint = if req.persisted {
            match res.mount.ufs.stat(&res.rel).await? {
                Some(st) if !st.is_dir => st.fingerprint,
                _ => {
                    return Err(Error::failed_precondition(format!(
                        "{p}: completed as persisted but {} is not in the UFS",
                        res.mount.ufs.uri_of(&res.rel)
                    )))
                }
            }
        } else {
            String::new()
        };
        let now = now_ms();
        let mut tx = self.tx();
        let w = walk(&tx, &p)?;
        if !w.found() || w.last().id != rec.id {
            return Err(Error::not_found(format!(
                "{p}: deleted or replaced while completing"
            )));
        }
        let mut r = w.last().clone();
        self.check_completable(checker, &p, &r, req)?;
        r.length = req.length;
        r.completed = true;
        r.last_modification_time_ms = now;
        if req.persisted {
            r.persistence_state = PersistenceState::Persisted as i32;
            r.ufs_fingerprint = fingerprint;
            r.last_sync_ms = now;
            persist_ancestors(&mut tx, w.ancestors())?;
        } else if req.async_persist {
            r.persistence_state = PersistenceState::ToBePersisted as i32;
            tx.op(Op::PutPersist(r.id));
        }
        tx.put(r.clone());
        self.commit(tx)?;
        tracing::debug!(path = %p, file_id = r.id, length = r.length, persisted = req.persisted, async_persist = req.async_persist, "file completed");
        Ok(self.file_info(&p, &r, false))
    }

    fn check_completable(
        &self,
        checker: &Checker,
        p: &str,
        rec: &InodeRecord,
        req: &CompleteFileRequest,
    ) -> Result<()> {
        if rec.is_dir {
            return Err(Error::failed_precondition(format!("{p}: is a directory"))
                .with_reason(Reason::IsADirectory));
        }
        if req.file_id != 0 && req.file_id != rec.id {
            return Err(Error::not_found(format!(
                "{p}: file id {} was replaced (now {})",
                req.file_id, rec.id
            )));
        }
        if rec.completed {
            return Err(Error::failed_precondition(format!("{p}: already complete")));
        }
        if ids::block_count(req.length, rec.block_size.max(1)) > ids::MAX_BLOCKS_PER_FILE {
            return Err(Error::invalid_argument(format!(
                "{p}: length {} needs more than {} blocks of {} bytes",
                req.length,
                ids::MAX_BLOCKS_PER_FILE,
                rec.block_size
            )));
        }
        checker.check(rec, p, Access::Write)?;
        let wt = inode::write_type(rec);
        let through = wt == WriteType::Through || (wt == WriteType::Unspecified && req.persisted);
        if !through {
            let bs = rec.block_size.max(1);
            for i in 0..ids::block_count(req.length, bs) {
                let b = ids::block_id(rec.id, i);
                let want = ids::block_length(req.length, bs, i);
                match self.blocks.committed_length(b) {
                    None => {
                        return Err(Error::failed_precondition(format!(
                            "{p}: block {b} (index {i}) was not committed by any worker; cannot complete with length {}",
                            req.length
                        )).with_reason(Reason::DataMissing))
                    }
                    Some(Some(len)) if len != want => {
                        return Err(Error::failed_precondition(format!(
                            "{p}: block {b} (index {i}) has {len} bytes, expected {want} for length {}",
                            req.length
                        )))
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }

    pub async fn create_directory(
        &self,
        checker: &Checker,
        req: &CreateDirectoryRequest,
    ) -> Result<FileInfo> {
        let p = norm(&req.path)?;
        if p != "/" {
            path::validate_name(path::name(&p))?;
        }
        self.sync_path(&p, false).await?;
        let res = self.mounts.resolve(&p)?;
        res.mount
            .ufs
            .check_fits(&res.rel)
            .map_err(|e| e.context(&p))?;
        let persist = WriteType::try_from(req.write_type).unwrap_or(WriteType::Unspecified)
            != WriteType::MustCache;
        // Check first (no I/O under the lock), then create in the UFS, then commit.
        {
            let mut tx = self.tx();
            let w = walk(&tx, &p)?;
            check_traverse(checker, &w.nodes, &p)?;
            if w.found() {
                return self.existing_dir(&p, w.last(), req.allow_exists);
            }
            res.mount.check_writable(&p)?;
            self.make_parents(&mut tx, checker, &w, &p, req.recursive, now_ms(), None)?;
            // Dropped without commit: nothing changed.
        }
        if persist {
            res.mount.ufs.create_dir(&res.rel).await?;
        }
        let now = now_ms();
        let mut tx = self.tx();
        let w = walk(&tx, &p)?;
        if w.found() {
            return self.existing_dir(&p, w.last(), req.allow_exists);
        }
        let parent =
            self.make_parents(&mut tx, checker, &w, &p, req.recursive, now, Some(persist))?;
        let id = tx.alloc_id();
        let mut d = inode::new_dir(
            id,
            parent.id,
            path::name(&p),
            &checker.caller.user,
            checker.caller.primary_group(),
            req.mode.unwrap_or(DEFAULT_DIR_MODE),
            now,
        );
        d.pinned = parent.pinned;
        if persist {
            d.persistence_state = PersistenceState::Persisted as i32;
            d.last_sync_ms = now;
            persist_ancestors(&mut tx, &w.nodes)?;
        }
        let parent = tx.must(parent.id, &p)?;
        tx.add_child(parent, d.clone(), now);
        self.commit(tx)?;
        Ok(self.file_info(&p, &d, false))
    }

    fn existing_dir(&self, p: &str, r: &InodeRecord, allow_exists: bool) -> Result<FileInfo> {
        if r.is_dir && allow_exists {
            return Ok(self.file_info(p, r, false));
        }
        Err(Error::already_exists(format!(
            "{p}: already exists{}",
            if r.is_dir { "" } else { " as a file" }
        )))
    }
}
