//! Writing a block: reserve room (evicting if needed), grow the reservation, commit or abort.

use std::path::PathBuf;
use std::time::Instant;

use alluvium_common::{ByteSize, Error, Result};

use super::block_store::BlockStore;
use super::dir::delete_block_file;
use super::eviction::planner::{shortage_message, Planner};
use super::meta::{BlockMeta, Loc, TempBlock};
use super::state::no_write;

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

impl BlockStore {
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
        delete_block_file(path).await;
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
}
