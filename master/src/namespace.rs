//! The namespace: files and directories as inodes in the metastore, and every operation on them.
//!
//! Each mutation is a read-check-write under one lock ([`Tx`]), committed as one atomic batch.
//! UFS I/O (creating, deleting, renaming the durable copy; metadata sync) happens outside the
//! lock: the operation checks, releases the lock, does the I/O, then checks again and commits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use alluvium_common::config::MasterConfig;
use alluvium_common::size::ByteSize;
use alluvium_common::time::now_ms;
use alluvium_common::{ids, path, Error, ErrorCode, Result};
use alluvium_proto::{
    CompleteFileRequest, CreateDirectoryRequest, CreateFileRequest, FileInfo, InodeRecord,
    MountInfo, MountRecord, MountRequest, PersistCommand, PersistenceState, SetAttributeRequest,
    TtlAction, UfsLocation, WriteType,
};
use alluvium_ufs::{normalize_uri, persist_staging_path, Ufs, UfsUri};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::block_master::BlockMaster;
use crate::inode::{self, DEFAULT_DIR_MODE, DEFAULT_FILE_MODE, ROOT_ID};
use crate::metastore::{Counter, MetaStore, Op};
use crate::metrics::Metrics;
use crate::mount_table::{Mount, MountTable, ROOT_MOUNT_ID};
use crate::permission::{Access, Checker, SuperUsers};
use crate::publish_fence::{NotNow, PublishFence};
use crate::tx::{NsState, Tx};

/// Default and maximum entries per ListStatus page.
pub const DEFAULT_PAGE_SIZE: usize = 1000;
pub const MAX_PAGE_SIZE: usize = 10_000;

/// Reads of inodes and edges, from the store or through a transaction.
pub(crate) trait Reader {
    fn inode(&self, id: u64) -> Result<Option<InodeRecord>>;
    fn child_id(&self, parent: u64, name: &str) -> Result<Option<u64>>;
}

impl Reader for dyn MetaStore {
    fn inode(&self, id: u64) -> Result<Option<InodeRecord>> {
        self.get_inode(id)
    }
    fn child_id(&self, parent: u64, name: &str) -> Result<Option<u64>> {
        self.get_child(parent, name)
    }
}

impl Reader for Tx<'_> {
    fn inode(&self, id: u64) -> Result<Option<InodeRecord>> {
        self.get(id)
    }
    fn child_id(&self, parent: u64, name: &str) -> Result<Option<u64>> {
        self.child(parent, name)
    }
}

/// The inodes along a path: `nodes[0]` is the root; `missing` the components not found.
pub(crate) struct Walk {
    pub nodes: Vec<InodeRecord>,
    pub missing: Vec<String>,
}

impl Walk {
    pub fn found(&self) -> bool {
        self.missing.is_empty()
    }
    pub fn last(&self) -> &InodeRecord {
        // `walk` always pushes the root first.
        &self.nodes[self.nodes.len() - 1]
    }
}

pub(crate) fn walk(r: &(impl Reader + ?Sized), p: &str) -> Result<Walk> {
    let root = r
        .inode(ROOT_ID)?
        .ok_or_else(|| Error::internal("metastore has no root inode"))?;
    let mut nodes = vec![root];
    let comps: Vec<&str> = path::components(p).collect();
    for (i, c) in comps.iter().enumerate() {
        let cur = &nodes[nodes.len() - 1];
        let next = if cur.is_dir {
            match r.child_id(cur.id, c)? {
                Some(id) => r.inode(id)?,
                None => None,
            }
        } else {
            None
        };
        match next {
            Some(n) => nodes.push(n),
            None => {
                return Ok(Walk {
                    nodes,
                    missing: comps[i..].iter().map(|s| s.to_string()).collect(),
                })
            }
        }
    }
    Ok(Walk {
        nodes,
        missing: Vec::new(),
    })
}

/// Checks `x` on every node but the last (the ancestors of the path's target).
fn check_traverse(checker: &Checker, nodes: &[InodeRecord], p: &str) -> Result<()> {
    let mut cur = String::from("/");
    for (i, n) in nodes.iter().enumerate() {
        if i > 0 {
            cur = path::join(&cur, &n.name);
        }
        if n.is_dir {
            checker.check(n, &cur, Access::Execute).map_err(|e| {
                Error::permission_denied(format!("{p}: cannot traverse {cur}: {}", e.message))
            })?;
        }
    }
    Ok(())
}

/// `lookup`: the nodes of an existing path, with traversal checked.
fn lookup(r: &(impl Reader + ?Sized), checker: &Checker, p: &str) -> Result<Vec<InodeRecord>> {
    let w = walk(r, p)?;
    if !w.found() {
        check_traverse(checker, &w.nodes, p)?;
        if !w.last().is_dir {
            return Err(Error::not_found(format!(
                "{p}: does not exist ({} is a file)",
                path_of_nodes(&w.nodes)
            )));
        }
        return Err(Error::not_found(format!("{p}: does not exist")));
    }
    check_traverse(checker, &w.nodes[..w.nodes.len() - 1], p)?;
    Ok(w.nodes)
}

fn path_of_nodes(nodes: &[InodeRecord]) -> String {
    let mut p = String::from("/");
    for n in &nodes[1..] {
        p = path::join(&p, &n.name);
    }
    p
}

fn norm(p: &str) -> Result<String> {
    path::normalize(p)
}

/// Marks every directory among `nodes` persisted (its UFS copy now has children).
fn persist_ancestors(tx: &mut Tx<'_>, nodes: &[InodeRecord]) -> Result<()> {
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

pub struct Namespace {
    pub(crate) store: Arc<dyn MetaStore>,
    pub(crate) mounts: Arc<MountTable>,
    pub(crate) blocks: Arc<BlockMaster>,
    pub(crate) supers: SuperUsers,
    pub(crate) default_block_size: u64,
    pub(crate) default_sync: Duration,
    pub(crate) state: Mutex<NsState>,
    pub(crate) metrics: Arc<Metrics>,
    /// Serializes the final check-commit-insert of mount and unmount, so two concurrent mounts
    /// cannot both pass the overlap checks. Never held across I/O.
    mount_lock: Mutex<()>,
    /// Keeps the publish of a persisted file and a delete or rename above it apart.
    pub(crate) publish_fence: PublishFence,
}

/// What became of a worker's staged copy of a persisted file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// Renamed to the file's UFS path; the file is PERSISTED.
    Published,
    /// The file went (or no longer waits to be persisted): the staged copy was removed.
    Discarded,
    /// A delete or rename above the file is in progress: try again later.
    Deferred,
}

/// Outcome of a planned delete, checked again under the lock before committing.
struct DeletePlan {
    target: InodeRecord,
    mount: Arc<Mount>,
    rel: String,
}

impl Namespace {
    /// Opens the namespace on `store`; on first start creates the root and mounts
    /// `master.root_ufs` at `/` (creating a missing local root directory).
    pub fn open(
        store: Arc<dyn MetaStore>,
        blocks: Arc<BlockMaster>,
        metrics: Arc<Metrics>,
        config: &MasterConfig,
    ) -> Result<Self> {
        let state = NsState {
            next_inode_id: store.counter(Counter::NextInodeId)?,
            next_mount_id: store.counter(Counter::NextMountId)?,
            files: store.counter(Counter::Files)?,
            dirs: store.counter(Counter::Directories)?,
        };
        let supers = SuperUsers::from_config(config);
        let ns = Self {
            store: store.clone(),
            mounts: Arc::new(MountTable::default()),
            blocks,
            supers,
            default_block_size: config.default_block_size.0,
            default_sync: config.sync_interval,
            state: Mutex::new(state),
            metrics,
            mount_lock: Mutex::new(()),
            publish_fence: PublishFence::default(),
        };
        if store.get_inode(ROOT_ID)?.is_none() {
            ns.format_root(config)?;
        }
        let mut mounts = Vec::new();
        for rec in store.mounts()? {
            if rec.mount_id == ROOT_MOUNT_ID {
                let configured = normalize_uri(&config.root_ufs).unwrap_or_default();
                if configured != rec.ufs_uri {
                    tracing::warn!(persisted = %rec.ufs_uri, configured = %configured, "master.root_ufs differs from the root mount in the metastore; the metastore wins");
                }
            }
            mounts.push(Mount::open(rec, config.sync_interval)?);
        }
        for m in mounts {
            ns.mounts.insert(m);
        }
        ns.update_gauges();
        Ok(ns)
    }

    fn format_root(&self, config: &MasterConfig) -> Result<()> {
        let uri = UfsUri::parse(&config.root_ufs)?;
        if uri.scheme.as_str() == "file" {
            std::fs::create_dir_all(&uri.path).map_err(|e| {
                Error::from(e).context(format!("cannot create root UFS directory {}", uri.path))
            })?;
        }
        let now = now_ms();
        let me = &self.supers.owner();
        let group = alluvium_common::identity::Caller::current_process()
            .primary_group()
            .to_string();
        let mut root = inode::new_dir(ROOT_ID, 0, "", me, &group, DEFAULT_DIR_MODE, now);
        root.persistence_state = PersistenceState::Persisted as i32;
        root.mount_id = ROOT_MOUNT_ID;
        let rec = MountRecord {
            mount_id: ROOT_MOUNT_ID,
            path: "/".into(),
            ufs_uri: uri.to_string(),
            read_only: false,
            options: config
                .root_ufs_options
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            mounted_at_ms: now,
            shared: false,
            inode_id: ROOT_ID,
        };
        let mut tx = Tx::new(&*self.store, self.state.lock());
        tx.put(root);
        tx.op(Op::PutMount(rec));
        // Id counters stay unset: allocation starts at the first free id (2) either way.
        // The root counts as a directory.
        tx.op(Op::SetCounter(Counter::Directories, 1));
        tx.commit()?;
        let mut st = self.state.lock();
        st.dirs = 1;
        drop(st);
        tracing::info!(root_ufs = %uri, "formatted a new namespace");
        Ok(())
    }

    pub(crate) fn tx(&self) -> Tx<'_> {
        Tx::new(&*self.store, self.state.lock())
    }

    /// Commits and tells the block master about dropped blocks and pins.
    pub(crate) fn commit(&self, tx: Tx<'_>) -> Result<()> {
        let done = tx.commit()?;
        self.blocks.remove_files(&done.removed_files);
        for (id, p) in done.pin_changes {
            self.blocks.set_pinned(id, p);
        }
        self.update_gauges();
        Ok(())
    }

    fn update_gauges(&self) {
        let st = *self.state.lock();
        self.metrics.files.set(st.files as i64);
        self.metrics.directories.set(st.dirs as i64);
    }

    pub fn checker(&self, caller: alluvium_common::identity::Caller) -> Checker {
        self.supers.checker(caller)
    }

    pub fn superuser_name(&self) -> String {
        self.supers.owner()
    }

    pub fn counts(&self) -> (u64, u64) {
        let st = *self.state.lock();
        (st.files, st.dirs)
    }

    pub fn mount_table(&self) -> &Arc<MountTable> {
        &self.mounts
    }

    // ---- FileInfo ----

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
        let nodes = lookup(&*self.store, checker, &p)?;
        Ok(self.file_info(&p, &nodes[nodes.len() - 1], with_blocks))
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
        let nodes = lookup(&*self.store, checker, &p)?;
        let target = nodes[nodes.len() - 1].clone();
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

    // ---- create ----

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
            let parent = w.nodes[w.nodes.len() - 2].clone();
            checker.check(&parent, path::parent(&p).unwrap_or("/"), Access::Write)?;
            tx.delete_tree(&old, now)?;
            tx.must(parent.id, &p)?
        } else {
            self.make_parents(&mut tx, checker, &w, &p, req.recursive, now, None)?
        };
        if !parent.is_dir {
            return Err(Error::failed_precondition(format!(
                "{p}: parent is not a directory"
            )));
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
            )));
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
        let nodes = lookup(&*self.store, checker, &p)?;
        let rec = nodes[nodes.len() - 1].clone();
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
            persist_ancestors(&mut tx, &w.nodes[..w.nodes.len() - 1])?;
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
            return Err(Error::failed_precondition(format!("{p}: is a directory")));
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
                        )))
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

    // ---- delete ----

    fn plan_delete(
        &self,
        tx: &Tx<'_>,
        checker: &Checker,
        p: &str,
        recursive: bool,
    ) -> Result<DeletePlan> {
        let nodes = lookup(tx, checker, p)?;
        let target = nodes[nodes.len() - 1].clone();
        let parent = &nodes[nodes.len() - 2];
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
                )));
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

    // ---- rename ----

    fn plan_rename(
        &self,
        tx: &Tx<'_>,
        checker: &Checker,
        src: &str,
        dst: &str,
    ) -> Result<(InodeRecord, InodeRecord)> {
        let nodes = lookup(tx, checker, src)?;
        let s = nodes[nodes.len() - 1].clone();
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
            &nodes[nodes.len() - 2],
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
            return Err(Error::failed_precondition(format!(
                "{dst}: parent is not a directory"
            )));
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
            rename_in_ufs(&rs.mount.ufs, &rs.rel, &rd.rel, s.is_dir).await?;
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
            persist_ancestors(&mut tx, &w.nodes[..w.nodes.len().saturating_sub(1)])?;
        }
        self.commit(tx)?;
        tracing::debug!(src = %src, dst = %dst, "renamed");
        Ok(())
    }

    // ---- attributes ----

    pub async fn set_attribute(&self, checker: &Checker, req: &SetAttributeRequest) -> Result<()> {
        let p = norm(&req.path)?;
        self.sync_path(&p, false).await?;
        let now = now_ms();
        let mut tx = self.tx();
        let nodes = lookup(&tx, checker, &p)?;
        let target = nodes[nodes.len() - 1].clone();
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

    // ---- free / persist ----

    pub async fn free(
        &self,
        checker: &Checker,
        p: &str,
        recursive: bool,
        forced: bool,
    ) -> Result<()> {
        let p = norm(p)?;
        let mut tx = self.tx();
        let nodes = lookup(&tx, checker, &p)?;
        let target = nodes[nodes.len() - 1].clone();
        checker.check(&target, &p, Access::Read)?;
        let files: Vec<InodeRecord> = if target.is_dir {
            if target.child_count > 0 && !recursive {
                return Err(Error::failed_precondition(format!(
                    "{p}: directory not empty; free it recursively"
                )));
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

    pub async fn schedule_async_persistence(&self, checker: &Checker, p: &str) -> Result<()> {
        let p = norm(p)?;
        self.sync_path(&p, false).await?;
        let res = self.mounts.resolve(&p)?;
        res.mount.check_writable(&p)?;
        let mut tx = self.tx();
        let nodes = lookup(&tx, checker, &p)?;
        let mut r = nodes[nodes.len() - 1].clone();
        if r.is_dir {
            return Err(Error::invalid_argument(format!(
                "{p}: is a directory; persist files"
            )));
        }
        if !r.completed {
            return Err(Error::failed_precondition(format!(
                "{p}: is not complete yet"
            )));
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
        persist_ancestors(&mut tx, &w.nodes[..w.nodes.len() - 1])?;
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

    // ---- mounts ----

    pub async fn mount(&self, checker: &Checker, req: &MountRequest) -> Result<()> {
        let p = norm(&req.path)?;
        checker.require_superuser(&format!("mount {p}"))?;
        let uri = normalize_uri(&req.ufs_uri)?;
        let parsed = UfsUri::parse(&uri)?;
        let options: BTreeMap<String, String> = req
            .options
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.mounts.check_new(&p, &uri)?;
        if parsed.scheme.as_str() == "file" {
            // opendal would create a missing root: a typo must not become an empty mount.
            match std::fs::metadata(&parsed.path) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(Error::invalid_argument(format!(
                        "mount {p}: {uri} is not a directory"
                    )))
                }
                Err(_) => {
                    return Err(Error::not_found(format!(
                        "mount {p}: UFS directory {uri} does not exist"
                    )))
                }
            }
        }
        self.sync_path(&p, false).await?;
        let check_ns = |tx: &Tx<'_>| -> Result<InodeRecord> {
            let w = walk(tx, &p)?;
            if w.found() {
                return Err(Error::already_exists(format!(
                    "mount {p}: the path already exists; mount on a new path"
                )));
            }
            if w.missing.len() > 1 || !w.last().is_dir {
                return Err(Error::not_found(format!(
                    "mount {p}: parent directory {} does not exist",
                    path::parent(&p).unwrap_or("/")
                )));
            }
            Ok(w.last().clone())
        };
        {
            let tx = self.tx();
            check_ns(&tx)?;
        }
        let now = now_ms();
        let mut record = MountRecord {
            mount_id: 0,
            path: p.clone(),
            ufs_uri: uri.clone(),
            read_only: req.read_only,
            options: options.clone().into_iter().collect(),
            mounted_at_ms: now,
            shared: req.shared,
            inode_id: 0,
        };
        let probe = Mount::open(record.clone(), self.default_sync)?;
        probe_ufs(&probe.ufs)
            .await
            .map_err(|e| Error::new(e.code, format!("mount {p}: {}", e.message)))?;
        let _serial = self.mount_lock.lock();
        let mut tx = self.tx();
        self.mounts.check_new(&p, &uri)?;
        let parent = check_ns(&tx)?;
        let mount_id = tx.alloc_mount_id();
        let id = tx.alloc_id();
        record.mount_id = mount_id;
        record.inode_id = id;
        let mut d = inode::new_dir(
            id,
            parent.id,
            path::name(&p),
            &checker.caller.user,
            checker.caller.primary_group(),
            DEFAULT_DIR_MODE,
            now,
        );
        d.persistence_state = PersistenceState::Persisted as i32;
        d.mount_id = mount_id;
        tx.add_child(parent, d, now);
        tx.op(Op::PutMount(record.clone()));
        self.commit(tx)?;
        self.mounts.insert(Mount {
            record,
            ufs: probe.ufs,
            sync_interval: probe.sync_interval,
        });
        tracing::info!(path = %p, ufs = %uri, mount_id, read_only = req.read_only, "mounted");
        Ok(())
    }

    /// Changes the options, read-only flag and sharing of the mount at `req.path` in place. The
    /// UFS must stay the same (a different UFS is a new mount); the new options are probed
    /// before they replace the old ones, so a bad update leaves the mount as it was.
    pub async fn update_mount(&self, checker: &Checker, req: &MountRequest) -> Result<()> {
        let p = norm(&req.path)?;
        checker.require_superuser(&format!("update mount {p}"))?;
        let uri = normalize_uri(&req.ufs_uri)?;
        let Some(old) = self.mounts.at_path(&p) else {
            return Err(Error::not_found(format!(
                "update mount {p}: not a mount point"
            )));
        };
        if p == "/" {
            return Err(Error::invalid_argument(
                "update mount /: the root mount is configured by master.root_ufs",
            ));
        }
        if old.record.ufs_uri != uri {
            return Err(Error::invalid_argument(format!(
                "update mount {p}: it mounts {}, not {uri}; unmount and mount to change the UFS",
                old.record.ufs_uri
            )));
        }
        let record = MountRecord {
            read_only: req.read_only,
            shared: req.shared,
            options: req
                .options
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..old.record.clone()
        };
        let fresh = Mount::open(record.clone(), self.default_sync)?;
        probe_ufs(&fresh.ufs)
            .await
            .map_err(|e| Error::new(e.code, format!("update mount {p}: {}", e.message)))?;
        let _serial = self.mount_lock.lock();
        if self.mounts.get(old.id()).is_none() {
            return Err(Error::not_found(format!(
                "update mount {p}: unmounted meanwhile"
            )));
        }
        let mut tx = self.tx();
        tx.op(Op::PutMount(record));
        self.commit(tx)?;
        self.mounts.replace(fresh);
        tracing::info!(path = %p, mount_id = old.id(), read_only = req.read_only, "mount updated");
        Ok(())
    }

    pub async fn unmount(&self, checker: &Checker, p: &str) -> Result<()> {
        let p = norm(p)?;
        checker.require_superuser(&format!("unmount {p}"))?;
        if p == "/" {
            return Err(Error::invalid_argument(
                "/: the root mount cannot be unmounted",
            ));
        }
        let Some(m) = self.mounts.at_path(&p) else {
            return Err(Error::not_found(format!("unmount {p}: not a mount point")));
        };
        let now = now_ms();
        let _serial = self.mount_lock.lock();
        if self.mounts.get(m.id()).is_none() {
            return Err(Error::not_found(format!("unmount {p}: not a mount point")));
        }
        let mut tx = self.tx();
        let w = walk(&tx, &p)?;
        if w.found() {
            tx.delete_tree(&w.last().clone(), now)?;
        }
        tx.op(Op::DeleteMount(m.id()));
        self.commit(tx)?;
        self.mounts.remove(m.id());
        tracing::info!(path = %p, mount_id = m.id(), "unmounted");
        Ok(())
    }

    pub fn mount_infos(&self) -> Vec<MountInfo> {
        self.mounts.all().iter().map(|m| m.info(false)).collect()
    }

    /// The unredacted mount (GetUfsMount).
    pub fn ufs_mount(&self, mount_id: u64) -> Result<MountInfo> {
        self.mounts
            .get(mount_id)
            .map(|m| m.info(true))
            .ok_or_else(|| Error::not_found(format!("mount {mount_id} does not exist")))
    }
}

/// Checks that a UFS answers. `Ufs::check` may be answered without I/O (object stores stat
/// their root locally), so the first entry of the root listing is fetched too.
async fn probe_ufs(ufs: &Ufs) -> Result<()> {
    use futures::StreamExt;
    ufs.check().await?;
    let s = ufs.list_stream("").await?;
    let mut s = std::pin::pin!(s);
    match s.next().await {
        Some(Err(e)) if !is_not_found(&e) => Err(e),
        _ => Ok(()),
    }
}

/// Renames a persisted entry in its UFS. opendal refuses directory renames at the operator
/// level, so directories of local stores are renamed with one `rename(2)`.
async fn rename_in_ufs(ufs: &Ufs, from: &str, to: &str, is_dir: bool) -> Result<()> {
    let uri = UfsUri::parse(&ufs.uri())?;
    if !is_dir || uri.scheme.as_str() != "file" {
        return ufs.rename(from, to, is_dir).await;
    }
    let root = std::path::Path::new(&uri.path);
    let (src, dst) = (root.join(from), root.join(to));
    if let Some(parent) = dst.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(|e| {
            Error::from(e).context(format!("{}: cannot create parent", ufs.uri_of(to)))
        })?;
    }
    tokio::fs::rename(&src, &dst).await.map_err(|e| {
        Error::from(e).context(format!(
            "cannot rename {} to {}",
            ufs.uri_of(from),
            ufs.uri_of(to)
        ))
    })
}

/// Whether an error only means "not there".
pub(crate) fn is_not_found(e: &Error) -> bool {
    e.code == ErrorCode::NotFound
}

#[cfg(test)]
#[path = "namespace_tests.rs"]
mod tests;
