//! [`BlockStore`]: reserve/commit/abort writes, lock and mmap blocks for reading, move and
//! promote, remove, and usage per tier.
//!
//! Concurrency: one `parking_lot` mutex guards the metadata and is never held across file I/O or
//! an `.await`. Changes are planned and applied to the metadata under the lock (space accounting
//! is logical: a planned move counts in its destination at once), then the files are copied or
//! deleted outside it. A block being moved keeps its old file until the copy is complete, and
//! readers wait for the move to finish, so a reader never sees a half-copied file.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use alluvium_common::{ids, Error, Result};
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::dir::delete_block_file;
use super::eviction::policy::EvictionPolicy;
use super::meta::{BlockMeta, Loc};
use super::state::State;
use super::tier::Tier;
use crate::metrics::WorkerMetrics;

/// The worker's tiered block store. Share it as `Arc<BlockStore>`.
pub struct BlockStore {
    pub(super) tiers: Vec<Tier>,
    pub(super) inner: Mutex<State>,
    /// Woken when a move finishes (readers of a moving block wait for it).
    pub(super) moved: Notify,
    pub(super) metrics: WorkerMetrics,
}

impl BlockStore {
    /// Opens the store: creates the dirs, deletes leftovers of interrupted writes and re-adopts
    /// the block files found (as non-durable until the master says otherwise).
    pub fn open(
        tiers: Vec<Tier>,
        policy: Box<dyn EvictionPolicy>,
        metrics: WorkerMetrics,
    ) -> Result<Arc<Self>> {
        let mut inner = State {
            blocks: HashMap::new(),
            used: tiers.iter().map(|t| vec![0; t.dirs.len()]).collect(),
            temps: HashMap::new(),
            pinned_files: HashSet::new(),
            policy,
            clock: 0,
            added: HashMap::new(),
            removed: HashSet::new(),
            evictions: VecDeque::new(),
        };
        for (t, tier) in tiers.iter().enumerate() {
            for (d, dir) in tier.dirs.iter().enumerate() {
                for (id, len) in dir.scan()? {
                    if inner.blocks.contains_key(&id) {
                        // A crash during a move leaves two copies: keep the faster one.
                        tracing::warn!(block_id = id, dir = %dir.path.display(), "dropping a duplicate block file");
                        let _ = std::fs::remove_file(dir.block_path(id));
                        continue;
                    }
                    let loc = Loc { tier: t, dir: d };
                    let now = inner.tick();
                    inner.policy.on_access(id, now);
                    inner.add_used(loc, len);
                    inner.blocks.insert(
                        id,
                        BlockMeta {
                            loc,
                            length: len,
                            durable: false,
                            pinned_hint: false,
                            lock_count: 0,
                            moving: false,
                            pending_remove: false,
                            access_count: 0,
                            last_access: now,
                        },
                    );
                }
                tracing::info!(
                    tier = %tier.alias,
                    dir = %dir.path.display(),
                    capacity = dir.capacity,
                    used = inner.used[t][d],
                    policy = inner.policy.name(),
                    "block store dir ready"
                );
            }
        }
        Ok(Arc::new(Self {
            tiers,
            inner: Mutex::new(inner),
            moved: Notify::new(),
            metrics,
        }))
    }

    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    /// The index of tier `alias` (case-insensitive); empty = the top tier.
    pub fn tier_index(&self, alias: &str) -> Result<usize> {
        if alias.is_empty() {
            return Ok(0);
        }
        self.tiers
            .iter()
            .position(|t| t.alias.eq_ignore_ascii_case(alias))
            .ok_or_else(|| {
                let known: Vec<&str> = self.tiers.iter().map(|t| t.alias.as_str()).collect();
                Error::invalid_argument(format!(
                    "unknown tier '{alias}' (this worker has {})",
                    known.join(", ")
                ))
            })
    }

    pub(super) fn alias(&self, t: usize) -> &str {
        &self.tiers[t].alias
    }

    /// The tier alias and length of a cached block.
    pub fn info(&self, block_id: u64) -> Option<(String, u64)> {
        let inner = self.inner.lock();
        inner
            .blocks
            .get(&block_id)
            .filter(|m| !m.pending_remove)
            .map(|m| (self.alias(m.loc.tier).to_string(), m.length))
    }

    pub fn contains(&self, block_id: u64) -> bool {
        self.info(block_id).is_some()
    }

    /// Removes a block (file deleted or freed). A locked or moving block goes when released.
    pub async fn remove(&self, block_id: u64) -> bool {
        let path = {
            let mut inner = self.inner.lock();
            let Some(m) = inner.blocks.get_mut(&block_id) else {
                return false;
            };
            if m.lock_count > 0 || m.moving {
                m.pending_remove = true;
                return true;
            }
            let Some(m) = inner.forget(block_id) else {
                return false;
            };
            self.tiers[m.loc.tier].dirs[m.loc.dir].block_path(block_id)
        };
        delete_block_file(path).await;
        true
    }

    /// The master says these blocks are in a UFS: they may be dropped from the last tier.
    pub fn mark_durable(&self, block_ids: &[u64]) {
        let mut inner = self.inner.lock();
        for id in block_ids {
            if let Some(m) = inner.blocks.get_mut(id) {
                m.durable = true;
            }
        }
    }

    /// Replaces the set of pinned files (the master's view wins over writers' hints). Returns
    /// the pinned blocks that are not in the top tier, to promote.
    pub fn set_pinned_files(&self, file_ids: impl IntoIterator<Item = u64>) -> Vec<u64> {
        let mut inner = self.inner.lock();
        inner.pinned_files = file_ids.into_iter().collect();
        let mut lower = Vec::new();
        let pinned = std::mem::take(&mut inner.pinned_files);
        for (&id, m) in inner.blocks.iter_mut() {
            m.pinned_hint = false;
            if m.loc.tier > 0 && pinned.contains(&ids::file_id_of(id)) {
                lower.push(id);
            }
        }
        inner.pinned_files = pinned;
        lower
    }
}
