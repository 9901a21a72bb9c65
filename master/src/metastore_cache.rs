//! [`CachingStore`]: a layer over any [`MetaStore`] that keeps recently used inodes and edges
//! (parent, name → child) in memory, like Alluxio's caching inode store in front of RocksDB.
//!
//! Path resolution is two point lookups per component (edge, then inode), and most operations
//! resolve their path more than once (metadata sync, permission walk, the transaction), so a
//! `get status` of a 4-level path was ~14 RocksDB memtable searches. Hits here are a hash lookup.
//!
//! Coherence: the store stays the only source of truth. A commit first goes to the store, then
//! drops every inode and edge it touched from the cache and advances an epoch. A reader that
//! missed records the epoch before asking the store and caches what it read only if no commit
//! ended in between, so a value read just before a commit can never be cached after it.

use std::hash::{BuildHasher, Hash};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use alluvium_common::Result;
use alluvium_proto::{InodeRecord, MountRecord};
use lru::LruCache;
use parking_lot::Mutex;

use crate::metastore::{Batch, Counter, MetaStore, Op};

/// Shards per cache, so concurrent lookups rarely wait on one lock.
const SHARDS: usize = 16;

pub struct CachingStore {
    inner: Arc<dyn MetaStore>,
    inodes: Sharded<u64, InodeRecord>,
    /// `None` caches "no such child", which every create of a new name asks.
    edges: Sharded<(u64, String), Option<u64>>,
    epoch: AtomicU64,
}

impl CachingStore {
    /// Keeps up to `entries` inodes and `entries` edges (0 turns the cache off).
    pub fn new(inner: Arc<dyn MetaStore>, entries: usize) -> Self {
        Self {
            inner,
            inodes: Sharded::new(entries),
            edges: Sharded::new(entries),
            epoch: AtomicU64::new(0),
        }
    }

    /// Inodes and edges cached now.
    pub fn cached(&self) -> (usize, usize) {
        (self.inodes.len(), self.edges.len())
    }
}

impl MetaStore for CachingStore {
    fn get_inode(&self, id: u64) -> Result<Option<InodeRecord>> {
        if let Some(hit) = self.inodes.get(&id) {
            return Ok(Some(hit));
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let found = self.inner.get_inode(id)?;
        if let Some(rec) = &found {
            self.inodes.put_if(id, rec.clone(), || {
                self.epoch.load(Ordering::Acquire) == epoch
            });
        }
        Ok(found)
    }

    fn get_child(&self, parent: u64, name: &str) -> Result<Option<u64>> {
        let key = (parent, name.to_string());
        if let Some(hit) = self.edges.get(&key) {
            return Ok(hit);
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let found = self.inner.get_child(parent, name)?;
        self.edges
            .put_if(key, found, || self.epoch.load(Ordering::Acquire) == epoch);
        Ok(found)
    }

    fn list_children(
        &self,
        parent: u64,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, u64)>> {
        self.inner.list_children(parent, start_after, limit)
    }

    fn mounts(&self) -> Result<Vec<MountRecord>> {
        self.inner.mounts()
    }

    fn counter(&self, counter: Counter) -> Result<u64> {
        self.inner.counter(counter)
    }

    fn pinned(&self) -> Result<Vec<u64>> {
        self.inner.pinned()
    }

    fn expired_ttls(&self, now_ms: i64, limit: usize) -> Result<Vec<(i64, u64)>> {
        self.inner.expired_ttls(now_ms, limit)
    }

    fn persist_queue(&self, after: u64, limit: usize) -> Result<Vec<u64>> {
        self.inner.persist_queue(after, limit)
    }

    fn commit(&self, batch: Batch) -> Result<()> {
        let mut inodes = Vec::new();
        let mut edges = Vec::new();
        for op in &batch.ops {
            match op {
                Op::PutInode(r) => inodes.push(r.id),
                Op::DeleteInode(id) => inodes.push(*id),
                Op::PutEdge { parent, name, .. } | Op::DeleteEdge { parent, name } => {
                    edges.push((*parent, name.clone()))
                }
                _ => {}
            }
        }
        let result = self.inner.commit(batch);
        // Also after a failed commit: whether the store applied it is not known for sure.
        for id in &inodes {
            self.inodes.remove(id);
        }
        for key in &edges {
            self.edges.remove(key);
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
        result
    }

    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }
}

/// An LRU cache in shards chosen by the key's hash.
struct Sharded<K: Hash + Eq, V: Clone> {
    shards: Vec<Mutex<LruCache<K, V>>>,
    hasher: std::collections::hash_map::RandomState,
}

impl<K: Hash + Eq, V: Clone> Sharded<K, V> {
    fn new(entries: usize) -> Self {
        let per_shard = entries.div_ceil(SHARDS);
        let shards = match NonZeroUsize::new(per_shard) {
            Some(cap) => (0..SHARDS)
                .map(|_| Mutex::new(LruCache::new(cap)))
                .collect(),
            None => Vec::new(),
        };
        Self {
            shards,
            hasher: Default::default(),
        }
    }

    fn shard(&self, key: &K) -> Option<&Mutex<LruCache<K, V>>> {
        if self.shards.is_empty() {
            return None;
        }
        let i = (self.hasher.hash_one(key) as usize) % self.shards.len();
        Some(&self.shards[i])
    }

    fn get(&self, key: &K) -> Option<V> {
        self.shard(key)?.lock().get(key).cloned()
    }

    /// Inserts unless `still_valid` (checked under the shard's lock) says otherwise.
    fn put_if(&self, key: K, value: V, still_valid: impl FnOnce() -> bool) {
        if let Some(s) = self.shard(&key) {
            let mut s = s.lock();
            if still_valid() {
                s.put(key, value);
            }
        }
    }

    fn remove(&self, key: &K) {
        if let Some(s) = self.shard(key) {
            s.lock().pop(key);
        }
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metastore::RocksStore;

    fn inode(id: u64, name: &str, length: u64) -> InodeRecord {
        InodeRecord {
            id,
            parent_id: 0,
            name: name.into(),
            length,
            ..Default::default()
        }
    }

    fn put(store: &dyn MetaStore, parent: u64, rec: InodeRecord) {
        let mut b = Batch::new();
        b.push(Op::PutEdge {
            parent,
            name: rec.name.clone(),
            child: rec.id,
        });
        b.push(Op::PutInode(rec));
        store.commit(b).unwrap();
    }

    #[test]
    fn reads_see_every_commit() {
        let dir = tempfile::tempdir().unwrap();
        let rocks: Arc<dyn MetaStore> = Arc::new(RocksStore::open(dir.path(), false).unwrap());
        let store = CachingStore::new(rocks.clone(), 1000);
        // A miss is cached, negative answers too.
        assert_eq!(store.get_child(1, "a").unwrap(), None);
        put(&store, 1, inode(7, "a", 10));
        assert_eq!(store.get_child(1, "a").unwrap(), Some(7));
        assert_eq!(store.get_inode(7).unwrap().unwrap().length, 10);
        assert_eq!(store.cached(), (1, 1));
        // An update through the layer replaces the cached inode.
        put(&store, 1, inode(7, "a", 20));
        assert_eq!(store.get_inode(7).unwrap().unwrap().length, 20);
        // A delete drops both.
        let mut b = Batch::new();
        b.push(Op::DeleteEdge {
            parent: 1,
            name: "a".into(),
        });
        b.push(Op::DeleteInode(7));
        store.commit(b).unwrap();
        assert_eq!(store.get_child(1, "a").unwrap(), None);
        assert_eq!(store.get_inode(7).unwrap(), None);
        // Reads agree with the store underneath all along.
        assert_eq!(rocks.get_inode(7).unwrap(), None);
    }

    /// A store whose `get_inode` reads, then waits while the test commits, then returns what it
    /// read: the reader's value is stale by the time the cache could keep it.
    struct StallingStore {
        inner: Arc<dyn MetaStore>,
        read_done: std::sync::mpsc::SyncSender<()>,
        commit_done: parking_lot::Mutex<std::sync::mpsc::Receiver<()>>,
    }

    impl MetaStore for StallingStore {
        fn get_inode(&self, id: u64) -> Result<Option<InodeRecord>> {
            let found = self.inner.get_inode(id)?;
            let _ = self.read_done.send(());
            let _ = self.commit_done.lock().recv();
            Ok(found)
        }
        fn get_child(&self, parent: u64, name: &str) -> Result<Option<u64>> {
            self.inner.get_child(parent, name)
        }
        fn list_children(
            &self,
            parent: u64,
            start_after: Option<&str>,
            limit: usize,
        ) -> Result<Vec<(String, u64)>> {
            self.inner.list_children(parent, start_after, limit)
        }
        fn mounts(&self) -> Result<Vec<MountRecord>> {
            self.inner.mounts()
        }
        fn counter(&self, counter: Counter) -> Result<u64> {
            self.inner.counter(counter)
        }
        fn pinned(&self) -> Result<Vec<u64>> {
            self.inner.pinned()
        }
        fn expired_ttls(&self, now_ms: i64, limit: usize) -> Result<Vec<(i64, u64)>> {
            self.inner.expired_ttls(now_ms, limit)
        }
        fn persist_queue(&self, after: u64, limit: usize) -> Result<Vec<u64>> {
            self.inner.persist_queue(after, limit)
        }
        fn commit(&self, batch: Batch) -> Result<()> {
            self.inner.commit(batch)
        }
        fn flush(&self) -> Result<()> {
            self.inner.flush()
        }
    }

    #[test]
    fn a_read_racing_a_commit_is_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let rocks: Arc<dyn MetaStore> = Arc::new(RocksStore::open(dir.path(), false).unwrap());
        put(&*rocks, 1, inode(9, "b", 1));
        let (read_done, read_seen) = std::sync::mpsc::sync_channel(1);
        let (commit_over, commit_done) = std::sync::mpsc::sync_channel(1);
        let stalling = Arc::new(StallingStore {
            inner: rocks,
            read_done,
            commit_done: parking_lot::Mutex::new(commit_done),
        });
        let store = Arc::new(CachingStore::new(stalling, 1000));
        // A reader misses the cache and reads length 1 from the store...
        let reader = {
            let store = store.clone();
            std::thread::spawn(move || store.get_inode(9).unwrap().unwrap().length)
        };
        read_seen.recv().unwrap();
        // ...a commit to length 2 ends before the reader can cache what it read...
        put(&*store, 1, inode(9, "b", 2));
        commit_over.send(()).unwrap();
        assert_eq!(reader.join().unwrap(), 1, "the reader got what it read");
        // ...so the stale length is not kept: the next read (let through the stall) sees the
        // commit. A cache that kept it would answer 1 without reading.
        commit_over.send(()).unwrap();
        assert_eq!(store.get_inode(9).unwrap().unwrap().length, 2);
    }

    #[test]
    fn bounded_and_can_be_off() {
        let dir = tempfile::tempdir().unwrap();
        let rocks: Arc<dyn MetaStore> = Arc::new(RocksStore::open(dir.path(), false).unwrap());
        let store = CachingStore::new(rocks.clone(), 32);
        for i in 0..200 {
            put(&store, 1, inode(100 + i, &format!("f{i}"), i));
        }
        for i in 0..200 {
            assert_eq!(store.get_inode(100 + i).unwrap().unwrap().length, i);
        }
        let (inodes, _) = store.cached();
        assert!(inodes <= 32 + SHARDS, "{inodes} cached");
        let off = CachingStore::new(rocks, 0);
        assert_eq!(off.get_inode(150).unwrap().unwrap().length, 50);
        assert_eq!(off.cached(), (0, 0));
    }
}
