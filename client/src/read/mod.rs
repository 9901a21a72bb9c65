//! Reading a file block by block. For each block the client tries, in order: a worker on this host
//! (short-circuit: the worker locks the block and hands back its file, which is mmapped read-only),
//! the other workers holding it (a `ReadBlock` stream from the offset to the block's end, reused
//! while reading forward), and, for a persisted file, a worker reading it through from the UFS. A
//! failing location is skipped and the next one tried.

use std::collections::HashSet;
use std::sync::Arc;

use alluvium_common::{Error, Result};
use alluvium_proto::{FileInfo, ReadType};
use bytes::Bytes;

use crate::block_transfer::BlockTransfer;
use crate::context::{with_path, Context};
use crate::locality;
use crate::metrics::ClientMetrics;

mod remote;
mod short_circuit;
mod ufs;

use remote::BlockStream;
use short_circuit::ShortCircuitBlock;

/// Where a block reader's bytes come from.
enum Source {
    /// A local worker's block file, mapped ([`short_circuit`]).
    ShortCircuit(ShortCircuitBlock),
    /// A remote worker's cached block over the block transfer protocol ([`remote`]).
    Transfer(BlockTransfer),
    /// A `ReadBlock` gRPC stream: a remote worker's cached block, or a UFS read-through
    /// ([`remote`], [`ufs`]).
    Stream(BlockStream),
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
    /// Offset in the block of the next byte this reader gives.
    offset: u64,
    /// End (exclusive, in the block) of what this reader can give.
    end: u64,
    worker_id: u64,
    source: Source,
}

impl BlockReader {
    /// Releases what the reader holds on a worker (a short-circuit lock); a stream needs nothing.
    async fn close(self) {
        if let Source::ShortCircuit(block) = self.source {
            block.close().await;
        }
    }
}

pub struct FileInStream {
    ctx: Arc<Context>,
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
    pub(crate) fn new(ctx: Arc<Context>, info: FileInfo, read_type: ReadType) -> Self {
        Self {
            ctx,
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
                &self.ctx,
                &self.info.path,
            )
            .await
            {
                Ok(chunk) => return Ok(chunk),
                Err(e) if attempts < 4 => {
                    tracing::debug!(path = %self.info.path, worker = reader.worker_id, error = %e, "read failed, trying another location");
                    self.failed.insert(reader.worker_id);
                    ClientMetrics::add(&self.ctx.metrics.read_fallbacks, 1);
                    if let Some(r) = self.reader.take() {
                        r.close().await;
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
        if !matches!(r.source, Source::ShortCircuit(_)) {
            return;
        }
        self.mapped.push(r);
        if self.mapped.len() > MAX_MAPPED_BLOCKS {
            let oldest = self.mapped.remove(0);
            oldest.close().await;
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
            r.close().await;
        }
        for r in std::mem::take(&mut self.mapped) {
            r.close().await;
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
            let hostname = self.ctx.hostname.clone();
            let mut ordered = locality::order_locations(&block.locations, &hostname);
            // Workers that already failed go last.
            ordered.sort_by_key(|l| self.failed.contains(&l.worker_id));
            let sc = self.ctx.config.client.short_circuit;
            for loc in &ordered {
                let local = locality::is_local(loc.address.as_ref(), &hostname);
                let client = match self.ctx.workers.get(loc.address.as_ref()) {
                    Ok(c) => c,
                    Err(e) => {
                        last_err = Some(e);
                        continue;
                    }
                };
                if local && sc {
                    // A sequential reader will touch every page: map them all at once.
                    let populate = want.is_none();
                    let promote = self.read_type == ReadType::CachePromote;
                    let opened = ShortCircuitBlock::open(
                        client.clone(),
                        &block,
                        self.session_id,
                        promote,
                        populate,
                    )
                    .await;
                    match opened {
                        Ok(mapped) => {
                            return Ok(BlockReader {
                                index,
                                offset,
                                end: block.length,
                                worker_id: loc.worker_id,
                                source: Source::ShortCircuit(mapped),
                            })
                        }
                        Err(e) => {
                            tracing::debug!(block_id = block.block_id, error = %e, "short-circuit open failed, streaming instead");
                            ClientMetrics::add(&self.ctx.metrics.read_fallbacks, 1);
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
                        ClientMetrics::add(&self.ctx.metrics.read_fallbacks, 1);
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
                match self.ctx.status(&self.info.path, true).await {
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
}

/// Whether a reader can give the byte at `offset` of its block without reopening.
fn reader_can_serve(r: &BlockReader, offset: u64) -> bool {
    match r.source {
        Source::ShortCircuit(_) => offset < r.end,
        Source::Stream(_) | Source::Transfer(_) => offset == r.offset && offset < r.end,
    }
}

/// Up to `max` bytes at `offset` of the reader's block, from wherever the reader gets them.
async fn read_from(
    reader: &mut BlockReader,
    offset: u64,
    max: usize,
    dest: Option<&mut [u8]>,
    ctx: &Context,
    path: &str,
) -> Result<Got> {
    let metrics = &ctx.metrics;
    let index = reader.index;
    let (got, counter) = match &mut reader.source {
        Source::ShortCircuit(block) => (
            Got::Bytes(block.read(offset, reader.end, max).await?),
            &metrics.bytes_read_short_circuit,
        ),
        Source::Transfer(t) => {
            let max = max.min((reader.end - offset) as usize);
            let got = match dest {
                Some(dst) => Got::Copied(t.read_into(&mut dst[..max]).await?),
                None => Got::Bytes(t.read_bytes(max).await?),
            };
            (got, &metrics.bytes_read_remote)
        }
        Source::Stream(stream) => {
            let chunk = stream
                .read(max, || {
                    format!("block {index} of {path} at offset {offset}")
                })
                .await?;
            let counter = if stream.from_ufs {
                &metrics.bytes_read_ufs
            } else {
                &metrics.bytes_read_remote
            };
            (Got::Bytes(chunk), counter)
        }
    };
    reader.offset = offset + got.len() as u64;
    ClientMetrics::add(counter, got.len() as u64);
    Ok(got)
}

impl Drop for FileInStream {
    fn drop(&mut self) {
        // An unclosed stream still releases its short-circuit locks rather than waiting out the
        // lease.
        let held: Vec<ShortCircuitBlock> = self
            .reader
            .take()
            .into_iter()
            .chain(std::mem::take(&mut self.mapped))
            .filter_map(|r| match r.source {
                Source::ShortCircuit(block) => Some(block),
                Source::Stream(_) | Source::Transfer(_) => None,
            })
            .collect();
        if held.is_empty() {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                for block in held {
                    block.close().await;
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
