//! Eviction policies: given the blocks of a dir, the order in which to evict them.
//!
//! Time is logical (a store-wide counter bumped on every access), so orders are deterministic.

use std::collections::HashMap;

use alluvium_common::config::WorkerConfig;

/// Orders eviction candidates. Implementations keep their own per-block state.
pub trait EvictionPolicy: Send + Sync {
    fn name(&self) -> &'static str;
    /// The block was committed or read at logical time `now`.
    fn on_access(&mut self, block_id: u64, now: u64);
    /// The block left the store.
    fn on_remove(&mut self, block_id: u64);
    /// Sorts `blocks` so that the first should be evicted first.
    fn order(&self, blocks: &mut [u64], now: u64);
}

/// Least recently used first.
#[derive(Default)]
pub struct Lru {
    last: HashMap<u64, u64>,
}

impl EvictionPolicy for Lru {
    fn name(&self) -> &'static str {
        "LRU"
    }
    fn on_access(&mut self, block_id: u64, now: u64) {
        self.last.insert(block_id, now);
    }
    fn on_remove(&mut self, block_id: u64) {
        self.last.remove(&block_id);
    }
    fn order(&self, blocks: &mut [u64], _now: u64) {
        blocks.sort_by_key(|b| (self.last.get(b).copied().unwrap_or(0), *b));
    }
}

/// Least Recently/Frequently Used: each access adds 1 to a score (the "combined recency and
/// frequency", CRF) that decays by `F(Δt) = (1/attenuation)^(step * Δt)`. Lowest score first.
/// A step factor near 0 makes it LFU-like, near 1 LRU-like.
pub struct Lrfu {
    step: f64,
    attenuation: f64,
    /// block → (crf at `last`, last access time)
    crf: HashMap<u64, (f64, u64)>,
}

impl Lrfu {
    pub fn new(step: f64, attenuation: f64) -> Self {
        Self {
            step,
            // An attenuation <= 1 would make old accesses weigh more than new ones.
            attenuation: if attenuation > 1.0 { attenuation } else { 2.0 },
            crf: HashMap::new(),
        }
    }

    fn decay(&self, dt: u64) -> f64 {
        (1.0 / self.attenuation).powf(self.step * dt as f64)
    }

    fn score(&self, block_id: u64, now: u64) -> f64 {
        match self.crf.get(&block_id) {
            Some(&(crf, last)) => crf * self.decay(now.saturating_sub(last)),
            None => 0.0,
        }
    }
}

impl EvictionPolicy for Lrfu {
    fn name(&self) -> &'static str {
        "LRFU"
    }
    fn on_access(&mut self, block_id: u64, now: u64) {
        let crf = self.score(block_id, now) + 1.0;
        self.crf.insert(block_id, (crf, now));
    }
    fn on_remove(&mut self, block_id: u64) {
        self.crf.remove(&block_id);
    }
    fn order(&self, blocks: &mut [u64], now: u64) {
        blocks.sort_by(|a, b| {
            self.score(*a, now)
                .total_cmp(&self.score(*b, now))
                .then(a.cmp(b))
        });
    }
}

/// The policy named by `worker.eviction_policy` (validated by the config: `LRU` or `LRFU`).
pub fn policy_from_config(cfg: &WorkerConfig) -> Box<dyn EvictionPolicy> {
    if cfg.eviction_policy.eq_ignore_ascii_case("LRFU") {
        Box::new(Lrfu::new(cfg.lrfu_step_factor, cfg.lrfu_attenuation_factor))
    } else {
        Box::new(Lru::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_evicts_least_recent_first() {
        let mut p = Lru::default();
        p.on_access(1, 1);
        p.on_access(2, 2);
        p.on_access(3, 3);
        p.on_access(1, 4);
        let mut b = [1, 2, 3];
        p.order(&mut b, 5);
        assert_eq!(b, [2, 3, 1]);
    }

    #[test]
    fn lrfu_weighs_frequency() {
        // Block 1 read often long ago, block 2 read once recently: with a small step factor the
        // frequent block is kept; with a step factor of 1 recency wins.
        let run = |step: f64| {
            let mut p = Lrfu::new(step, 2.0);
            for t in 1..=10 {
                p.on_access(1, t);
            }
            p.on_access(2, 12);
            let mut b = [1, 2];
            p.order(&mut b, 13);
            b
        };
        assert_eq!(run(0.01), [2, 1]);
        assert_eq!(run(1.0), [1, 2]);
    }
}
