//! UFS read-through: a block this worker does not hold is read from its UFS file, the requested
//! part streamed to the reader, and (unless the read is NO_CACHE or there is no room) the whole
//! block written into the top tier as it streams, then committed to the master as durable.
//! Concurrent read-throughs of one block cache it once: the first caches, the others stream from
//! the UFS without caching (`CacheBlock` waits for the first instead).

use std::collections::HashMap;
use std::sync::Arc;

use alluvium_common::{ids, Error, Result};
use alluvium_proto::UfsBlockSource;
use bytes::Bytes;
use futures::StreamExt;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};

use crate::master_client::MasterClient;
use crate::metrics::WorkerMetrics;
use crate::store::{BlockStore, BlockWriter, Reservation};
use crate::ufs_mounts::UfsMounts;

type Inflight = Arc<Mutex<HashMap<u64, watch::Receiver<()>>>>;

/// Held by the one task caching a block; dropping it wakes the waiters.
struct Filling {
    block_id: u64,
    inflight: Inflight,
    _done: watch::Sender<()>,
}

impl Drop for Filling {
    fn drop(&mut self) {
        self.inflight.lock().remove(&self.block_id);
    }
}

enum Claim {
    Mine(Filling),
    Busy(watch::Receiver<()>),
}

/// The part of the block a reader wants, relative to the block.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub offset: u64,
    pub length: u64,
}

/// One read-through request.
pub struct UfsRead {
    pub block_id: u64,
    pub src: UfsBlockSource,
    pub range: Range,
    /// Bytes per message to the reader.
    pub chunk: usize,
    pub no_cache: bool,
    pub pinned: bool,
}

pub struct ReadThrough {
    store: Arc<BlockStore>,
    mounts: Arc<UfsMounts>,
    master: Arc<MasterClient>,
    metrics: WorkerMetrics,
    inflight: Inflight,
}

impl ReadThrough {
    pub fn new(
        store: Arc<BlockStore>,
        mounts: Arc<UfsMounts>,
        master: Arc<MasterClient>,
        metrics: WorkerMetrics,
    ) -> Self {
        Self {
            store,
            mounts,
            master,
            metrics,
            inflight: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn claim(&self, block_id: u64) -> Claim {
        let mut map = self.inflight.lock();
        if let Some(rx) = map.get(&block_id) {
            return Claim::Busy(rx.clone());
        }
        let (tx, rx) = watch::channel(());
        map.insert(block_id, rx);
        Claim::Mine(Filling {
            block_id,
            inflight: self.inflight.clone(),
            _done: tx,
        })
    }

    /// Streams the wanted range of a block from the UFS into `tx` in chunks of at most `chunk`
    /// bytes, caching the block unless `no_cache`. Runs in its own task; errors go to `tx`.
    pub fn read(self: &Arc<Self>, req: UfsRead, tx: mpsc::Sender<Result<Bytes>>) {
        let this = self.clone();
        let UfsRead {
            block_id,
            src,
            range,
            chunk,
            no_cache,
            pinned,
        } = req;
        tokio::spawn(async move {
            let claim = if no_cache {
                None
            } else {
                Some(this.claim(block_id))
            };
            let result = match claim {
                Some(Claim::Mine(filling)) => {
                    let r = this
                        .fill(
                            block_id,
                            &src,
                            pinned,
                            Some((range, tx.clone())),
                            chunk,
                            false,
                        )
                        .await
                        .map(|_| ());
                    drop(filling);
                    r
                }
                _ => this.stream_only(block_id, &src, range, chunk, &tx).await,
            };
            if let Err(e) = result {
                let _ = tx.send(Err(e)).await;
            }
        });
    }

    /// Loads a block into the cache without sending it anywhere. Returns `(loaded, tier)`;
    /// `loaded` is false when it was already cached (or another task cached it meanwhile).
    pub async fn cache(
        &self,
        block_id: u64,
        src: &UfsBlockSource,
        pinned: bool,
        chunk: usize,
    ) -> Result<(bool, String)> {
        loop {
            if let Some((tier, length)) = self.store.info(block_id) {
                // Already here, but the master may have just dropped this location (a `free`
                // whose removal has not reached this worker yet): announce it again, which also
                // cancels the pending removal, so a load right after a free keeps the block.
                self.master.commit_block(block_id, length, &tier).await;
                return Ok((false, tier));
            }
            match self.claim(block_id) {
                Claim::Mine(filling) => {
                    let filled = self.fill(block_id, src, pinned, None, chunk, true).await;
                    drop(filling);
                    return match filled {
                        Ok(tier) => Ok((true, tier.unwrap_or_default())),
                        // Written by a client meanwhile.
                        Err(e) if e.code == alluvium_common::ErrorCode::AlreadyExists => {
                            match self.store.info(block_id) {
                                Some((tier, _)) => Ok((false, tier)),
                                None => Err(e),
                            }
                        }
                        Err(e) => Err(e),
                    };
                }
                Claim::Busy(mut rx) => {
                    // Ends when the filling task drops its sender.
                    while rx.changed().await.is_ok() {}
                    if let Some((tier, _)) = self.store.info(block_id) {
                        return Ok((false, tier));
                    }
                }
            }
        }
    }

    fn check_source(block_id: u64, src: &UfsBlockSource) -> Result<()> {
        if src.ufs.is_none() {
            return Err(Error::invalid_argument(format!(
                "block {block_id}: the UFS source names no UFS location"
            )));
        }
        // Every offset computed from the source stays below its end (ranges are checked
        // against the block's length), so a source whose end fits a file bounds them all.
        let end = src.offset_in_file.checked_add(src.block_length);
        if src.block_length > ids::MAX_BLOCK_SIZE
            || end.is_none_or(|e| e > ids::MAX_BLOCK_SIZE * ids::MAX_BLOCKS_PER_FILE)
        {
            return Err(Error::invalid_argument(format!(
                "block {block_id}: UFS source of {} bytes at offset {} is beyond any file",
                src.block_length, src.offset_in_file
            )));
        }
        Ok(())
    }

    /// Streams only the requested range from the UFS, caching nothing.
    async fn stream_only(
        &self,
        block_id: u64,
        src: &UfsBlockSource,
        range: Range,
        chunk: usize,
        tx: &mpsc::Sender<Result<Bytes>>,
    ) -> Result<()> {
        Self::check_source(block_id, src)?;
        let loc = src.ufs.as_ref().expect("checked");
        let ufs = self.mounts.get(loc.mount_id).await?;
        let result = async {
            let mut stream = Box::pin(
                ufs.read_stream(
                    &loc.ufs_path,
                    src.offset_in_file + range.offset,
                    range.length,
                    chunk,
                )
                .await?,
            );
            let mut sent = 0u64;
            while let Some(data) = stream.next().await {
                let data = data?;
                sent += data.len() as u64;
                if !send_chunks(&self.metrics, tx, data, chunk).await {
                    return Ok(());
                }
            }
            if sent != range.length {
                return Err(truncated(
                    block_id,
                    &ufs.uri_of(&loc.ufs_path),
                    sent,
                    range.length,
                ));
            }
            Ok(())
        }
        .await;
        match result {
            Err(e) => Err(explain(
                block_id,
                &ufs,
                &loc.ufs_path,
                src.offset_in_file + range.offset + range.length,
                e,
            )
            .await),
            ok => ok,
        }
    }

    /// Reads the whole block from the UFS, writing it into the store (when there is room, or
    /// failing when `must_cache`) and sending the wanted range to the reader. Returns the tier
    /// it was cached in.
    async fn fill(
        &self,
        block_id: u64,
        src: &UfsBlockSource,
        pinned: bool,
        mut reader: Option<(Range, mpsc::Sender<Result<Bytes>>)>,
        chunk: usize,
        must_cache: bool,
    ) -> Result<Option<String>> {
        Self::check_source(block_id, src)?;
        let loc = src.ufs.as_ref().expect("checked");
        let ufs = self.mounts.get(loc.mount_id).await?;
        let uri = ufs.uri_of(&loc.ufs_path);
        let session = rand::random::<u64>();
        let reservation = Reservation {
            session_id: session,
            block_id,
            bytes: src.block_length,
            upfront: None,
            tier: String::new(),
            pinned,
            durable: true,
        };
        let mut file = match self.store.reserve(&reservation).await {
            Ok(tmp) => match BlockWriter::open(&tmp.path).await {
                Ok(f) => Some(f),
                Err(e) => {
                    self.store.abort(session, block_id).await;
                    if must_cache {
                        return Err(e.context(format!("block {block_id}")));
                    }
                    None
                }
            },
            Err(e) if must_cache => return Err(e),
            Err(e) => {
                tracing::debug!(block_id, error = %e, "read-through without caching");
                None
            }
        };
        let result = async {
            let mut stream = Box::pin(
                ufs.read_stream(&loc.ufs_path, src.offset_in_file, src.block_length, chunk)
                    .await?,
            );
            let mut pos = 0u64;
            while let Some(data) = stream.next().await {
                let data = data?;
                let len = data.len() as u64;
                if let Some(f) = file.as_mut() {
                    if let Err(e) = f.write(data.clone()).await {
                        let e = e.context(format!("block {block_id}: caching failed"));
                        if must_cache {
                            return Err(e);
                        }
                        tracing::warn!(block_id, error = %e, "read-through continues without caching");
                        file = None;
                        self.store.abort(session, block_id).await;
                    }
                }
                if let Some((range, tx)) = &reader {
                    let start = range.offset.max(pos);
                    let end = (range.offset + range.length).min(pos + len);
                    if start < end {
                        let part = data.slice((start - pos) as usize..(end - pos) as usize);
                        if !send_chunks(&self.metrics, tx, part, chunk).await {
                            // The reader left; finish caching if we are caching.
                            reader = None;
                        }
                    }
                }
                pos += len;
                if reader.is_none() && file.is_none() {
                    return Ok(None);
                }
            }
            if pos != src.block_length {
                return Err(truncated(block_id, &uri, pos, src.block_length));
            }
            if file.take().is_none() {
                return Ok(None);
            }
            let c = self.store.commit(session, block_id, src.block_length).await?;
            self.master.commit_block(block_id, c.length, &c.tier).await;
            tracing::debug!(block_id, tier = %c.tier, %uri, "cached block from the UFS");
            Ok(Some(c.tier))
        }
        .await;
        match result {
            Err(e) => {
                self.store.abort(session, block_id).await;
                Err(explain(
                    block_id,
                    &ufs,
                    &loc.ufs_path,
                    src.offset_in_file + src.block_length,
                    e,
                )
                .await)
            }
            ok => ok,
        }
    }
}

/// Sends `data` in pieces of at most `chunk` bytes (slices: no copies). Returns false when the
/// reader is gone.
async fn send_chunks(
    metrics: &WorkerMetrics,
    tx: &mpsc::Sender<Result<Bytes>>,
    data: Bytes,
    chunk: usize,
) -> bool {
    let mut off = 0;
    while off < data.len() {
        let end = (off + chunk).min(data.len());
        metrics.read("ufs", (end - off) as u64);
        if tx.send(Ok(data.slice(off..end))).await.is_err() {
            return false;
        }
        off = end;
    }
    true
}

fn truncated(block_id: u64, uri: &str, got: u64, want: u64) -> Error {
    Error::failed_precondition(format!(
        "block {block_id}: {uri} ends at byte {got}, the block needs it up to {want}; the UFS file changed since it was loaded"
    ))
}

/// A UFS read failed: if the file is now shorter than the block needs, say that it changed (the
/// store's own error for a short range is not helpful); otherwise keep the error.
async fn explain(
    block_id: u64,
    ufs: &alluvium_ufs::Ufs,
    path: &str,
    needed_end: u64,
    e: Error,
) -> Error {
    if e.code == alluvium_common::ErrorCode::FailedPrecondition {
        return e;
    }
    match ufs.stat(path).await {
        Ok(Some(st)) if !st.is_dir && st.length < needed_end => {
            truncated(block_id, &ufs.uri_of(path), st.length, needed_end)
        }
        Ok(None) => Error::not_found(format!(
            "block {block_id}: {} does not exist in the UFS",
            ufs.uri_of(path)
        )),
        _ => e,
    }
}
