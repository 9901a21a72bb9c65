//! The short-circuit read: a worker on this host locks the block and hands back the path of its
//! file, which the client maps read-only. Reads are slices of the mapping: no copy and no round
//! trip per read.

use std::time::{Duration, Instant};

use alluvium_common::blocking::blocking;
use alluvium_common::{Error, Result};
use alluvium_proto as pb;
use bytes::Bytes;
use memmap2::MmapOptions;

use crate::worker_pool::WorkerClient;

/// A block of a local worker's tier, mapped, and locked on the worker until closed (or until its
/// lease runs out).
pub(super) struct ShortCircuitBlock {
    block_id: u64,
    session_id: u64,
    /// The whole mapped block; reads hand out slices of it without copying.
    mmap: Bytes,
    client: WorkerClient,
    opened: Instant,
    lease: Duration,
}

impl ShortCircuitBlock {
    /// Locks `block` on the local worker behind `client` and maps its file. `populate` fills the
    /// page tables up front, for a reader that will touch every page.
    pub async fn open(
        mut client: WorkerClient,
        block: &pb::BlockInfo,
        session_id: u64,
        promote: bool,
        populate: bool,
    ) -> Result<Self> {
        let resp = client
            .open_local_block(pb::OpenLocalBlockRequest {
                block_id: block.block_id,
                session_id,
                promote,
            })
            .await
            .map_err(Error::from)?
            .into_inner();
        let mapped = map_block(&resp.path, resp.length.min(block.length), populate);
        let mmap = match mapped {
            Ok(m) => m,
            Err(e) => {
                let _ = client
                    .close_local_block(pb::CloseLocalBlockRequest {
                        block_id: block.block_id,
                        session_id,
                    })
                    .await;
                return Err(e);
            }
        };
        tracing::debug!(block_id = block.block_id, path = %resp.path, tier = %resp.tier, "reading block (short-circuit mmap)");
        let lease = Duration::from_millis(u64::try_from(resp.lease_ms).unwrap_or(0).max(1000));
        Ok(Self {
            block_id: block.block_id,
            session_id,
            mmap,
            client,
            opened: Instant::now(),
            lease,
        })
    }

    /// Up to `max` bytes at `offset` of the block, not past `end`; empty past the end.
    pub async fn read(&mut self, offset: u64, end: u64, max: usize) -> Result<Bytes> {
        if self.opened.elapsed() > self.lease / 2 {
            // Calling OpenLocalBlock again renews the lease on the lock.
            let req = pb::OpenLocalBlockRequest {
                block_id: self.block_id,
                session_id: self.session_id,
                promote: false,
            };
            self.client
                .open_local_block(req)
                .await
                .map_err(|s| Error::from(s).context("renewing the short-circuit lease"))?;
            self.opened = Instant::now();
            tracing::debug!(block_id = self.block_id, "renewed short-circuit lease");
        }
        let end = (end as usize).min(self.mmap.len());
        let start = offset as usize;
        if start >= end {
            return Ok(Bytes::new());
        }
        let n = (end - start).min(max);
        Ok(self.mmap.slice(start..start + n))
    }

    /// Releases the lock on the worker. Slices already handed out stay valid.
    pub async fn close(mut self) {
        let req = pb::CloseLocalBlockRequest {
            block_id: self.block_id,
            session_id: self.session_id,
        };
        if let Err(e) = self.client.close_local_block(req).await {
            tracing::debug!(block_id = self.block_id, error = %e, "CloseLocalBlock failed (the lease will expire)");
        }
    }
}

/// Maps a block file read-only. `populate` fills the page tables up front (MAP_POPULATE): one
/// pass in the kernel instead of a page fault per 4 KiB, which is what makes a sequential
/// short-circuit read faster than read(2); random readers leave it off and fault in only what
/// they touch.
fn map_block(path: &str, length: u64, populate: bool) -> Result<Bytes> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::from(e).context(format!("short-circuit block file {path}")))?;
    let mut opts = MmapOptions::new();
    if populate {
        opts.populate();
    }
    // With `populate` the kernel reads the whole block in (from disk on an SSD/HDD tier).
    // SAFETY: the mapping is read-only, and a committed block file is never written or truncated
    // again: the worker renames it into place once and later only unlinks it (evict, move to
    // another tier, delete), which leaves existing mappings valid. So slices of it may outlive
    // the short-circuit lock.
    let mapped = if populate {
        blocking(|| unsafe { opts.map(&file) })
    } else {
        // Without populate mmap only sets up the mapping: nothing to take off the runtime.
        unsafe { opts.map(&file) }
    };
    let mmap = mapped.map_err(|e| Error::from(e).context(format!("mmap of {path}")))?;
    if (mmap.len() as u64) < length {
        return Err(Error::internal(format!(
            "short-circuit block file {path} holds {} bytes, expected {length}",
            mmap.len()
        )));
    }
    Ok(Bytes::from_owner(mmap))
}
