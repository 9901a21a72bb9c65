//! The master's metadata store: one trait ([`MetaStore`]) and its RocksDB implementation
//! ([`RocksStore`]), the only code that touches RocksDB.
//!
//! Key spaces (column families):
//! - `inodes`: inode id (BE u64) → [`InodeRecord`]
//! - `edges`: parent id (BE u64) ++ child name → child id (BE u64); sorted by name per parent,
//!   so listing a directory is one range scan and paging resumes after a name.
//! - `mounts`: mount id (BE u64) → [`MountRecord`]
//! - `meta`: counters (`next_inode_id`, ...) and the pinned-file set (`pin/` ++ id)
//! - `ttl`: expiry ms (BE u64) ++ inode id → (), scanned in expiry order by the TTL checker
//! - `persist`: inode id → (), files waiting for async persistence
//!
//! Every mutation is a [`Batch`] committed atomically (one RocksDB `WriteBatch`).

use std::path::Path;

use alluvium_common::{Error, Result};
use alluvium_proto::{InodeRecord, MountRecord};
use parking_lot::RwLock;
use prost::Message;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, Direction, IteratorMode, Options,
    ReadOptions, WriteBatch, WriteOptions, DB,
};

const CF_INODES: &str = "inodes";
const CF_EDGES: &str = "edges";
const CF_MOUNTS: &str = "mounts";
const CF_META: &str = "meta";
const CF_TTL: &str = "ttl";
const CF_PERSIST: &str = "persist";
const ALL_CFS: [&str; 6] = [CF_INODES, CF_EDGES, CF_MOUNTS, CF_META, CF_TTL, CF_PERSIST];

const PIN_PREFIX: &[u8] = b"pin/";

/// Shared RocksDB block cache of all column families.
const BLOCK_CACHE_BYTES: usize = 64 << 20;

type Rows = Vec<(Box<[u8]>, Box<[u8]>)>;

/// Persisted counters in the `meta` column family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// The next inode id to hand out (never reused).
    NextInodeId,
    NextMountId,
    Files,
    Directories,
}

impl Counter {
    fn key(self) -> &'static [u8] {
        match self {
            Counter::NextInodeId => b"next_inode_id",
            Counter::NextMountId => b"next_mount_id",
            Counter::Files => b"file_count",
            Counter::Directories => b"directory_count",
        }
    }
}

/// One mutation of a [`Batch`].
#[derive(Debug, Clone)]
pub enum Op {
    PutInode(InodeRecord),
    DeleteInode(u64),
    PutEdge {
        parent: u64,
        name: String,
        child: u64,
    },
    DeleteEdge {
        parent: u64,
        name: String,
    },
    PutMount(MountRecord),
    DeleteMount(u64),
    SetCounter(Counter, u64),
    PutTtl {
        expiry_ms: i64,
        inode: u64,
    },
    DeleteTtl {
        expiry_ms: i64,
        inode: u64,
    },
    PutPersist(u64),
    DeletePersist(u64),
    Pin(u64),
    Unpin(u64),
}

/// A set of mutations applied all or nothing.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub ops: Vec<Op>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn push(&mut self, op: Op) {
        self.ops.push(op);
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    pub fn len(&self) -> usize {
        self.ops.len()
    }
}

/// The metadata store. Implementations must apply each [`Batch`] atomically and make it durable
/// (at least against a crash of the process) before `commit` returns.
pub trait MetaStore: Send + Sync + 'static {
    fn get_inode(&self, id: u64) -> Result<Option<InodeRecord>>;
    fn get_child(&self, parent: u64, name: &str) -> Result<Option<u64>>;
    /// Up to `limit` children of `parent` in name order, after `start_after` when given.
    fn list_children(
        &self,
        parent: u64,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, u64)>>;
    fn mounts(&self) -> Result<Vec<MountRecord>>;
    fn counter(&self, counter: Counter) -> Result<u64>;
    fn pinned(&self) -> Result<Vec<u64>>;
    /// TTL entries expiring at or before `now_ms`, earliest first, at most `limit`.
    fn expired_ttls(&self, now_ms: i64, limit: usize) -> Result<Vec<(i64, u64)>>;
    /// Files waiting for async persistence, in id order after `after`, at most `limit`.
    fn persist_queue(&self, after: u64, limit: usize) -> Result<Vec<u64>>;
    fn commit(&self, batch: Batch) -> Result<()>;
    /// Flushes memtables and syncs the WAL (at shutdown).
    fn flush(&self) -> Result<()>;
}

/// [`MetaStore`] on RocksDB.
pub struct RocksStore {
    // `None` once closed. Readers hold the read side only for one RocksDB call; `close` takes the
    // write side so the database (and its LOCK file) is released even while other `Arc`s remain.
    db: RwLock<Option<DB>>,
    sync: bool,
    dir: String,
}

fn db_err(what: &str, e: rocksdb::Error) -> Error {
    Error::internal(format!("metastore {what}: {e}"))
}

fn decode<M: Message + Default>(what: &str, bytes: &[u8]) -> Result<M> {
    M::decode(bytes).map_err(|e| Error::internal(format!("metastore: corrupt {what} record: {e}")))
}

fn edge_key(parent: u64, name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + name.len());
    k.extend_from_slice(&parent.to_be_bytes());
    k.extend_from_slice(name.as_bytes());
    k
}

fn ttl_key(expiry_ms: i64, inode: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(16);
    k.extend_from_slice(&(expiry_ms.max(0) as u64).to_be_bytes());
    k.extend_from_slice(&inode.to_be_bytes());
    k
}

fn pin_key(id: u64) -> Vec<u8> {
    let mut k = PIN_PREFIX.to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn be_u64(bytes: &[u8]) -> Result<u64> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| Error::internal("metastore: corrupt u64 value"))?;
    Ok(u64::from_be_bytes(arr))
}

impl RocksStore {
    /// Opens (creating) the metastore in `dir`. Fails clearly when another master holds it.
    pub fn open(dir: &Path, sync: bool) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::from(e).context(format!("cannot create metastore dir {}", dir.display()))
        })?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // Path resolution is point lookups (edge, then inode, per component): one shared block
        // cache and bloom filters keep them, and lookups of names that do not exist, cheap.
        let cache =
            Cache::new_lru_cache(BLOCK_CACHE_BYTES).map_err(|e| db_err("block cache", e))?;
        let cfs = ALL_CFS.iter().map(|n| {
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&cache);
            table.set_bloom_filter(10.0, false);
            let mut cf = Options::default();
            cf.set_block_based_table_factory(&table);
            ColumnFamilyDescriptor::new(*n, cf)
        });
        let db = DB::open_cf_descriptors(&opts, dir, cfs).map_err(|e| {
            let msg = e.to_string();
            if msg.contains("lock") || msg.contains("LOCK") {
                Error::failed_precondition(format!(
                    "metastore {} is in use by another master process (RocksDB lock held): {msg}",
                    dir.display()
                ))
            } else {
                Error::internal(format!("cannot open metastore {}: {msg}", dir.display()))
            }
        })?;
        tracing::info!(dir = %dir.display(), sync, "metastore opened");
        Ok(Self {
            db: RwLock::new(Some(db)),
            sync,
            dir: dir.display().to_string(),
        })
    }

    /// Flushes and closes the database, releasing its lock. Later calls fail with UNAVAILABLE.
    pub fn close(&self) -> Result<()> {
        let db = self.db.write().take();
        if let Some(db) = db {
            db.flush_wal(true).map_err(|e| db_err("flush wal", e))?;
            db.flush().map_err(|e| db_err("flush", e))?;
            drop(db);
            tracing::info!(dir = %self.dir, "metastore closed");
        }
        Ok(())
    }

    fn with_db<T>(&self, f: impl FnOnce(&DB) -> Result<T>) -> Result<T> {
        let guard = self.db.read();
        match guard.as_ref() {
            Some(db) => f(db),
            None => Err(Error::unavailable(
                "metastore is closed (master shutting down)",
            )),
        }
    }

    /// Collects up to `limit` entries of `cf` from `start` while `keep(key)` holds.
    fn scan(
        db: &DB,
        cf: &str,
        start: &[u8],
        limit: usize,
        mut keep: impl FnMut(&[u8]) -> bool,
    ) -> Result<Rows> {
        let cf = cf_handle(db, cf)?;
        let mut out = Vec::new();
        let iter = db.iterator_cf_opt(
            cf,
            ReadOptions::default(),
            IteratorMode::From(start, Direction::Forward),
        );
        for item in iter {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(|e| db_err("scan", e))?;
            if !keep(&k) {
                break;
            }
            out.push((k, v));
        }
        Ok(out)
    }
}

fn cf_handle<'a>(db: &'a DB, name: &str) -> Result<&'a rocksdb::ColumnFamily> {
    db.cf_handle(name)
        .ok_or_else(|| Error::internal(format!("metastore: column family {name} missing")))
}

impl MetaStore for RocksStore {
    fn get_inode(&self, id: u64) -> Result<Option<InodeRecord>> {
        self.with_db(|db| {
            let v = db
                .get_pinned_cf(cf_handle(db, CF_INODES)?, id.to_be_bytes())
                .map_err(|e| db_err("read inode", e))?;
            v.map(|v| decode("inode", &v)).transpose()
        })
    }

    fn get_child(&self, parent: u64, name: &str) -> Result<Option<u64>> {
        self.with_db(|db| {
            let v = db
                .get_pinned_cf(cf_handle(db, CF_EDGES)?, edge_key(parent, name))
                .map_err(|e| db_err("read edge", e))?;
            v.map(|v| be_u64(&v)).transpose()
        })
    }

    fn list_children(
        &self,
        parent: u64,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, u64)>> {
        let prefix = parent.to_be_bytes();
        let start = match start_after {
            // The smallest key strictly after `name` is `name ++ \0`.
            Some(name) => {
                let mut k = edge_key(parent, name);
                k.push(0);
                k
            }
            None => prefix.to_vec(),
        };
        self.with_db(|db| {
            let rows = Self::scan(db, CF_EDGES, &start, limit, |k| k.starts_with(&prefix))?;
            rows.into_iter()
                .map(|(k, v)| {
                    let name = String::from_utf8(k[8..].to_vec())
                        .map_err(|_| Error::internal("metastore: non-UTF-8 child name"))?;
                    Ok((name, be_u64(&v)?))
                })
                .collect()
        })
    }

    fn mounts(&self) -> Result<Vec<MountRecord>> {
        self.with_db(|db| {
            Self::scan(db, CF_MOUNTS, &[], usize::MAX, |_| true)?
                .into_iter()
                .map(|(_, v)| decode("mount", &v))
                .collect()
        })
    }

    fn counter(&self, counter: Counter) -> Result<u64> {
        self.with_db(|db| {
            let v = db
                .get_pinned_cf(cf_handle(db, CF_META)?, counter.key())
                .map_err(|e| db_err("read counter", e))?;
            Ok(v.map(|v| be_u64(&v)).transpose()?.unwrap_or(0))
        })
    }

    fn pinned(&self) -> Result<Vec<u64>> {
        self.with_db(|db| {
            Self::scan(db, CF_META, PIN_PREFIX, usize::MAX, |k| {
                k.starts_with(PIN_PREFIX)
            })?
            .into_iter()
            .map(|(k, _)| be_u64(&k[PIN_PREFIX.len()..]))
            .collect()
        })
    }

    fn expired_ttls(&self, now_ms: i64, limit: usize) -> Result<Vec<(i64, u64)>> {
        let now = now_ms.max(0) as u64;
        self.with_db(|db| {
            let rows = Self::scan(db, CF_TTL, &[], limit, |k| {
                k.len() == 16 && k[..8] <= now.to_be_bytes()[..]
            })?;
            rows.into_iter()
                .map(|(k, _)| Ok((be_u64(&k[..8])? as i64, be_u64(&k[8..])?)))
                .collect()
        })
    }

    fn persist_queue(&self, after: u64, limit: usize) -> Result<Vec<u64>> {
        let start = after.saturating_add(1).to_be_bytes();
        self.with_db(|db| {
            Self::scan(db, CF_PERSIST, &start, limit, |_| true)?
                .into_iter()
                .map(|(k, _)| be_u64(&k))
                .collect()
        })
    }

    fn commit(&self, batch: Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.with_db(|db| {
            let mut wb = WriteBatch::default();
            let inodes = cf_handle(db, CF_INODES)?;
            let edges = cf_handle(db, CF_EDGES)?;
            let mounts = cf_handle(db, CF_MOUNTS)?;
            let meta = cf_handle(db, CF_META)?;
            let ttl = cf_handle(db, CF_TTL)?;
            let persist = cf_handle(db, CF_PERSIST)?;
            for op in batch.ops {
                match op {
                    Op::PutInode(r) => wb.put_cf(inodes, r.id.to_be_bytes(), r.encode_to_vec()),
                    Op::DeleteInode(id) => wb.delete_cf(inodes, id.to_be_bytes()),
                    Op::PutEdge {
                        parent,
                        name,
                        child,
                    } => wb.put_cf(edges, edge_key(parent, &name), child.to_be_bytes()),
                    Op::DeleteEdge { parent, name } => wb.delete_cf(edges, edge_key(parent, &name)),
                    Op::PutMount(m) => {
                        wb.put_cf(mounts, m.mount_id.to_be_bytes(), m.encode_to_vec())
                    }
                    Op::DeleteMount(id) => wb.delete_cf(mounts, id.to_be_bytes()),
                    Op::SetCounter(c, v) => wb.put_cf(meta, c.key(), v.to_be_bytes()),
                    Op::PutTtl { expiry_ms, inode } => {
                        wb.put_cf(ttl, ttl_key(expiry_ms, inode), [])
                    }
                    Op::DeleteTtl { expiry_ms, inode } => {
                        wb.delete_cf(ttl, ttl_key(expiry_ms, inode))
                    }
                    Op::PutPersist(id) => wb.put_cf(persist, id.to_be_bytes(), []),
                    Op::DeletePersist(id) => wb.delete_cf(persist, id.to_be_bytes()),
                    Op::Pin(id) => wb.put_cf(meta, pin_key(id), []),
                    Op::Unpin(id) => wb.delete_cf(meta, pin_key(id)),
                }
            }
            let mut wo = WriteOptions::default();
            // The WAL is always written before `write` returns (survives kill -9); `sync` adds
            // an fsync per commit (survives power loss).
            wo.set_sync(self.sync);
            db.write_opt(wb, &wo).map_err(|e| db_err("commit", e))
        })
    }

    fn flush(&self) -> Result<()> {
        self.with_db(|db| {
            db.flush_wal(true).map_err(|e| db_err("flush wal", e))?;
            db.flush().map_err(|e| db_err("flush", e))
        })
    }
}

impl Drop for RocksStore {
    fn drop(&mut self) {
        if let Some(db) = self.db.get_mut().take() {
            // Best effort: an unflushed memtable is still in the WAL.
            let _ = db.flush_wal(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inode(id: u64, name: &str) -> InodeRecord {
        InodeRecord {
            id,
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn batches_apply_atomically_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = RocksStore::open(dir.path(), false).unwrap();
            let mut b = Batch::new();
            b.push(Op::PutInode(inode(5, "a")));
            b.push(Op::PutEdge {
                parent: 1,
                name: "a".into(),
                child: 5,
            });
            b.push(Op::SetCounter(Counter::NextInodeId, 6));
            b.push(Op::PutTtl {
                expiry_ms: 100,
                inode: 5,
            });
            b.push(Op::PutPersist(5));
            b.push(Op::Pin(5));
            s.commit(b).unwrap();
            // Dropped without close or flush: the WAL must carry everything acknowledged.
        }
        let s = RocksStore::open(dir.path(), false).unwrap();
        assert_eq!(s.get_inode(5).unwrap().unwrap().name, "a");
        assert_eq!(s.get_child(1, "a").unwrap(), Some(5));
        assert_eq!(s.counter(Counter::NextInodeId).unwrap(), 6);
        assert_eq!(s.expired_ttls(100, 10).unwrap(), vec![(100, 5)]);
        assert!(s.expired_ttls(99, 10).unwrap().is_empty());
        assert_eq!(s.persist_queue(0, 10).unwrap(), vec![5]);
        assert_eq!(s.pinned().unwrap(), vec![5]);
    }

    #[test]
    fn a_second_opener_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = RocksStore::open(dir.path(), false).unwrap();
        let Err(e) = RocksStore::open(dir.path(), false) else {
            panic!("second open succeeded");
        };
        assert!(e.message.contains("in use by another master"), "{e}");
        s.close().unwrap();
        assert_eq!(
            s.get_inode(1).unwrap_err().code,
            alluvium_common::ErrorCode::Unavailable
        );
        RocksStore::open(dir.path(), false).unwrap();
    }

    #[test]
    fn children_page_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = RocksStore::open(dir.path(), true).unwrap();
        let mut b = Batch::new();
        for (i, n) in ["c", "a", "b", "aa"].iter().enumerate() {
            b.push(Op::PutEdge {
                parent: 7,
                name: (*n).into(),
                child: i as u64 + 10,
            });
        }
        // A neighbour directory must not leak into the listing.
        b.push(Op::PutEdge {
            parent: 8,
            name: "z".into(),
            child: 99,
        });
        s.commit(b).unwrap();
        let names = |v: Vec<(String, u64)>| v.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        assert_eq!(
            names(s.list_children(7, None, 100).unwrap()),
            ["a", "aa", "b", "c"]
        );
        assert_eq!(
            names(s.list_children(7, Some("a"), 2).unwrap()),
            ["aa", "b"]
        );
        assert_eq!(
            names(s.list_children(7, Some("c"), 2).unwrap()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn deletes_in_one_batch_are_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let s = RocksStore::open(dir.path(), false).unwrap();
        let mut b = Batch::new();
        b.push(Op::PutInode(inode(2, "x")));
        b.push(Op::PutInode(inode(3, "y")));
        s.commit(b).unwrap();
        let mut b = Batch::new();
        b.push(Op::DeleteInode(2));
        b.push(Op::PutInode(inode(3, "renamed")));
        s.commit(b).unwrap();
        assert!(s.get_inode(2).unwrap().is_none());
        assert_eq!(s.get_inode(3).unwrap().unwrap().name, "renamed");
    }
}
