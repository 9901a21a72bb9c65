//! [`BlockStore`]: reserve/commit/abort writes, lock and mmap blocks for reading, move and
//! promote, remove, and usage per tier.
//!
//! Concurrency: one `parking_lot` mutex guards the metadata and is never held across file I/O or
//! an `.await`. Changes are planned and applied to the metadata under the lock (space accounting
//! is logical: a planned move counts in its destination at once), then the files are copied or
//! deleted outside it. A block being moved keeps its old file until the copy is complete, and
//! readers wait for the move to finish, so a reader never sees a half-copied file.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use alluvium_common::{ids, time::now_ms, ByteSize, Error, Result};
use alluvium_proto::{BlockReport, TierBlocks, TierUsage};
use bytes::Bytes;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::Notify;

use super::allocator::{shortage_message, Op, Planner};
use super::eviction::EvictionPolicy;
use super::meta::{BlockMeta, Loc, TempBlock};
use super::tier::Tier;
use crate::metrics::WorkerMetrics;

/// How many eviction records `/api/v1/worker` shows.
const RECENT_EVICTIONS: usize = 100;

/// A request to reserve space for a block about to be written.
#[derive(Debug, Clone, Default)]
pub struct Reservation {
    pub session_id: u64,
    pub block_id: u64,
    /// The block's expected size (an upper bound: the block may end shorter).
    pub bytes: u64,
    /// Reserve only this much now and the rest as data arrives ([`BlockStore::grow`]), for
    /// writers whose length is not known up front; `None` reserves `bytes` at once. The block
    /// is still placed where `bytes` could go.
    pub upfront: Option<u64>,
    /// Preferred tier alias; empty = the top tier.
    pub tier: String,
    pub pinned: bool,
    pub durable: bool,
}

/// Where to write a reserved block.
#[derive(Debug, Clone)]
pub struct TempLocation {
    pub path: PathBuf,
    pub tier: String,
    /// Bytes reserved so far.
    pub reserved: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub tier: String,
    pub length: u64,
}

/// Block changes since the last heartbeat.
#[derive(Debug, Clone, Default)]
pub struct Deltas {
    pub added: Vec<BlockReport>,
    pub removed: Vec<u64>,
}

/// One block that left a tier to make room.
#[derive(Debug, Clone, Serialize)]
pub struct EvictionRecord {
    pub block_id: u64,
    pub from: String,
    /// The tier it moved to; `None` when it was dropped.
    pub to: Option<String>,
    pub length: u64,
    pub at_ms: i64,
}

pub(super) struct Inner {
    pub blocks: HashMap<u64, BlockMeta>,
    /// Committed plus reserved bytes per tier and dir.
    pub used: Vec<Vec<u64>>,
    /// Writes in progress by (session, block).
    pub temps: HashMap<(u64, u64), TempBlock>,
    pub pinned_files: HashSet<u64>,
    pub policy: Box<dyn EvictionPolicy>,
    /// Logical time: bumped on every access.
    pub clock: u64,
    added: HashMap<u64, (usize, u64)>,
    removed: HashSet<u64>,
    evictions: VecDeque<EvictionRecord>,
}

impl Inner {
    pub fn is_pinned(&self, id: u64, m: &BlockMeta) -> bool {
        m.pinned_hint || self.pinned_files.contains(&ids::file_id_of(id))
    }

    /// May be moved or dropped now.
    pub fn evictable(&self, id: u64, m: &BlockMeta) -> bool {
        m.lock_count == 0 && !m.moving && !m.pending_remove && !self.is_pinned(id, m)
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn add_used(&mut self, loc: Loc, n: u64) {
        self.used[loc.tier][loc.dir] += n;
    }

    fn sub_used(&mut self, loc: Loc, n: u64) {
        let u = &mut self.used[loc.tier][loc.dir];
        if *u < n {
            tracing::error!(
                tier = loc.tier,
                dir = loc.dir,
                used = *u,
                sub = n,
                "space accounting underflow"
            );
        }
        *u = u.saturating_sub(n);
    }

    fn note_added(&mut self, id: u64, tier: usize, len: u64) {
        self.removed.remove(&id);
        self.added.insert(id, (tier, len));
    }

    fn note_removed(&mut self, id: u64) {
        self.added.remove(&id);
        self.removed.insert(id);
    }

    fn record(&mut self, r: EvictionRecord) {
        if self.evictions.len() == RECENT_EVICTIONS {
            self.evictions.pop_front();
        }
        self.evictions.push_back(r);
    }

    /// Forgets a block whose file is then deleted by the caller.
    fn forget(&mut self, id: u64) -> Option<BlockMeta> {
        let m = self.blocks.remove(&id)?;
        self.sub_used(m.loc, m.length);
        self.policy.on_remove(id);
        self.note_removed(id);
        Some(m)
    }
}

/// File work decided under the lock, done after it.
enum Exec {
    Delete(PathBuf),
    Move {
        block: u64,
        len: u64,
        from: Loc,
        to: Loc,
        promote: bool,
    },
}

/// The worker's tiered block store. Share it as `Arc<BlockStore>`.
pub struct BlockStore {
    tiers: Vec<Tier>,
    inner: Mutex<Inner>,
    /// Woken when a move finishes (readers of a moving block wait for it).
    moved: Notify,
    metrics: WorkerMetrics,
}

impl BlockStore {
    /// Opens the store: creates the dirs, deletes leftovers of interrupted writes and re-adopts
    /// the block files found (as non-durable until the master says otherwise).
    pub fn open(
        tiers: Vec<Tier>,
        policy: Box<dyn EvictionPolicy>,
        metrics: WorkerMetrics,
    ) -> Result<Arc<Self>> {
        let mut inner = Inner {
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

    fn alias(&self, t: usize) -> &str {
        &self.tiers[t].alias
    }

    /// Reserves space for a new block and creates its empty temporary file. The space comes from
    /// the requested tier (making room there by eviction), else the next lower tier that has or
    /// can make room. A pinned block without an explicit tier only goes to the top tier.
    pub async fn reserve(&self, r: &Reservation) -> Result<TempLocation> {
        let first = self.tier_index(&r.tier)?;
        let key = (r.session_id, r.block_id);
        let (loc, reserved, execs) = {
            let mut inner = self.inner.lock();
            if inner.blocks.contains_key(&r.block_id) {
                return Err(Error::already_exists(format!(
                    "block {} is already cached on this worker",
                    r.block_id
                )));
            }
            if inner.temps.keys().any(|&(_, b)| b == r.block_id) {
                return Err(Error::already_exists(format!(
                    "block {} is already being written on this worker",
                    r.block_id
                )));
            }
            let last = if r.pinned && r.tier.is_empty() {
                1
            } else {
                self.tiers.len()
            };
            let reserve_now = r.upfront.map_or(r.bytes, |u| u.min(r.bytes));
            let mut chosen = None;
            let mut why = Vec::new();
            // First pass: the whole request, fastest tier first. Second pass (only when no tier
            // can take it whole): the request is an upper bound (the block size) and the block
            // may end much shorter, so reserve what one dir can hold; the reservation shrinks
            // at commit, or grows within the dir. Small files then fit tiers smaller than a block.
            for capped in [false, true] {
                why.clear();
                for t in first..last {
                    let biggest = self.tiers[t]
                        .dirs
                        .iter()
                        .map(|d| d.capacity)
                        .max()
                        .unwrap_or(0);
                    // Reserved now, and what the chosen dir must be able to hold.
                    let (now, placed_for) = match (capped, r.upfront) {
                        (false, _) => (reserve_now, r.bytes),
                        (true, None) => {
                            let w = r.bytes.min(biggest).max(1);
                            (w, w)
                        }
                        (true, Some(_)) => (reserve_now, reserve_now),
                    };
                    let mut planner = Planner::new(&inner, &self.tiers, None);
                    if let Some(d) = planner.place(t, placed_for, now) {
                        chosen = Some((Loc { tier: t, dir: d }, planner.into_ops(), now));
                        break;
                    }
                    why.push(shortage_message(&inner, &self.tiers, t, placed_for));
                }
                if chosen.is_some() {
                    break;
                }
            }
            let Some((loc, ops, reserved)) = chosen else {
                let msg = why.join("; ");
                tracing::warn!(block_id = r.block_id, "{msg}");
                return Err(Error::resource_exhausted(msg));
            };
            let execs = self.apply(&mut inner, ops);
            inner.add_used(loc, reserved);
            inner.temps.insert(
                key,
                TempBlock {
                    loc,
                    reserved,
                    pinned: r.pinned,
                    durable: r.durable,
                    created: Instant::now(),
                    committing: false,
                },
            );
            (loc, reserved, execs)
        };
        self.execute(execs).await;
        let path = self.tiers[loc.tier].dirs[loc.dir].tmp_path(r.session_id, r.block_id);
        if let Err(e) = tokio::fs::File::create(&path).await {
            self.release_temp(key);
            return Err(Error::from(e).context(format!("cannot create {}", path.display())));
        }
        tracing::debug!(
            block_id = r.block_id,
            session = r.session_id,
            tier = self.alias(loc.tier),
            bytes = reserved,
            "reserved"
        );
        Ok(TempLocation {
            path,
            tier: self.alias(loc.tier).to_string(),
            reserved,
        })
    }

    /// Grows the reservation of a block being written to `total` bytes (in its dir, evicting
    /// there if needed).
    pub async fn grow(&self, session_id: u64, block_id: u64, total: u64) -> Result<()> {
        let execs = {
            let mut inner = self.inner.lock();
            let Some(tb) = inner.temps.get(&(session_id, block_id)) else {
                return Err(no_write(session_id, block_id));
            };
            if total <= tb.reserved {
                return Ok(());
            }
            let (loc, extra) = (tb.loc, total - tb.reserved);
            let dir_capacity = self.tiers[loc.tier].dirs[loc.dir].capacity;
            if total > dir_capacity {
                return Err(Error::resource_exhausted(format!(
                    "block {block_id} grew to {} in tier {}: larger than the biggest dir of the tier ({})",
                    ByteSize::human(total),
                    self.alias(loc.tier),
                    ByteSize::human(dir_capacity)
                )));
            }
            let mut planner = Planner::new(&inner, &self.tiers, None);
            if !planner.free_in_dir(loc.tier, loc.dir, extra) {
                let msg = shortage_message(&inner, &self.tiers, loc.tier, extra);
                return Err(Error::resource_exhausted(format!(
                    "block {block_id} grew past its reservation: {msg}"
                )));
            }
            let ops = planner.into_ops();
            let execs = self.apply(&mut inner, ops);
            inner.add_used(loc, extra);
            if let Some(tb) = inner.temps.get_mut(&(session_id, block_id)) {
                tb.reserved = total;
            }
            execs
        };
        self.execute(execs).await;
        Ok(())
    }

    /// Makes a written block visible: checks the file holds `length` bytes, moves it into
    /// `blocks/` and releases the unused part of the reservation.
    pub async fn commit(&self, session_id: u64, block_id: u64, length: u64) -> Result<Committed> {
        let key = (session_id, block_id);
        let (loc, reserved) = {
            let mut inner = self.inner.lock();
            let Some(tb) = inner.temps.get_mut(&key) else {
                return Err(no_write(session_id, block_id));
            };
            if tb.committing {
                return Err(Error::failed_precondition(format!(
                    "block {block_id} is already being committed"
                )));
            }
            tb.committing = true;
            (tb.loc, tb.reserved)
        };
        let dir = &self.tiers[loc.tier].dirs[loc.dir];
        let (tmp, dst) = (dir.tmp_path(session_id, block_id), dir.block_path(block_id));
        let result = async {
            let actual = tokio::fs::metadata(&tmp)
                .await
                .map_err(|e| {
                    Error::from(e).context(format!("block {block_id}: {}", tmp.display()))
                })?
                .len();
            if actual != length {
                return Err(Error::invalid_argument(format!(
                    "block {block_id}: the written file {} holds {actual} bytes, not {length}",
                    tmp.display()
                )));
            }
            if length > reserved {
                self.grow(session_id, block_id, length).await?;
            }
            tokio::fs::rename(&tmp, &dst).await.map_err(|e| {
                Error::from(e).context(format!(
                    "block {block_id}: cannot move into {}",
                    dst.display()
                ))
            })
        }
        .await;
        if let Err(e) = result {
            if let Some(tb) = self.inner.lock().temps.get_mut(&key) {
                tb.committing = false;
            }
            return Err(e);
        }
        {
            let mut inner = self.inner.lock();
            let (pinned, durable) = match inner.temps.remove(&key) {
                Some(t) => {
                    inner.sub_used(loc, t.reserved);
                    (t.pinned, t.durable)
                }
                None => (false, false),
            };
            inner.add_used(loc, length);
            let now = inner.tick();
            inner.policy.on_access(block_id, now);
            inner.blocks.insert(
                block_id,
                BlockMeta {
                    loc,
                    length,
                    durable,
                    pinned_hint: pinned,
                    lock_count: 0,
                    moving: false,
                    pending_remove: false,
                    access_count: 0,
                    last_access: now,
                },
            );
        }
        self.metrics.written(self.alias(loc.tier), length);
        tracing::debug!(block_id, tier = self.alias(loc.tier), length, "committed");
        Ok(Committed {
            tier: self.alias(loc.tier).to_string(),
            length,
        })
    }

    /// Drops a write in progress and its file. Unknown writes are ignored (returns false).
    pub async fn abort(&self, session_id: u64, block_id: u64) -> bool {
        let Some(loc) = self.release_temp((session_id, block_id)) else {
            return false;
        };
        let path = self.tiers[loc.tier].dirs[loc.dir].tmp_path(session_id, block_id);
        delete_file(path).await;
        true
    }

    fn release_temp(&self, key: (u64, u64)) -> Option<Loc> {
        let mut inner = self.inner.lock();
        // A commit in progress owns its reservation: it either lands or is released by the
        // committer's own abort after it failed.
        if inner.temps.get(&key)?.committing {
            return None;
        }
        let tb = inner.temps.remove(&key)?;
        inner.sub_used(tb.loc, tb.reserved);
        Some(tb.loc)
    }

    /// Writes in progress older than `age` (short-circuit writers that went away).
    pub fn stale_writes(&self, age: std::time::Duration) -> Vec<(u64, u64)> {
        let inner = self.inner.lock();
        inner
            .temps
            .iter()
            .filter(|(_, t)| !t.committing && t.created.elapsed() > age)
            .map(|(k, _)| *k)
            .collect()
    }

    /// Locks a block for reading: it is not moved or dropped until the lock is dropped. Counts
    /// as an access for the eviction policy. Waits while the block is being moved.
    pub async fn lock(self: &Arc<Self>, block_id: u64) -> Result<BlockLock> {
        loop {
            let notified = self.moved.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut inner = self.inner.lock();
                let now = inner.tick();
                let Some(m) = inner.blocks.get_mut(&block_id) else {
                    return Err(not_cached(block_id));
                };
                if m.pending_remove {
                    return Err(not_cached(block_id));
                }
                if !m.moving {
                    m.lock_count += 1;
                    m.access_count += 1;
                    m.last_access = now;
                    let (loc, length) = (m.loc, m.length);
                    inner.policy.on_access(block_id, now);
                    return Ok(BlockLock {
                        store: self.clone(),
                        block_id,
                        length,
                        tier: self.alias(loc.tier).to_string(),
                        path: self.tiers[loc.tier].dirs[loc.dir].block_path(block_id),
                    });
                }
            }
            notified.await;
        }
    }

    fn unlock(&self, block_id: u64) {
        let path = {
            let mut inner = self.inner.lock();
            let Some(m) = inner.blocks.get_mut(&block_id) else {
                return;
            };
            m.lock_count = m.lock_count.saturating_sub(1);
            if m.lock_count > 0 || !m.pending_remove || m.moving {
                return;
            }
            let Some(m) = inner.forget(block_id) else {
                return;
            };
            self.tiers[m.loc.tier].dirs[m.loc.dir].block_path(block_id)
        };
        // Unlink is quick and this runs in Drop, which cannot await.
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(block_id, path = %path.display(), error = %e, "cannot delete removed block");
        }
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

    /// Moves a block of a lower tier to the top tier, making room there. Best effort: returns
    /// false (and leaves the block where it is) when it is locked, moving, or room cannot be made.
    pub async fn promote(&self, block_id: u64) -> Result<bool> {
        let execs = {
            let mut inner = self.inner.lock();
            let Some(m) = inner.blocks.get(&block_id) else {
                return Err(not_cached(block_id));
            };
            if m.loc.tier == 0 || m.lock_count > 0 || m.moving || m.pending_remove {
                return Ok(false);
            }
            let (from, len) = (m.loc, m.length);
            let mut planner = Planner::new(&inner, &self.tiers, Some(block_id));
            let Some(d) = planner.room_in_tier(0, len) else {
                tracing::debug!(block_id, "no room to promote");
                return Ok(false);
            };
            let mut ops = planner.into_ops();
            ops.push(Op::Move {
                block: block_id,
                len,
                from,
                to: Loc { tier: 0, dir: d },
            });
            let mut execs = self.apply(&mut inner, ops);
            if let Some(Exec::Move { promote, .. }) = execs.last_mut() {
                *promote = true;
            }
            execs
        };
        Ok(self.execute(execs).await)
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
        delete_file(path).await;
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

    /// Capacity, usage and block count of every tier.
    pub fn usage(&self) -> Vec<TierUsage> {
        let inner = self.inner.lock();
        let mut counts = vec![0u64; self.tiers.len()];
        for m in inner.blocks.values() {
            counts[m.loc.tier] += 1;
        }
        self.tiers
            .iter()
            .enumerate()
            .map(|(t, tier)| TierUsage {
                alias: tier.alias.clone(),
                ordinal: t as u32,
                capacity_bytes: tier.capacity(),
                used_bytes: inner.used[t].iter().sum(),
                block_count: counts[t],
            })
            .collect()
    }

    /// Used bytes per dir of every tier.
    pub fn dir_usage(&self) -> Vec<Vec<u64>> {
        self.inner.lock().used.clone()
    }

    pub fn block_count(&self) -> u64 {
        self.inner.lock().blocks.len() as u64
    }

    /// Every block by tier and the non-durable ones, for a full report (registration). Resets
    /// the deltas, which the full report supersedes.
    pub fn report(&self) -> (Vec<TierBlocks>, Vec<u64>) {
        let mut inner = self.inner.lock();
        inner.added.clear();
        inner.removed.clear();
        let mut by_tier: Vec<Vec<u64>> = vec![Vec::new(); self.tiers.len()];
        let mut non_durable = Vec::new();
        for (&id, m) in &inner.blocks {
            by_tier[m.loc.tier].push(id);
            if !m.durable {
                non_durable.push(id);
            }
        }
        non_durable.sort_unstable();
        let blocks = by_tier
            .into_iter()
            .enumerate()
            .map(|(t, mut ids)| {
                ids.sort_unstable();
                TierBlocks {
                    tier: self.alias(t).to_string(),
                    block_ids: ids,
                }
            })
            .collect();
        (blocks, non_durable)
    }

    pub fn non_durable_ids(&self) -> Vec<u64> {
        let inner = self.inner.lock();
        let mut ids: Vec<u64> = inner
            .blocks
            .iter()
            .filter(|(_, m)| !m.durable)
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Takes the changes since the last heartbeat.
    pub fn take_deltas(&self) -> Deltas {
        let mut inner = self.inner.lock();
        let added = std::mem::take(&mut inner.added);
        let removed = std::mem::take(&mut inner.removed);
        Deltas {
            added: added
                .into_iter()
                .map(|(id, (t, len))| BlockReport {
                    block_id: id,
                    tier: self.alias(t).to_string(),
                    length: len,
                })
                .collect(),
            removed: removed.into_iter().collect(),
        }
    }

    /// Puts back deltas a failed heartbeat did not deliver (newer changes win).
    pub fn restore_deltas(&self, d: Deltas) {
        let mut inner = self.inner.lock();
        for r in d.added {
            if inner.added.contains_key(&r.block_id) || inner.removed.contains(&r.block_id) {
                continue;
            }
            if let Some(m) = inner.blocks.get(&r.block_id) {
                let (t, len) = (m.loc.tier, m.length);
                inner.added.insert(r.block_id, (t, len));
            }
        }
        for id in d.removed {
            if !inner.blocks.contains_key(&id) && !inner.added.contains_key(&id) {
                inner.removed.insert(id);
            }
        }
    }

    /// Reports a block in the next heartbeat (its CommitBlock call failed).
    pub fn report_in_heartbeat(&self, block_id: u64) {
        let mut inner = self.inner.lock();
        if let Some(m) = inner.blocks.get(&block_id) {
            let (t, len) = (m.loc.tier, m.length);
            inner.note_added(block_id, t, len);
        }
    }

    /// Moves or drops blocks of every dir above its tier's high watermark until it is under the
    /// low one (same rules as allocation). Returns how many blocks were moved or dropped.
    pub async fn free_above_watermarks(&self) -> usize {
        let mut done = 0;
        for (t, tier) in self.tiers.iter().enumerate() {
            for (d, dir) in tier.dirs.iter().enumerate() {
                let execs = {
                    let mut inner = self.inner.lock();
                    let used = inner.used[t][d];
                    let high = (dir.capacity as f64 * tier.high_watermark) as u64;
                    if used <= high {
                        continue;
                    }
                    let low = (dir.capacity as f64 * tier.low_watermark) as u64;
                    // Free bytes wanted so that used <= low.
                    let want = dir.capacity - low.min(dir.capacity);
                    let mut planner = Planner::new(&inner, &self.tiers, None);
                    let reached = planner.free_in_dir(t, d, want);
                    let ops = planner.into_ops();
                    if !reached {
                        // Allocation failures say why at warn level; this repeats every round.
                        tracing::debug!(tier = %tier.alias, dir = %dir.path.display(), used, "above the high watermark and cannot get under the low one");
                    }
                    self.apply(&mut inner, ops)
                };
                done += execs.len();
                self.execute(execs).await;
            }
        }
        done
    }

    pub fn recent_evictions(&self) -> Vec<EvictionRecord> {
        self.inner.lock().evictions.iter().cloned().collect()
    }

    /// Applies planned ops to the metadata (under the lock) and returns the file work.
    fn apply(&self, inner: &mut Inner, ops: Vec<Op>) -> Vec<Exec> {
        let mut execs = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                Op::Drop { block, len, at } => {
                    if inner.forget(block).is_none() {
                        continue;
                    }
                    inner.record(EvictionRecord {
                        block_id: block,
                        from: self.alias(at.tier).to_string(),
                        to: None,
                        length: len,
                        at_ms: now_ms(),
                    });
                    self.metrics.evicted(self.alias(at.tier));
                    tracing::debug!(
                        block_id = block,
                        tier = self.alias(at.tier),
                        "dropping block"
                    );
                    execs.push(Exec::Delete(
                        self.tiers[at.tier].dirs[at.dir].block_path(block),
                    ));
                }
                Op::Move {
                    block,
                    len,
                    from,
                    to,
                } => {
                    let Some(m) = inner.blocks.get_mut(&block) else {
                        continue;
                    };
                    m.moving = true;
                    inner.sub_used(from, len);
                    inner.add_used(to, len);
                    execs.push(Exec::Move {
                        block,
                        len,
                        from,
                        to,
                        promote: false,
                    });
                }
            }
        }
        execs
    }

    /// Does the file work of applied ops, in order (lower tiers first, so space is freed before
    /// it is filled). Returns whether every move succeeded.
    async fn execute(&self, execs: Vec<Exec>) -> bool {
        let mut ok = true;
        for e in execs {
            match e {
                Exec::Delete(path) => delete_file(path).await,
                Exec::Move {
                    block,
                    len,
                    from,
                    to,
                    promote,
                } => ok &= self.finish_move(block, len, from, to, promote).await,
            }
        }
        ok
    }

    async fn finish_move(&self, block: u64, len: u64, from: Loc, to: Loc, promote: bool) -> bool {
        let src = self.tiers[from.tier].dirs[from.dir].block_path(block);
        let dst = self.tiers[to.tier].dirs[to.dir].block_path(block);
        // Same filesystem: a hard link is instant and leaves the old name valid until the switch.
        let copied = match tokio::fs::hard_link(&src, &dst).await {
            Ok(()) => Ok(len),
            Err(_) => tokio::fs::copy(&src, &dst).await,
        };
        let (from_alias, to_alias) = (self.alias(from.tier), self.alias(to.tier));
        let (delete, ok) = {
            let mut inner = self.inner.lock();
            let Some(m) = inner.blocks.get_mut(&block) else {
                return false;
            };
            m.moving = false;
            match &copied {
                Ok(_) => {
                    m.loc = to;
                    let remove_now = m.pending_remove && m.lock_count == 0;
                    inner.note_added(block, to.tier, len);
                    if !promote {
                        inner.record(EvictionRecord {
                            block_id: block,
                            from: from_alias.to_string(),
                            to: Some(to_alias.to_string()),
                            length: len,
                            at_ms: now_ms(),
                        });
                    }
                    let mut delete = vec![src.clone()];
                    if remove_now && inner.forget(block).is_some() {
                        delete.push(dst.clone());
                    }
                    (delete, true)
                }
                Err(_) => {
                    inner.sub_used(to, len);
                    inner.add_used(from, len);
                    let mut delete = vec![dst.clone()];
                    if removable_now(&inner, block) && inner.forget(block).is_some() {
                        delete.push(src.clone());
                    }
                    (delete, false)
                }
            }
        };
        self.moved.notify_waiters();
        match copied {
            Ok(_) if promote => {
                self.metrics.promoted();
                tracing::debug!(block_id = block, from = from_alias, "promoted");
            }
            Ok(_) => {
                self.metrics.moved(from_alias, to_alias);
                tracing::debug!(block_id = block, from = from_alias, to = to_alias, "moved");
            }
            Err(ref e) => {
                tracing::warn!(block_id = block, from = %src.display(), to = %dst.display(), error = %e, "moving a block failed; it stays where it was")
            }
        }
        for p in delete {
            delete_file(p).await;
        }
        ok
    }
}

/// Removal was asked while the block was busy, and nothing holds it any more.
fn removable_now(inner: &Inner, block: u64) -> bool {
    inner
        .blocks
        .get(&block)
        .is_some_and(|m| m.pending_remove && m.lock_count == 0)
}

async fn delete_file(path: PathBuf) {
    match tokio::fs::remove_file(&path).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot delete block file"),
    }
}

fn not_cached(block_id: u64) -> Error {
    Error::not_found(format!("block {block_id} is not cached on this worker"))
}

fn no_write(session_id: u64, block_id: u64) -> Error {
    Error::not_found(format!(
        "block {block_id} has no write in progress for session {session_id}"
    ))
}

/// A read lock on a cached block: while it lives, the block file stays where `path` says.
pub struct BlockLock {
    store: Arc<BlockStore>,
    pub block_id: u64,
    pub length: u64,
    pub tier: String,
    pub path: PathBuf,
}

impl std::fmt::Debug for BlockLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockLock")
            .field("block_id", &self.block_id)
            .field("tier", &self.tier)
            .finish()
    }
}

impl Drop for BlockLock {
    fn drop(&mut self) {
        self.store.unlock(self.block_id);
    }
}

/// A mapping that keeps its block locked for as long as any `Bytes` slice of it lives.
struct Mapped {
    map: memmap2::Mmap,
    _lock: BlockLock,
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl BlockLock {
    /// Bytes `offset..offset + len` of the block, backed by an mmap of its file, with the page
    /// tables of that range filled up front (MADV_POPULATE_READ): a reader that streams the range
    /// then takes no page fault per 4 KiB (on a 1 GiB read, 262,144 faults that cost more than
    /// the copy). The range is checked by the caller; advice that fails (kernels before 5.14)
    /// only costs the faults.
    pub fn map_range(self, offset: u64, len: u64) -> Result<Bytes> {
        let block_id = self.block_id;
        let whole = self.map_with(|map| {
            let page = 4096usize;
            let start = (offset as usize) / page * page;
            let end = ((offset + len) as usize).min(map.len());
            if end > start {
                if let Err(e) = map.advise_range(memmap2::Advice::PopulateRead, start, end - start)
                {
                    tracing::debug!(block_id, error = %e, "MADV_POPULATE_READ failed");
                }
            }
        })?;
        Ok(whole.slice(offset as usize..(offset + len) as usize))
    }

    /// The whole block as `Bytes` backed by an mmap of its file: slicing it copies nothing, and
    /// the block stays locked until every slice is dropped.
    pub fn map(self) -> Result<Bytes> {
        self.map_with(|_| {})
    }

    fn map_with(self, prepare: impl FnOnce(&memmap2::Mmap)) -> Result<Bytes> {
        if self.length == 0 {
            return Ok(Bytes::new());
        }
        let file = std::fs::File::open(&self.path).map_err(|e| {
            Error::from(e).context(format!("block {}: {}", self.block_id, self.path.display()))
        })?;
        // SAFETY: a committed block file is never written again: it is only renamed into place
        // or unlinked, and pages of an unlinked file stay valid for existing mappings.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| {
            Error::from(e).context(format!(
                "block {}: cannot mmap {}",
                self.block_id,
                self.path.display()
            ))
        })?;
        if map.len() as u64 != self.length {
            return Err(Error::internal(format!(
                "block {}: file {} holds {} bytes, expected {}",
                self.block_id,
                self.path.display(),
                map.len(),
                self.length
            )));
        }
        prepare(&map);
        Ok(Bytes::from_owner(Mapped { map, _lock: self }))
    }
}
