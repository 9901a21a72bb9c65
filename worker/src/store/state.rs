//! The store's metadata under its one lock: blocks and where they are, bytes used per dir,
//! writes in progress, pins, the eviction policy's clock, heartbeat deltas and recent evictions.

use std::collections::{HashMap, HashSet, VecDeque};

use alluvium_common::{ids, Error};
use serde::Serialize;

use super::eviction::policy::EvictionPolicy;
use super::meta::{BlockMeta, Loc, TempBlock};

/// How many eviction records `/api/v1/worker` shows.
const RECENT_EVICTIONS: usize = 100;

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

pub(super) struct State {
    pub blocks: HashMap<u64, BlockMeta>,
    /// Committed plus reserved bytes per tier and dir.
    pub used: Vec<Vec<u64>>,
    /// Writes in progress by (session, block).
    pub temps: HashMap<(u64, u64), TempBlock>,
    pub pinned_files: HashSet<u64>,
    pub policy: Box<dyn EvictionPolicy>,
    /// Logical time: bumped on every access.
    pub clock: u64,
    /// Blocks added since the last heartbeat: (tier, length).
    pub added: HashMap<u64, (usize, u64)>,
    /// Blocks removed since the last heartbeat.
    pub removed: HashSet<u64>,
    /// The last [`RECENT_EVICTIONS`] evictions, newest last.
    pub evictions: VecDeque<EvictionRecord>,
}

impl State {
    pub(super) fn is_pinned(&self, id: u64, m: &BlockMeta) -> bool {
        m.pinned_hint || self.pinned_files.contains(&ids::file_id_of(id))
    }

    /// May be moved or dropped now.
    pub(super) fn evictable(&self, id: u64, m: &BlockMeta) -> bool {
        m.lock_count == 0 && !m.moving && !m.pending_remove && !self.is_pinned(id, m)
    }

    pub(super) fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    pub(super) fn add_used(&mut self, loc: Loc, n: u64) {
        self.used[loc.tier][loc.dir] += n;
    }

    pub(super) fn sub_used(&mut self, loc: Loc, n: u64) {
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

    pub(super) fn note_added(&mut self, id: u64, tier: usize, len: u64) {
        self.removed.remove(&id);
        self.added.insert(id, (tier, len));
    }

    pub(super) fn note_removed(&mut self, id: u64) {
        self.added.remove(&id);
        self.removed.insert(id);
    }

    pub(super) fn record(&mut self, r: EvictionRecord) {
        if self.evictions.len() == RECENT_EVICTIONS {
            self.evictions.pop_front();
        }
        self.evictions.push_back(r);
    }

    /// Forgets a block whose file is then deleted by the caller.
    pub(super) fn forget(&mut self, id: u64) -> Option<BlockMeta> {
        let m = self.blocks.remove(&id)?;
        self.sub_used(m.loc, m.length);
        self.policy.on_remove(id);
        self.note_removed(id);
        Some(m)
    }

    /// Removal was asked while the block was busy, and nothing holds it any more.
    pub(super) fn removable_now(&self, block: u64) -> bool {
        self.blocks
            .get(&block)
            .is_some_and(|m| m.pending_remove && m.lock_count == 0)
    }
}

pub(super) fn not_cached(block_id: u64) -> Error {
    Error::not_found(format!("block {block_id} is not cached on this worker"))
}

pub(super) fn no_write(session_id: u64, block_id: u64) -> Error {
    Error::not_found(format!(
        "block {block_id} has no write in progress for session {session_id}"
    ))
}
