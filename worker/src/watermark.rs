//! Background freeing: tiers above their high watermark are brought under the low one by moving
//! blocks down or dropping durable ones (the allocator's rules), so writes rarely have to wait
//! for eviction.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::store::BlockStore;

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
