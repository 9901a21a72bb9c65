//! What the store tells others: usage per tier, block reports and deltas for heartbeats, recent evictions.

use alluvium_proto::{BlockReport, TierBlocks, TierUsage};

use super::block_store::BlockStore;
use super::state::EvictionRecord;

/// Block changes since the last heartbeat.
#[derive(Debug, Clone, Default)]
pub struct Deltas {
    pub added: Vec<BlockReport>,
    pub removed: Vec<u64>,
}

impl BlockStore {
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

    pub fn recent_evictions(&self) -> Vec<EvictionRecord> {
        self.inner.lock().evictions.iter().cloned().collect()
    }
}
