//! UFS metadata sync: the namespace learns what appeared, changed or vanished in a mount's UFS,
//! with bounded staleness (a mount's `sync_interval`, default `master.sync_interval`).
//!
//! - An unknown path under a mount is looked up in the UFS and loaded (with missing parents).
//! - A known persisted inode checked longer ago than the interval is stat'ed again: gone →
//!   removed, changed fingerprint → replaced by a new inode (so stale cached blocks, whose ids
//!   derive from the old file id, can never be read as the new content).
//! - A directory listed longer ago than the interval is listed again: new entries are added,
//!   persisted entries gone from the UFS removed, changed files replaced.
//! - Files that exist only in Alluvium (not persisted) are never removed by a sync; a vanished
//!   directory that still holds such files is kept and marked not persisted.
//!
//! All UFS I/O happens before the mutation lock is taken; the changes are then re-validated and
//! committed under the lock in bounded batches. A failing UFS is logged and the namespace served
//! as it is: metadata sync never makes the master unavailable.

use std::time::Duration;

use alluvium_common::time::now_ms;
use alluvium_common::{path, Result};
use alluvium_proto::{InodeRecord, LoadMetadataResponse, PersistenceState};
use alluvium_ufs::UfsStatus;

use super::{is_not_found, walk, Namespace};
use crate::inode::{self, DEFAULT_DIR_MODE, DEFAULT_FILE_MODE};
use crate::permission::{Access, Checker};
use crate::tx::Tx;

/// Changes applied per transaction while syncing a large directory.
const SYNC_BATCH: usize = 512;

fn stale(last_sync_ms: i64, interval: Duration, now: i64) -> bool {
    interval.is_zero() || now.saturating_sub(last_sync_ms) >= interval.as_millis() as i64
}

/// Counts of a sync.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncStats {
    pub loaded: u64,
    pub updated: u64,
    pub removed: u64,
}

impl SyncStats {
    fn add(&mut self, o: SyncStats) {
        self.loaded += o.loaded;
        self.updated += o.updated;
        self.removed += o.removed;
    }
}

enum Change {
    Load(UfsStatus),
    Replace(u64, UfsStatus),
    Remove(u64),
    Adopt(u64, String),
    MarkPersisted(u64),
}

impl Namespace {
    fn record_from_ufs(
        &self,
        tx: &mut Tx<'_>,
        parent: &InodeRecord,
        st: &UfsStatus,
        now: i64,
    ) -> InodeRecord {
        let id = tx.alloc_id();
        let mut r = if st.is_dir {
            inode::new_dir(
                id,
                parent.id,
                &st.name,
                &parent.owner,
                &parent.group,
                DEFAULT_DIR_MODE,
                now,
            )
        } else {
            InodeRecord {
                id,
                parent_id: parent.id,
                name: st.name.clone(),
                length: st.length,
                // Block ids hold at most 2^24 indexes: huge files get bigger blocks.
                block_size: self.default_block_size.max(
                    st.length
                        .div_ceil(alluvium_common::ids::MAX_BLOCKS_PER_FILE),
                ),
                owner: parent.owner.clone(),
                group: parent.group.clone(),
                mode: DEFAULT_FILE_MODE,
                creation_time_ms: if st.mtime_ms > 0 { st.mtime_ms } else { now },
                last_modification_time_ms: if st.mtime_ms > 0 { st.mtime_ms } else { now },
                last_access_time_ms: now,
                completed: true,
                ufs_fingerprint: st.fingerprint.clone(),
                last_sync_ms: now,
                ..Default::default()
            }
        };
        r.persistence_state = PersistenceState::Persisted as i32;
        r
    }

    /// Removes what the UFS no longer has below (and including) `r`: persisted files and
    /// directories left empty. Returns whether `r` itself was removed.
    fn prune(
        &self,
        tx: &mut Tx<'_>,
        r: &InodeRecord,
        now: i64,
        stats: &mut SyncStats,
    ) -> Result<bool> {
        if r.mount_id != 0 {
            return Ok(false);
        }
        if !r.is_dir {
            if !inode::is_persisted(r) {
                return Ok(false);
            }
            tx.unlink(r, now)?;
            tx.delete_one(r);
            stats.removed += 1;
            return Ok(true);
        }
        let mut kept = false;
        for (_, id) in tx.children(r.id)? {
            if let Some(c) = tx.get(id)? {
                if !self.prune(tx, &c, now, stats)? {
                    kept = true;
                }
            }
        }
        if kept {
            let mut d = tx.get(r.id)?.unwrap_or_else(|| r.clone());
            d.persistence_state = PersistenceState::NotPersisted as i32;
            tx.put(d);
            return Ok(false);
        }
        tx.unlink(r, now)?;
        tx.delete_one(r);
        stats.removed += 1;
        Ok(true)
    }

    /// Brings `p` up to date with its UFS: loads it when unknown, re-checks it when stale
    /// (always when `force`).
    pub(crate) async fn sync_path(&self, p: &str, force: bool) -> Result<SyncStats> {
        let w = walk(&*self.store, p)?;
        let res = self.mounts.resolve(p)?;
        let now = now_ms();
        if w.found() {
            let r = w.last();
            if r.mount_id != 0
                || !inode::is_persisted(r)
                || (!r.is_dir && !r.completed)
                || (!force && !stale(r.last_sync_ms, res.mount.sync_interval, now))
            {
                return Ok(SyncStats::default());
            }
            let st = match res.mount.ufs.stat(&res.rel).await {
                Ok(st) => st,
                Err(e) => {
                    tracing::warn!(path = %p, error = %e, "metadata sync: UFS stat failed; serving cached metadata");
                    return Ok(SyncStats::default());
                }
            };
            return self.reconcile(p, r.id, st, res.mount.sync_interval);
        }
        let base = w.last();
        if !base.is_dir {
            return Ok(SyncStats::default());
        }
        // The parent's listing is fresh (or the parent exists only in Alluvium): the namespace
        // already knows every UFS child, so a new name needs no UFS round trip (file creation).
        if w.missing.len() == 1
            && !force
            && (!inode::is_persisted(base)
                || !stale(base.last_sync_ms, res.mount.sync_interval, now))
        {
            return Ok(SyncStats::default());
        }
        let st = match res.mount.ufs.stat(&res.rel).await {
            Ok(Some(st)) => st,
            Ok(None) => return Ok(SyncStats::default()),
            Err(e) => {
                if !is_not_found(&e) {
                    tracing::warn!(path = %p, error = %e, "metadata sync: UFS stat failed");
                }
                return Ok(SyncStats::default());
            }
        };
        // Load the missing components: every one but the last is a directory in the UFS.
        let mut stats = SyncStats::default();
        let mut tx = self.tx();
        let w = walk(&tx, p)?;
        if w.found() || !w.last().is_dir {
            return Ok(stats);
        }
        let mut parent = w.last().clone();
        let n = w.missing.len();
        for (i, name) in w.missing.iter().enumerate() {
            if path::validate_name(name).is_err() {
                return Ok(SyncStats::default());
            }
            let s = if i + 1 == n {
                UfsStatus {
                    name: name.clone(),
                    ..st.clone()
                }
            } else {
                UfsStatus {
                    name: name.clone(),
                    rel_path: String::new(),
                    is_dir: true,
                    length: 0,
                    mtime_ms: 0,
                    fingerprint: String::new(),
                }
            };
            let rec = self.record_from_ufs(&mut tx, &parent, &s, now);
            let cur = tx.must(parent.id, p)?;
            tx.add_child(cur, rec.clone(), now);
            stats.loaded += 1;
            parent = rec;
        }
        self.commit(tx)?;
        self.metrics.ufs_sync_loaded.inc_by(stats.loaded);
        tracing::debug!(path = %p, loaded = stats.loaded, "metadata sync: loaded from UFS");
        Ok(stats)
    }

    /// Applies a fresh UFS status of the known inode `id` at `p`.
    fn reconcile(
        &self,
        p: &str,
        id: u64,
        st: Option<UfsStatus>,
        interval: Duration,
    ) -> Result<SyncStats> {
        let now = now_ms();
        let mut stats = SyncStats::default();
        let mut tx = self.tx();
        let w = walk(&tx, p)?;
        if !w.found() || w.last().id != id {
            return Ok(stats);
        }
        let r = w.last().clone();
        if !inode::is_persisted(&r) {
            return Ok(stats);
        }
        match st {
            None => {
                self.prune(&mut tx, &r, now, &mut stats)?;
            }
            Some(st) if st.is_dir != r.is_dir => {
                let parent = w.parent(p)?.clone();
                if self.prune(&mut tx, &r, now, &mut stats)? {
                    let st = UfsStatus {
                        name: r.name.clone(),
                        ..st
                    };
                    let rec = self.record_from_ufs(&mut tx, &parent, &st, now);
                    let cur = tx.must(parent.id, p)?;
                    tx.add_child(cur, rec, now);
                    stats.updated += 1;
                }
            }
            Some(st) if !r.is_dir => {
                if r.ufs_fingerprint.is_empty() && st.length == r.length {
                    let mut r2 = r.clone();
                    r2.ufs_fingerprint = st.fingerprint;
                    r2.last_sync_ms = now;
                    tx.put(r2);
                } else if r.ufs_fingerprint != st.fingerprint {
                    let parent = w.parent(p)?.clone();
                    self.replace_file(&mut tx, &parent, &r, &st, now)?;
                    stats.updated += 1;
                } else if !interval.is_zero() {
                    let mut r2 = r.clone();
                    r2.last_sync_ms = now;
                    tx.put(r2);
                }
            }
            // A directory that still exists: its listing decides the rest.
            Some(_) => {}
        }
        self.commit(tx)?;
        self.count(stats);
        Ok(stats)
    }

    /// Replaces file `old` by a new inode describing the changed UFS file (keeping its
    /// attributes); the old file's cached blocks are dropped.
    fn replace_file(
        &self,
        tx: &mut Tx<'_>,
        parent: &InodeRecord,
        old: &InodeRecord,
        st: &UfsStatus,
        now: i64,
    ) -> Result<()> {
        tx.unlink(old, now)?;
        tx.delete_one(old);
        let st = UfsStatus {
            name: old.name.clone(),
            ..st.clone()
        };
        let mut rec = self.record_from_ufs(tx, parent, &st, now);
        rec.owner = old.owner.clone();
        rec.group = old.group.clone();
        rec.mode = old.mode;
        rec.pinned = old.pinned;
        rec.block_size = old.block_size;
        let cur = tx.must(parent.id, &old.name)?;
        tx.add_child(cur, rec, now);
        Ok(())
    }

    fn count(&self, s: SyncStats) {
        self.metrics.ufs_sync_loaded.inc_by(s.loaded);
        self.metrics.ufs_sync_updated.inc_by(s.updated);
        self.metrics.ufs_sync_removed.inc_by(s.removed);
    }

    /// Re-lists directory `p` in its UFS when its listing is stale (always when `force`).
    pub(crate) async fn sync_listing(&self, p: &str, force: bool) -> Result<SyncStats> {
        let mut stats = SyncStats::default();
        let w = walk(&*self.store, p)?;
        if !w.found() || !w.last().is_dir || !inode::is_persisted(w.last()) {
            return Ok(stats);
        }
        let dir = w.last().clone();
        let res = self.mounts.resolve(p)?;
        let now = now_ms();
        if !force && !stale(dir.last_sync_ms, res.mount.sync_interval, now) {
            return Ok(stats);
        }
        // 1. The UFS listing (outside the lock).
        let mut ufs = match res.mount.ufs.list_by_name(&res.rel).await {
            Ok(listing) => listing,
            Err(e) => {
                tracing::warn!(path = %p, error = %e, "metadata sync: UFS listing failed; serving cached metadata");
                return Ok(stats);
            }
        };
        // 2. Compare with the namespace's children (reads, no lock).
        let mut changes = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.list_children(dir.id, after.as_deref(), 1024)?;
            let done = page.len() < 1024;
            after = page.last().map(|(n, _)| n.clone());
            for (name, id) in page {
                let Some(r) = self.store.get_inode(id)? else {
                    continue;
                };
                let st = ufs.remove(&name);
                if r.mount_id != 0 {
                    continue;
                }
                let persisted = inode::is_persisted(&r);
                match st {
                    None if persisted => changes.push(Change::Remove(id)),
                    // Only in Alluvium: never removed by a sync.
                    None => {}
                    Some(st) if st.is_dir != r.is_dir && persisted => {
                        changes.push(Change::Replace(id, st))
                    }
                    Some(st) if !r.is_dir && persisted && r.completed => {
                        if r.ufs_fingerprint.is_empty() && st.length == r.length {
                            changes.push(Change::Adopt(id, st.fingerprint));
                        } else if r.ufs_fingerprint != st.fingerprint {
                            changes.push(Change::Replace(id, st));
                        }
                    }
                    Some(st) if st.is_dir && r.is_dir && !persisted => {
                        changes.push(Change::MarkPersisted(id))
                    }
                    Some(_) => {}
                }
            }
            if done {
                break;
            }
        }
        let mut changes = self.confirm(&res.mount.ufs, &res.rel, changes).await?;
        let mut loads: Vec<UfsStatus> = ufs.into_values().collect();
        loads.sort_by(|a, b| a.name.cmp(&b.name));
        changes.extend(loads.into_iter().map(Change::Load));
        // 3. Apply under the lock, re-validated, in bounded batches.
        let mut iter = changes.into_iter().peekable();
        loop {
            let now = now_ms();
            let mut tx = self.tx();
            let Some(cur) = tx.get(dir.id)? else {
                return Ok(stats);
            };
            let mut s = SyncStats::default();
            for change in iter.by_ref().take(SYNC_BATCH) {
                self.apply_change(&mut tx, &cur, change, now, &mut s)?;
            }
            let last = iter.peek().is_none();
            if last {
                let mut d = tx.get(dir.id)?.unwrap_or(cur);
                d.last_sync_ms = now;
                tx.put(d);
            }
            self.commit(tx)?;
            self.count(s);
            stats.add(s);
            if last {
                break;
            }
        }
        if stats != SyncStats::default() {
            tracing::debug!(path = %p, loaded = stats.loaded, updated = stats.updated, removed = stats.removed, "metadata sync: directory re-listed");
        }
        Ok(stats)
    }

    /// Re-checks removals and replacements against a fresh stat of each entry. The listing was
    /// taken before the comparison, so a file whose (async) persistence finished in between looks
    /// gone or half-written in it; acting on that would drop a good file. Other changes pass.
    async fn confirm(
        &self,
        ufs: &alluvium_ufs::Ufs,
        dir_rel: &str,
        changes: Vec<Change>,
    ) -> Result<Vec<Change>> {
        let mut out = Vec::with_capacity(changes.len());
        for change in changes {
            let id = match &change {
                Change::Remove(id) | Change::Replace(id, _) => *id,
                _ => {
                    out.push(change);
                    continue;
                }
            };
            let Some(r) = self.store.get_inode(id)? else {
                continue;
            };
            let rel = if dir_rel.is_empty() {
                r.name.clone()
            } else {
                format!("{dir_rel}/{}", r.name)
            };
            match ufs.stat(&rel).await {
                Ok(None) => out.push(Change::Remove(id)),
                Ok(Some(st)) if st.is_dir != r.is_dir => out.push(Change::Replace(id, st)),
                Ok(Some(st)) if !r.is_dir && r.completed => {
                    if r.ufs_fingerprint.is_empty() && st.length == r.length {
                        out.push(Change::Adopt(id, st.fingerprint));
                    } else if r.ufs_fingerprint != st.fingerprint {
                        out.push(Change::Replace(id, st));
                    }
                }
                Ok(Some(_)) => {}
                // Keep the cached metadata when the UFS cannot say.
                Err(e) => {
                    tracing::debug!(path = %rel, error = %e, "metadata sync: cannot confirm a change; keeping cached metadata");
                }
            }
        }
        Ok(out)
    }

    fn apply_change(
        &self,
        tx: &mut Tx<'_>,
        dir: &InodeRecord,
        change: Change,
        now: i64,
        s: &mut SyncStats,
    ) -> Result<()> {
        // The child must still be the one compared (nothing changed it meanwhile).
        let current = |tx: &Tx<'_>, id: u64| -> Result<Option<InodeRecord>> {
            Ok(tx
                .get(id)?
                .filter(|r| r.parent_id == dir.id && r.mount_id == 0))
        };
        match change {
            Change::Load(st) => {
                if path::validate_name(&st.name).is_err() || tx.child(dir.id, &st.name)?.is_some() {
                    return Ok(());
                }
                let parent = tx.must(dir.id, &st.name)?;
                let rec = self.record_from_ufs(tx, &parent, &st, now);
                tx.add_child(parent, rec, now);
                s.loaded += 1;
            }
            Change::Remove(id) => {
                if let Some(r) = current(tx, id)? {
                    if inode::is_persisted(&r) {
                        self.prune(tx, &r, now, s)?;
                    }
                }
            }
            Change::Replace(id, st) => {
                if let Some(r) = current(tx, id)? {
                    if !inode::is_persisted(&r) {
                        return Ok(());
                    }
                    let parent = tx.must(dir.id, &r.name)?;
                    if !r.is_dir && !st.is_dir {
                        self.replace_file(tx, &parent, &r, &st, now)?;
                        s.updated += 1;
                    } else if self.prune(tx, &r, now, s)? {
                        let parent = tx.must(dir.id, &r.name)?;
                        let st = UfsStatus {
                            name: r.name.clone(),
                            ..st
                        };
                        let rec = self.record_from_ufs(tx, &parent, &st, now);
                        tx.add_child(parent, rec, now);
                        s.updated += 1;
                    }
                }
            }
            Change::Adopt(id, fp) => {
                if let Some(mut r) = current(tx, id)? {
                    r.ufs_fingerprint = fp;
                    r.last_sync_ms = now;
                    tx.put(r);
                }
            }
            Change::MarkPersisted(id) => {
                if let Some(mut r) = current(tx, id)? {
                    if r.is_dir {
                        r.persistence_state = PersistenceState::Persisted as i32;
                        tx.put(r);
                    }
                }
            }
        }
        Ok(())
    }

    /// LoadMetadata: re-reads UFS metadata under `p` now, regardless of the sync interval.
    pub async fn load_metadata(
        &self,
        checker: &Checker,
        p: &str,
        recursive: bool,
    ) -> Result<LoadMetadataResponse> {
        let p = path::normalize(p)?;
        let mut stats = self.sync_path(&p, true).await?;
        let w = walk(&*self.store, &p)?;
        if !w.found() {
            return Err(alluvium_common::Error::not_found(format!(
                "{p}: does not exist in the namespace or its UFS"
            )));
        }
        let mut queue = std::collections::VecDeque::from([(p.clone(), w.last().clone())]);
        while let Some((dp, d)) = queue.pop_front() {
            if !d.is_dir {
                continue;
            }
            checker.check(&d, &dp, Access::Read)?;
            stats.add(self.sync_listing(&dp, true).await?);
            if !recursive {
                break;
            }
            let mut after: Option<String> = None;
            loop {
                let page = self.store.list_children(d.id, after.as_deref(), 1024)?;
                let done = page.len() < 1024;
                after = page.last().map(|(n, _)| n.clone());
                for (name, id) in page {
                    if let Some(r) = self.store.get_inode(id)? {
                        if r.is_dir && r.mount_id == 0 {
                            queue.push_back((path::join(&dp, &name), r));
                        }
                    }
                }
                if done {
                    break;
                }
            }
        }
        Ok(LoadMetadataResponse {
            loaded: stats.loaded,
            updated: stats.updated,
            removed: stats.removed,
        })
    }
}
