//! Reading a block of a persisted file that no worker caches: a worker (one on this host first)
//! reads it through from the UFS, caching it unless the read type says not to, and streams it back.

use alluvium_common::Result;
use alluvium_proto as pb;

use super::{BlockReader, FileInStream};
use crate::context::{no_live_worker, ufs_source};
use crate::locality;
use crate::metrics::ClientMetrics;

impl FileInStream {
    pub(super) async fn open_ufs(
        &mut self,
        index: usize,
        block: &pb::BlockInfo,
        offset: u64,
        want: Option<u64>,
    ) -> Result<BlockReader> {
        let workers = self.ctx.live_workers_cached().await?;
        let hostname = self.ctx.hostname.clone();
        let src = ufs_source(&self.info, block);
        // Workers that failed before go last; every live worker is tried once.
        let mut exclude: Vec<u64> = self.failed.iter().copied().collect();
        let mut tried: Vec<u64> = Vec::new();
        let mut last_err = None;
        loop {
            let w = match locality::choose_write_worker(&workers, &hostname, &exclude) {
                Some(w) => w,
                None if !self.failed.is_empty() && exclude.len() > tried.len() => {
                    // Only workers that failed earlier are left: give them one more chance.
                    exclude = tried.clone();
                    continue;
                }
                None => break,
            };
            exclude.push(w.id);
            tried.push(w.id);
            let client = match self.ctx.workers.get(w.address.as_ref()) {
                Ok(c) => c,
                Err(e) => {
                    last_err = Some(e);
                    continue;
                }
            };
            match self
                .open_stream(index, block, client, offset, want, Some(src.clone()))
                .await
            {
                Ok(r) => {
                    tracing::debug!(
                        block_id = block.block_id,
                        worker = w.id,
                        offset,
                        "reading block (UFS read-through)"
                    );
                    return Ok(BlockReader {
                        worker_id: w.id,
                        ..r
                    });
                }
                Err(e) => {
                    tracing::debug!(block_id = block.block_id, worker = w.id, error = %e, "UFS read-through failed");
                    ClientMetrics::add(&self.ctx.metrics.read_fallbacks, 1);
                    last_err = Some(e);
                }
            }
        }
        self.ctx.forget_workers();
        Err(last_err.unwrap_or_else(|| no_live_worker(&self.info.path)))
    }
}
