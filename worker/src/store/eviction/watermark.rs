//! Background freeing: tiers above their high watermark are brought under the low one by
//! moving blocks down or dropping durable ones (the planner's rules), so writes rarely have to
//! wait for eviction.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::planner::Planner;

use crate::store::block_store::BlockStore;

/// Frees space above the watermarks every `every` until shutdown.
pub async fn run(store: Arc<BlockStore>, every: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let n = store.free_above_watermarks().await;
        if n > 0 {
            tracing::info!(blocks = n, "freed space above the high watermark");
        }
    }
}

impl BlockStore {
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
}
