//! Reading a file block by block. For each block the client tries, in order: a worker on this host
//! (short-circuit: the worker locks the block and hands back its file, which is mmapped read-only),
//! the other workers holding it (a `ReadBlock` stream from the offset to the block's end, reused
//! while reading forward), and, for a persisted file, a worker reading it through from the UFS. A
//! failing location is skipped and the next one tried.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use alluvium_common::blocking::blocking;
use alluvium_common::{Error, ErrorCode, Result};
use alluvium_proto as pb;
use alluvium_proto::{FileInfo, ReadType};
use bytes::Bytes;
use futures::StreamExt;
use memmap2::MmapOptions;
use tonic::Streaming;

use crate::block_transfer::BlockTransfer;
use crate::file_system::{no_live_worker, ufs_source, with_path, FileSystem};
use crate::locality;
use crate::metrics::ClientMetrics;
use crate::worker_pool::{worker_address, WorkerClient};
use alluvium_proto::block_transfer::ReadRequest;

enum Source {
    Local {
        /// The whole mapped block; reads hand out slices of it without copying.
        mmap: Bytes,
        client: WorkerClient,
        opened: Instant,
        lease: Duration,
    },
    Stream {
        stream: Streaming<pb::ReadBlockResponse>,
        /// Bytes received but not yet handed out.
        pending: Bytes,
        /// The worker reads the block through from the UFS.
        ufs: bool,
    },
    /// A remote worker's cached block over the block transfer protocol (raw bytes on TCP).
    Transfer(BlockTransfer),
}

/// What a read gave: bytes handed out without a copy, or a count of bytes copied into the
/// caller's buffer.
enum Got {
    Bytes(Bytes),
    Copied(usize),
}

impl Got {
    fn len(&self) -> usize {
        match self {
            Got::Bytes(b) => b.len(),
            Got::Copied(n) => *n,
        }
    }

    /// Into `dst` (which a `Copied` read already filled).
    fn copy_into(self, dst: &mut [u8]) -> usize {
        match self {
            Got::Bytes(b) => {
                dst[..b.len()].copy_from_slice(&b);
                b.len()
            }
            Got::Copied(n) => n,
        }
    }
}

struct BlockReader {
    index: usize,
    block_id: u64,
    /// Offset in the block of the next byte this reader gives.
    offset: u64,
    /// End (exclusive, in the block) of what this reader can give.
    end: u64,
    worker_id: u64,
    source: Source,
}

pub struct FileInStream {
    fs: FileSystem,
    info: FileInfo,
    read_type: ReadType,
    pos: u64,
    session_id: u64,
    reader: Option<BlockReader>,
    /// Short-circuit blocks still mapped (and locked) from earlier reads, most recent last, so
    /// random reads that jump between blocks do not pay an open/close round trip each time.
    mapped: Vec<BlockReader>,
    /// Workers that failed for this stream; tried again only when nothing else is left.
    failed: HashSet<u64>,
    refreshed: bool,
}

/// Short-circuit blocks one stream keeps mapped at most (each holds a lock on the worker, so
/// the block is not evicted while mapped): 2 GiB of default 64 MiB blocks, so random reads over a
/// file of that size never reopen a block (with 8, reads over 16 blocks thrashed at ~12k IOPS).
const MAX_MAPPED_BLOCKS: usize = 32;

/// Which block holds `pos`, and the offset in it.
pub fn block_position(pos: u64, block_size: u64) -> (usize, u64) {
    if block_size == 0 {
        return (0, pos);
    }
    ((pos / block_size) as usize, pos % block_size)
}

impl FileInStream {
    pub(crate) fn new(fs: FileSystem, info: FileInfo, read_type: ReadType) -> Self {
        Self {
            fs,
            info,
            read_type,
            pos: 0,
            session_id: rand::random(),
            reader: None,
            mapped: Vec::new(),
            failed: HashSet::new(),
            refreshed: false,
        }
    }

    pub fn len(&self) -> u64 {
        self.info.length
    }

    pub fn is_empty(&self) -> bool {
        self.info.length == 0
    }

    pub fn position(&self) -> u64 {
        self.pos
    }

    pub fn info(&self) -> &FileInfo {
        &self.info
    }

    /// Reads at the current position; 0 at the end of the file.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        let max = buf.len();
        let n = self
            .read_inner(self.pos, max, false, Some(&mut *buf))
            .await?
            .copy_into(buf);
        self.pos += n as u64;
        Ok(n)
    }

    /// Up to `max` bytes at the current position without copying them: a slice of the mapped
    /// block (short-circuit) or of the message the worker sent (remote). Empty at the end of the
    /// file. The slice stays valid after the stream is closed.
    pub async fn read_bytes(&mut self, max: usize) -> Result<Bytes> {
        let chunk = match self.read_inner(self.pos, max, false, None).await? {
            Got::Bytes(b) => b,
            Got::Copied(_) => return Err(Error::internal("a read without a buffer copied")),
        };
        self.pos += chunk.len() as u64;
        Ok(chunk)
    }

    /// Reads at `offset` without moving the position. Fills `buf` as far as the file allows.
    pub async fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            let rest = &mut buf[done..];
            let n = self
                .read_inner(offset + done as u64, rest.len(), true, Some(&mut *rest))
                .await?
                .copy_into(rest);
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(done)
    }

    pub async fn seek(&mut self, pos: u64) -> Result<()> {
        if pos > self.info.length {
            return Err(Error::invalid_argument(format!(
                "{}: cannot seek to {pos}, past the end ({} bytes)",
                self.info.path, self.info.length
            )));
        }
        self.pos = pos;
        Ok(())
    }

    /// Releases the short-circuit lock, if one is held.
    pub async fn close(mut self) -> Result<()> {
        self.release_all().await;
        Ok(())
    }

    /// Up to `max` bytes from the block holding `pos`, at most up to that block's end. With
    /// `dest`, a source that can write into it directly does so (no intermediate buffer).
    async fn read_inner(
        &mut self,
        pos: u64,
        max: usize,
        positioned: bool,
        mut dest: Option<&mut [u8]>,
    ) -> Result<Got> {
        if pos >= self.info.length || max == 0 {
            return Ok(Got::Bytes(Bytes::new()));
        }
        let (index, offset) = block_position(pos, self.info.block_size);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let reusable = self
                .reader
                .as_ref()
                .is_some_and(|r| r.index == index && reader_can_serve(r, offset));
            if !reusable && self.switch_to_mapped(index, offset).await {
                continue;
            }
            if !reusable {
                self.park().await;
                // A positioned read asks a remote worker for just what it needs.
                let want = positioned.then_some(max as u64);
                self.reader = Some(self.open_reader(index, offset, want).await?);
            }
            let Some(reader) = self.reader.as_mut() else {
                return Err(Error::internal("block reader vanished"));
            };
            match read_from(
                reader,
                offset,
                max,
                dest.as_deref_mut(),
                &self.fs,
                &self.info.path,
                self.session_id,
            )
            .await
            {
                Ok(chunk) => return Ok(chunk),
                Err(e) if attempts < 4 => {
                    tracing::debug!(path = %self.info.path, worker = reader.worker_id, error = %e, "read failed, trying another location");
                    self.failed.insert(reader.worker_id);
                    ClientMetrics::add(&self.fs.inner.metrics.read_fallbacks, 1);
                    if let Some(r) = self.reader.take() {
                        self.close_local(r).await;
                    }
                }
                Err(e) => return Err(with_path(e, &self.info.path)),
            }
        }
    }

    /// Puts the current reader aside: a short-circuit one stays mapped for a later read of its
    /// block (up to `MAX_MAPPED_BLOCKS`, the least recently used released first).
    async fn park(&mut self) {
        let Some(r) = self.reader.take() else { return };
        if !matches!(r.source, Source::Local { .. }) {
            return;
        }
        self.mapped.push(r);
        if self.mapped.len() > MAX_MAPPED_BLOCKS {
            let oldest = self.mapped.remove(0);
            self.close_local(oldest).await;
        }
    }

    /// Makes a parked short-circuit reader of block `index` current, if there is one.
    async fn switch_to_mapped(&mut self, index: usize, offset: u64) -> bool {
        let Some(i) = self
            .mapped
            .iter()
            .position(|r| r.index == index && reader_can_serve(r, offset))
        else {
            return false;
        };
        let r = self.mapped.remove(i);
        self.park().await;
        self.reader = Some(r);
        true
    }

    /// Releases every short-circuit lock this stream holds.
    async fn release_all(&mut self) {
        if let Some(r) = self.reader.take() {
            self.close_local(r).await;
        }
        for r in std::mem::take(&mut self.mapped) {
            self.close_local(r).await;
        }
    }

    async fn close_local(&self, r: BlockReader) {
        if let Source::Local { mut client, .. } = r.source {
            let block_id = r.block_id;
            let req = pb::CloseLocalBlockRequest {
                block_id,
                session_id: self.session_id,
            };
            if let Err(e) = client.close_local_block(req).await {
                tracing::debug!(block_id, error = %e, "CloseLocalBlock failed (the lease will expire)");
            }
        }
    }

    fn block_id(&self, index: usize) -> u64 {
        self.info
            .block_ids
            .get(index)
            .copied()
            .or_else(|| self.info.blocks.get(index).map(|b| b.block_id))
            .unwrap_or_else(|| alluvium_common::ids::block_id(self.info.file_id, index as u64))
    }

    /// Opens a reader for block `index` at `offset`, trying each way in turn.
    async fn open_reader(
        &mut self,
        index: usize,
        offset: u64,
        want: Option<u64>,
    ) -> Result<BlockReader> {
        let mut last_err: Option<Error> = None;
        for round in 0..2 {
            let Some(block) = self.info.blocks.get(index).cloned() else {
                return Err(Error::internal(format!(
                    "{}: the master sent no block {index}",
                    self.info.path
                )));
            };
            let hostname = self.fs.inner.hostname.clone();
            let mut ordered = locality::order_locations(&block.locations, &hostname);
            // Workers that already failed go last.
            ordered.sort_by_key(|l| self.failed.contains(&l.worker_id));
            let sc = self.fs.inner.config.client.short_circuit;
            for loc in &ordered {
                let local = locality::is_local(loc.address.as_ref(), &hostname);
                let client = match self.fs.inner.workers.get(loc.address.as_ref()) {
                    Ok(c) => c,
                    Err(e) => {
                        last_err = Some(e);
                        continue;
                    }
                };
                if local && sc {
                    // A sequential reader will touch every page: map them all at once.
                    let populate = want.is_none();
                    let opened = self
                        .open_local(index, &block, client.clone(), offset, populate)
                        .await;
                    match opened {
                        Ok(r) => {
                            return Ok(BlockReader {
                                worker_id: loc.worker_id,
                                ..r
                            })
                        }
                        Err(e) => {
                            tracing::debug!(block_id = block.block_id, error = %e, "short-circuit open failed, streaming instead");
                            ClientMetrics::add(&self.fs.inner.metrics.read_fallbacks, 1);
                        }
                    }
                }
                match self
                    .open_remote(index, &block, loc, client, offset, want)
                    .await
                {
                    Ok(r) => {
                        tracing::debug!(
                            block_id = block.block_id,
                            worker = loc.worker_id,
                            offset,
                            "reading block (remote)"
                        );
                        return Ok(BlockReader {
                            worker_id: loc.worker_id,
                            ..r
                        });
                    }
                    Err(e) => {
                        tracing::debug!(block_id = block.block_id, worker = loc.worker_id, error = %e, "location failed");
                        ClientMetrics::add(&self.fs.inner.metrics.read_fallbacks, 1);
                        self.failed.insert(loc.worker_id);
                        last_err = Some(e);
                    }
                }
            }
            if self.info.persisted {
                return self.open_ufs(index, &block, offset, want).await;
            }
            // The locations may be stale (a worker was lost, or the block moved): ask again once.
            if round == 0 && !self.refreshed {
                self.refreshed = true;
                match self.fs.get_status(&self.info.path).await {
                    Ok(fresh) if fresh.file_id == self.info.file_id => {
                        self.info = fresh;
                        self.failed.clear();
                        continue;
                    }
                    _ => {}
                }
            }
            break;
        }
        let block_id = self.block_id(index);
        let why = last_err
            .map(|e| format!(" (last error: {e})"))
            .unwrap_or_default();
        Err(Error::unavailable(format!(
            "{}: block {block_id} is lost: no worker holds it and the file is not persisted{why}",
            self.info.path
        )))
    }

    async fn open_local(
        &self,
        index: usize,
        block: &pb::BlockInfo,
        mut client: WorkerClient,
        offset: u64,
        populate: bool,
    ) -> Result<BlockReader> {
        let resp = client
            .open_local_block(pb::OpenLocalBlockRequest {
                block_id: block.block_id,
                session_id: self.session_id,
                promote: self.read_type == ReadType::CachePromote,
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
                        session_id: self.session_id,
                    })
                    .await;
                return Err(e);
            }
        };
        tracing::debug!(block_id = block.block_id, path = %resp.path, tier = %resp.tier, "reading block (short-circuit mmap)");
        let lease = Duration::from_millis(u64::try_from(resp.lease_ms).unwrap_or(0).max(1000));
        Ok(BlockReader {
            index,
            block_id: block.block_id,
            offset,
            end: block.length,
            worker_id: 0,
            source: Source::Local {
                mmap,
                client,
                opened: Instant::now(),
                lease,
            },
        })
    }

    /// A cached block of a remote worker: over the block transfer protocol when enabled, else (or
    /// when that fails) as a `ReadBlock` gRPC stream.
    async fn open_remote(
        &self,
        index: usize,
        block: &pb::BlockInfo,
        loc: &pb::BlockLocation,
        client: WorkerClient,
        offset: u64,
        want: Option<u64>,
    ) -> Result<BlockReader> {
        let raw = self.fs.inner.config.client.block_transfer
            // Promotion is the worker's job during a gRPC read.
            && self.read_type != ReadType::CachePromote;
        if let (true, Some(address)) = (raw, loc.address.as_ref()) {
            let remaining = block.length.saturating_sub(offset);
            let length = want.map_or(remaining, |w| w.min(remaining));
            let req = ReadRequest {
                block_id: block.block_id,
                offset,
                length,
            };
            let addr = worker_address(address);
            match self.fs.inner.transfers.read(&addr, req).await {
                Ok(t) => {
                    return Ok(BlockReader {
                        index,
                        block_id: block.block_id,
                        offset,
                        end: offset + t.remaining(),
                        worker_id: 0,
                        source: Source::Transfer(t),
                    })
                }
                Err(e) => {
                    tracing::debug!(block_id = block.block_id, worker = %addr, error = %e, "block transfer failed, streaming over gRPC instead");
                }
            }
        }
        self.open_stream(index, block, client, offset, want, None)
            .await
    }

    async fn open_stream(
        &self,
        index: usize,
        block: &pb::BlockInfo,
        mut client: WorkerClient,
        offset: u64,
        want: Option<u64>,
        ufs: Option<pb::UfsBlockSource>,
    ) -> Result<BlockReader> {
        let remaining = block.length.saturating_sub(offset);
        let length = want.map_or(0, |w| w.min(remaining));
        let is_ufs = ufs.is_some();
        let req = pb::ReadBlockRequest {
            block_id: block.block_id,
            offset,
            length,
            chunk_size: u32::try_from(self.fs.inner.config.client.chunk_size.0).unwrap_or(0),
            read_type: self.read_type as i32,
            ufs,
            pinned: self.info.pinned,
        };
        let stream = client
            .read_block(req)
            .await
            .map_err(Error::from)?
            .into_inner();
        Ok(BlockReader {
            index,
            block_id: block.block_id,
            offset,
            end: if length == 0 {
                block.length
            } else {
                offset + length
            },
            worker_id: 0,
            source: Source::Stream {
                stream,
                pending: Bytes::new(),
                ufs: is_ufs,
            },
        })
    }

    async fn open_ufs(
        &mut self,
        index: usize,
        block: &pb::BlockInfo,
        offset: u64,
        want: Option<u64>,
    ) -> Result<BlockReader> {
        let workers = self.fs.live_workers_cached().await?;
        let hostname = self.fs.inner.hostname.clone();
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
            let client = match self.fs.inner.workers.get(w.address.as_ref()) {
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
                    ClientMetrics::add(&self.fs.inner.metrics.read_fallbacks, 1);
                    last_err = Some(e);
                }
            }
        }
        self.fs.forget_workers();
        Err(last_err.unwrap_or_else(|| no_live_worker(&self.info.path)))
    }
}

/// Whether a reader can give the byte at `offset` of its block without reopening.
fn reader_can_serve(r: &BlockReader, offset: u64) -> bool {
    match r.source {
        Source::Local { .. } => offset < r.end,
        Source::Stream { .. } | Source::Transfer(_) => offset == r.offset && offset < r.end,
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
    let mmap = blocking(|| unsafe { opts.map(&file) })
        .map_err(|e| Error::from(e).context(format!("mmap of {path}")))?;
    if (mmap.len() as u64) < length {
        return Err(Error::internal(format!(
            "short-circuit block file {path} holds {} bytes, expected {length}",
            mmap.len()
        )));
    }
    Ok(Bytes::from_owner(mmap))
}

#[allow(clippy::too_many_arguments)]
async fn read_from(
    reader: &mut BlockReader,
    offset: u64,
    max: usize,
    dest: Option<&mut [u8]>,
    fs: &FileSystem,
    path: &str,
    session_id: u64,
) -> Result<Got> {
    let metrics = &fs.inner.metrics;
    match &mut reader.source {
        Source::Local {
            mmap,
            client,
            opened,
            lease,
        } => {
            if opened.elapsed() > *lease / 2 {
                // Calling OpenLocalBlock again renews the lease on the lock.
                let req = pb::OpenLocalBlockRequest {
                    block_id: reader.block_id,
                    session_id,
                    promote: false,
                };
                client
                    .open_local_block(req)
                    .await
                    .map_err(|s| Error::from(s).context("renewing the short-circuit lease"))?;
                *opened = Instant::now();
                tracing::debug!(block_id = reader.block_id, "renewed short-circuit lease");
            }
            let end = (reader.end as usize).min(mmap.len());
            let start = offset as usize;
            if start >= end {
                return Ok(Got::Bytes(Bytes::new()));
            }
            let n = (end - start).min(max);
            reader.offset = offset + n as u64;
            ClientMetrics::add(&metrics.bytes_read_short_circuit, n as u64);
            Ok(Got::Bytes(mmap.slice(start..start + n)))
        }
        Source::Transfer(t) => {
            let max = max.min((reader.end - offset) as usize);
            let got = match dest {
                Some(dst) => Got::Copied(t.read_into(&mut dst[..max]).await?),
                None => Got::Bytes(t.read_bytes(max).await?),
            };
            reader.offset = offset + got.len() as u64;
            ClientMetrics::add(&metrics.bytes_read_remote, got.len() as u64);
            Ok(got)
        }
        Source::Stream {
            stream,
            pending,
            ufs,
        } => {
            if pending.is_empty() {
                match stream.next().await {
                    Some(Ok(msg)) => *pending = msg.data,
                    Some(Err(s)) => return Err(s.into()),
                    None => {
                        return Err(Error::new(
                            ErrorCode::Internal,
                            format!(
                                "the worker ended block {} of {path} early at offset {offset}",
                                reader.index
                            ),
                        ))
                    }
                }
                if pending.is_empty() {
                    return Err(Error::internal("the worker sent an empty chunk"));
                }
            }
            let n = pending.len().min(max);
            let chunk = pending.split_to(n);
            reader.offset = offset + n as u64;
            let counter = if *ufs {
                &metrics.bytes_read_ufs
            } else {
                &metrics.bytes_read_remote
            };
            ClientMetrics::add(counter, n as u64);
            Ok(Got::Bytes(chunk))
        }
    }
}

impl Drop for FileInStream {
    fn drop(&mut self) {
        // An unclosed stream still releases its short-circuit locks rather than waiting out the
        // lease.
        let held: Vec<(u64, WorkerClient)> = self
            .reader
            .take()
            .into_iter()
            .chain(std::mem::take(&mut self.mapped))
            .filter_map(|r| match r.source {
                Source::Local { client, .. } => Some((r.block_id, client)),
                Source::Stream { .. } | Source::Transfer(_) => None,
            })
            .collect();
        if held.is_empty() {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let session_id = self.session_id;
            handle.spawn(async move {
                for (block_id, mut client) in held {
                    let _ = client
                        .close_local_block(pb::CloseLocalBlockRequest {
                            block_id,
                            session_id,
                        })
                        .await;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_math() {
        assert_eq!(block_position(0, 10), (0, 0));
        assert_eq!(block_position(9, 10), (0, 9));
        assert_eq!(block_position(10, 10), (1, 0));
        assert_eq!(block_position(25, 10), (2, 5));
        assert_eq!(block_position(5, 0), (0, 5));
    }
}
