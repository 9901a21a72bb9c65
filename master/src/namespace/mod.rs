//! The namespace: files and directories as inodes in the metastore, and every operation on them.
//!
//! Each mutation is a read-check-write under one lock ([`Tx`]), committed as one atomic batch.
//! UFS I/O (creating, deleting, renaming the durable copy; metadata sync) happens outside the
//! lock: the operation checks, releases the lock, does the I/O, then checks again and commits.

use std::sync::Arc;
use std::time::Duration;

use alluvium_common::blocking::blocking;
use alluvium_common::config::MasterConfig;
use alluvium_common::time::now_ms;
use alluvium_common::{Error, ErrorCode, Result};
use alluvium_proto::{MountRecord, PersistenceState};
use alluvium_ufs::{normalize_uri, Ufs, UfsUri};
use parking_lot::Mutex;

use crate::block_master::BlockMaster;
use crate::inode::{self, DEFAULT_DIR_MODE, ROOT_ID};
use crate::metastore::{Counter, MetaStore, Op};
use crate::metrics::Metrics;
use crate::mount_table::{Mount, MountTable, ROOT_MOUNT_ID};
use crate::permission::{Checker, SuperUsers};
use crate::publish_fence::PublishFence;
use crate::tx::{NsState, Tx};

mod attr;
mod consistency;
mod create;
mod lookup;
mod mount;
mod persist;
mod read;
mod remove;
mod rename;
mod sync;

pub(crate) use lookup::{walk, Walk};

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
        Ufs::open(&uri.to_string(), &config.root_ufs_options)?.create_root()?;
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

    /// Takes the mutation lock. Its holder may be waiting for a WAL sync, so a contended lock is
    /// waited for off the runtime's task queue.
    pub(crate) fn tx(&self) -> Tx<'_> {
        let guard = match self.state.try_lock() {
            Some(g) => g,
            None => blocking(|| self.state.lock()),
        };
        Tx::new(&*self.store, guard)
    }

    /// Commits (a RocksDB write, with an fsync when `master.metastore_sync` is on, hence
    /// [`blocking`]) and tells the block master about dropped blocks and pins.
    pub(crate) fn commit(&self, tx: Tx<'_>) -> Result<()> {
        let done = blocking(|| tx.commit())?;
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
}

/// Whether an error only means "not there".
pub(crate) fn is_not_found(e: &Error) -> bool {
    e.code == ErrorCode::NotFound
}

#[cfg(test)]
mod tests;
