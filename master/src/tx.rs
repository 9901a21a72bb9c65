//! A namespace transaction: the read-check-write of one operation, under the mutation lock.
//!
//! Reads see the transaction's own writes (records and edges are overlaid), every write becomes
//! one [`Op`] of a single [`Batch`], and `commit` applies it atomically. Counters (next id, file
//! and directory counts) are updated in memory only once the batch is durable.

use std::collections::{BTreeMap, HashMap};

use alluvium_common::{Error, Result};
use alluvium_proto::InodeRecord;
use parking_lot::MutexGuard;

use crate::inode;
use crate::metastore::{Batch, Counter, MetaStore, Op};

/// The counters guarded by the mutation lock.
#[derive(Debug, Clone, Copy, Default)]
pub struct NsState {
    pub next_inode_id: u64,
    pub next_mount_id: u64,
    pub files: u64,
    pub dirs: u64,
}

/// What a committed transaction leaves for the block master.
pub struct Committed {
    pub removed_files: Vec<u64>,
    pub pin_changes: Vec<(u64, bool)>,
}

pub struct Tx<'a> {
    store: &'a dyn MetaStore,
    guard: MutexGuard<'a, NsState>,
    counters: NsState,
    records: BTreeMap<u64, Option<InodeRecord>>,
    edges: HashMap<(u64, String), Option<u64>>,
    ops: Vec<Op>,
    /// Files whose cached blocks must go once the batch is durable.
    pub removed_files: Vec<u64>,
    /// Pin changes to tell the block master once the batch is durable.
    pub pin_changes: Vec<(u64, bool)>,
}

impl<'a> Tx<'a> {
    pub fn new(store: &'a dyn MetaStore, guard: MutexGuard<'a, NsState>) -> Self {
        let counters = *guard;
        Self {
            store,
            guard,
            counters,
            records: BTreeMap::new(),
            edges: HashMap::new(),
            ops: Vec::new(),
            removed_files: Vec::new(),
            pin_changes: Vec::new(),
        }
    }

    pub fn get(&self, id: u64) -> Result<Option<InodeRecord>> {
        match self.records.get(&id) {
            Some(r) => Ok(r.clone()),
            None => self.store.get_inode(id),
        }
    }

    pub fn must(&self, id: u64, path: &str) -> Result<InodeRecord> {
        self.get(id)?
            .ok_or_else(|| Error::not_found(format!("{path}: does not exist")))
    }

    pub fn child(&self, parent: u64, name: &str) -> Result<Option<u64>> {
        match self.edges.get(&(parent, name.to_string())) {
            Some(c) => Ok(*c),
            None => self.store.get_child(parent, name),
        }
    }

    /// Children of `dir` as committed plus this transaction's edge changes.
    pub fn children(&self, dir: u64) -> Result<Vec<(String, u64)>> {
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.list_children(dir, after.as_deref(), 4096)?;
            let done = page.len() < 4096;
            after = page.last().map(|(n, _)| n.clone());
            out.extend(page);
            if done {
                break;
            }
        }
        for ((p, name), c) in &self.edges {
            if *p == dir {
                match c {
                    Some(c) => {
                        out.insert(name.clone(), *c);
                    }
                    None => {
                        out.remove(name);
                    }
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    pub fn put(&mut self, rec: InodeRecord) {
        self.records.insert(rec.id, Some(rec));
    }

    pub fn alloc_id(&mut self) -> u64 {
        let id = self.counters.next_inode_id.max(inode::FIRST_INODE_ID);
        self.counters.next_inode_id = id + 1;
        id
    }

    pub fn alloc_mount_id(&mut self) -> u64 {
        let id = self.counters.next_mount_id.max(2);
        self.counters.next_mount_id = id + 1;
        id
    }

    pub fn op(&mut self, op: Op) {
        self.ops.push(op);
    }

    /// Adds `rec` as a new child of `parent` (which must be a directory).
    pub fn add_child(&mut self, mut parent: InodeRecord, rec: InodeRecord, now: i64) {
        parent.child_count += 1;
        parent.last_modification_time_ms = now;
        self.edges
            .insert((parent.id, rec.name.clone()), Some(rec.id));
        self.ops.push(Op::PutEdge {
            parent: parent.id,
            name: rec.name.clone(),
            child: rec.id,
        });
        if rec.is_dir {
            self.counters.dirs += 1;
        } else {
            self.counters.files += 1;
        }
        if let Some(exp) = inode::ttl_expiry(&rec) {
            self.ops.push(Op::PutTtl {
                expiry_ms: exp,
                inode: rec.id,
            });
        }
        if rec.pinned && !rec.is_dir {
            self.ops.push(Op::Pin(rec.id));
            self.pin_changes.push((rec.id, true));
        }
        self.put(parent);
        self.put(rec);
    }

    /// Unlinks `rec` from its parent without deleting it (rename).
    pub fn unlink(&mut self, rec: &InodeRecord, now: i64) -> Result<()> {
        let mut parent = self.must(rec.parent_id, &rec.name)?;
        parent.child_count = parent.child_count.saturating_sub(1);
        parent.last_modification_time_ms = now;
        self.put(parent);
        self.edges.insert((rec.parent_id, rec.name.clone()), None);
        self.ops.push(Op::DeleteEdge {
            parent: rec.parent_id,
            name: rec.name.clone(),
        });
        Ok(())
    }

    /// Links an existing (unlinked) `rec` under `parent` as `name`.
    pub fn relink(
        &mut self,
        mut rec: InodeRecord,
        parent_id: u64,
        name: &str,
        now: i64,
    ) -> Result<()> {
        let mut parent = self.must(parent_id, name)?;
        parent.child_count += 1;
        parent.last_modification_time_ms = now;
        self.put(parent);
        rec.parent_id = parent_id;
        rec.name = name.to_string();
        self.edges
            .insert((parent_id, name.to_string()), Some(rec.id));
        self.ops.push(Op::PutEdge {
            parent: parent_id,
            name: name.to_string(),
            child: rec.id,
        });
        self.put(rec);
        Ok(())
    }

    /// Deletes one inode (not its children): record, edge, TTL, persist and pin entries; its
    /// blocks are queued for removal.
    pub fn delete_one(&mut self, rec: &InodeRecord) {
        self.records.insert(rec.id, None);
        self.ops.push(Op::DeleteInode(rec.id));
        if rec.is_dir {
            self.counters.dirs = self.counters.dirs.saturating_sub(1);
        } else {
            self.counters.files = self.counters.files.saturating_sub(1);
            self.removed_files.push(rec.id);
            if rec.pinned {
                self.ops.push(Op::Unpin(rec.id));
                self.pin_changes.push((rec.id, false));
            }
        }
        if let Some(exp) = inode::ttl_expiry(rec) {
            self.ops.push(Op::DeleteTtl {
                expiry_ms: exp,
                inode: rec.id,
            });
        }
        self.ops.push(Op::DeletePersist(rec.id));
    }

    /// Deletes `rec` and everything below it, unlinking it from its parent.
    pub fn delete_tree(&mut self, rec: &InodeRecord, now: i64) -> Result<()> {
        self.unlink(rec, now)?;
        let mut stack = vec![rec.clone()];
        while let Some(r) = stack.pop() {
            if r.is_dir {
                for (name, id) in self.children(r.id)? {
                    self.edges.insert((r.id, name.clone()), None);
                    self.ops.push(Op::DeleteEdge { parent: r.id, name });
                    if let Some(c) = self.get(id)? {
                        stack.push(c);
                    }
                }
            }
            self.delete_one(&r);
        }
        Ok(())
    }

    /// Every inode below `rec` (not `rec` itself), parents before children.
    pub fn descendants(&self, rec: &InodeRecord) -> Result<Vec<InodeRecord>> {
        let mut out = Vec::new();
        let mut queue = std::collections::VecDeque::from([rec.clone()]);
        while let Some(r) = queue.pop_front() {
            if !r.is_dir {
                continue;
            }
            for (_, id) in self.children(r.id)? {
                if let Some(c) = self.get(id)? {
                    out.push(c.clone());
                    queue.push_back(c);
                }
            }
        }
        Ok(out)
    }

    /// Applies everything atomically. On error nothing changed.
    pub fn commit(mut self) -> Result<Committed> {
        let mut batch = Batch::new();
        batch.ops = std::mem::take(&mut self.ops);
        for (id, rec) in std::mem::take(&mut self.records) {
            match rec {
                Some(r) => batch.push(Op::PutInode(r)),
                // Deletion already queued by `delete_one`.
                None => debug_assert!(id != 0),
            }
        }
        let (old, new) = (*self.guard, self.counters);
        if old.next_inode_id != new.next_inode_id {
            batch.push(Op::SetCounter(Counter::NextInodeId, new.next_inode_id));
        }
        if old.next_mount_id != new.next_mount_id {
            batch.push(Op::SetCounter(Counter::NextMountId, new.next_mount_id));
        }
        if old.files != new.files {
            batch.push(Op::SetCounter(Counter::Files, new.files));
        }
        if old.dirs != new.dirs {
            batch.push(Op::SetCounter(Counter::Directories, new.dirs));
        }
        self.store.commit(batch)?;
        *self.guard = new;
        Ok(Committed {
            removed_files: std::mem::take(&mut self.removed_files),
            pin_changes: std::mem::take(&mut self.pin_changes),
        })
    }
}
