//! Writing a file: data is cut into chunks of `client.chunk_size` and blocks of the file's block
//! size. Cached write types send each block to one worker, either straight into its tier files
//! (short-circuit, when the worker is on this host) or as a `WriteBlock` stream; THROUGH streams
//! the whole file to the UFS through a worker's `WriteUfsFile`. The file becomes complete (and
//! readable) only in `close`; a cancelled or dropped stream leaves no complete file behind.

use std::io::Write as _;
use std::sync::Arc;

use alluvium_common::ids::block_id;
use alluvium_common::{Error, ErrorCode, Result};
use alluvium_proto as pb;
use alluvium_proto::{BlockInfo, BlockLocation, FileInfo, WorkerInfo, WriteType};
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use crate::config::options::CreateFileOptions;
use crate::context::{no_live_worker, with_path, Context};
use crate::locality;
use crate::metrics::ClientMetrics;
use crate::worker_pool::WorkerClient;

/// Messages queued towards a worker before `write` waits (bounds memory per stream).
const QUEUE_DEPTH: usize = 4;

enum BlockWriter {
    /// Short-circuit: a tmp file of a local worker's tier, filled with std::fs.
    Local {
        block_id: u64,
        file: Option<std::fs::File>,
        written: u64,
        /// Bytes the worker has reserved for the block; 0 = the whole block (a worker that
        /// reserves up front).
        reserved: u64,
    },
    /// A `WriteBlock` stream; the call runs in its own task so the stream is driven while we feed
    /// it.
    Remote {
        block_id: u64,
        tx: mpsc::Sender<pb::WriteBlockRequest>,
        task: JoinHandle<Result<pb::WriteBlockResponse>>,
        written: u64,
    },
}

struct UfsWriter {
    tx: mpsc::Sender<pb::WriteUfsFileRequest>,
    task: JoinHandle<Result<pb::WriteUfsFileResponse>>,
}

pub struct FileOutStream {
    ctx: Arc<Context>,
    info: FileInfo,
    write_type: WriteType,
    opts: CreateFileOptions,
    block_size: u64,
    chunk_size: usize,
    buf: BytesMut,
    /// Bytes handed to block writers or the UFS writer.
    flushed: u64,
    worker: WorkerInfo,
    client: WorkerClient,
    short_circuit: bool,
    session_id: u64,
    block: Option<BlockWriter>,
    ufs: Option<UfsWriter>,
    blocks: Vec<BlockInfo>,
    done: bool,
}

impl FileOutStream {
    pub(crate) async fn start(
        ctx: Arc<Context>,
        info: FileInfo,
        write_type: WriteType,
        opts: CreateFileOptions,
    ) -> Result<Self> {
        let path = info.path.clone();
        let made = Self::prepare(ctx.clone(), info, write_type, opts).await;
        if made.is_err() {
            // CreateFile succeeded: do not leave the incomplete file behind.
            delete_incomplete(&ctx, &path).await;
        }
        made
    }

    async fn prepare(
        ctx: Arc<Context>,
        info: FileInfo,
        write_type: WriteType,
        opts: CreateFileOptions,
    ) -> Result<Self> {
        if info.block_size == 0 {
            return Err(Error::internal(format!(
                "{}: the master returned a block size of 0",
                info.path
            )));
        }
        let workers = ctx.live_workers_waiting(&info.path).await?;
        let hostname = ctx.hostname.clone();
        let worker = locality::choose_write_worker(&workers, &hostname, &[])
            .cloned()
            .ok_or_else(|| no_live_worker(&info.path))?;
        let client = ctx.workers.get(worker.address.as_ref())?;
        let short_circuit = ctx.config.client.short_circuit_write
            && write_type != WriteType::Through
            && locality::is_local(worker.address.as_ref(), &hostname);
        let chunk_size = usize::try_from(ctx.config.client.chunk_size.0)
            .unwrap_or(1 << 20)
            .clamp(4096, alluvium_proto::MAX_MESSAGE_BYTES / 2);
        tracing::debug!(
            path = %info.path,
            write_type = ?write_type,
            worker = worker.id,
            short_circuit,
            "opened out stream"
        );
        let mut s = Self {
            block_size: info.block_size,
            ctx,
            info,
            write_type,
            opts,
            chunk_size,
            buf: BytesMut::new(),
            flushed: 0,
            worker,
            client,
            short_circuit,
            session_id: rand::random(),
            block: None,
            ufs: None,
            blocks: Vec::new(),
            done: false,
        };
        if write_type == WriteType::Through {
            s.open_ufs().await?;
        }
        Ok(s)
    }

    /// The file as created (id, path, block size).
    pub fn info(&self) -> &FileInfo {
        &self.info
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.flushed + self.buf.len() as u64
    }

    pub async fn write(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let take = (self.chunk_size - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() >= self.chunk_size {
                let chunk = self.buf.split().freeze();
                self.send(chunk).await?;
            }
        }
        Ok(())
    }

    /// Writes without copying when the data is at least a chunk long.
    pub async fn write_bytes(&mut self, mut data: Bytes) -> Result<()> {
        if !self.buf.is_empty() {
            // Top up the pending chunk (a copy of at most one chunk), then go on without copying.
            let take = (self.chunk_size - self.buf.len()).min(data.len());
            let head = data.split_to(take);
            self.write(&head).await?;
            if data.is_empty() {
                return Ok(());
            }
        }
        while data.len() >= self.chunk_size {
            let chunk = data.split_to(self.chunk_size);
            self.send(chunk).await?;
        }
        self.buf.extend_from_slice(&data);
        Ok(())
    }

    /// Finishes the file: last block, UFS copy as the write type requires, then `CompleteFile`.
    pub async fn close(mut self) -> Result<FileInfo> {
        match self.finish().await {
            Ok(info) => {
                self.done = true;
                Ok(info)
            }
            Err(e) => {
                self.abort().await;
                if e.code == ErrorCode::Unavailable {
                    self.ctx.forget_workers();
                }
                Err(with_path(e, &self.info.path))
            }
        }
    }

    /// Abandons the file: partial blocks are aborted and the incomplete file deleted.
    pub async fn cancel(mut self) -> Result<()> {
        self.abort().await;
        Ok(())
    }

    async fn finish(&mut self) -> Result<FileInfo> {
        if !self.buf.is_empty() {
            let chunk = self.buf.split().freeze();
            self.send(chunk).await?;
        }
        let length = self.flushed;
        let mut req = pb::CompleteFileRequest {
            path: self.info.path.clone(),
            file_id: self.info.file_id,
            length,
            persisted: false,
            async_persist: false,
        };
        match self.write_type {
            WriteType::Through => {
                let ufs = self
                    .ufs
                    .take()
                    .ok_or_else(|| Error::internal("THROUGH stream has no UFS writer"))?;
                drop(ufs.tx);
                let resp = join(ufs.task).await?;
                if resp.length != length {
                    return Err(Error::internal(format!(
                        "the worker wrote {} bytes to the UFS, expected {length}",
                        resp.length
                    )));
                }
                req.persisted = true;
            }
            _ => {
                self.finish_block().await?;
                if self.write_type == WriteType::CacheThrough {
                    let persist = pb::PersistFileRequest {
                        file_id: self.info.file_id,
                        ufs: self.info.ufs.clone(),
                        length,
                        blocks: self.blocks.clone(),
                    };
                    tracing::debug!(path = %self.info.path, worker = self.worker.id, "persisting (CACHE_THROUGH)");
                    self.client
                        .clone()
                        .persist_file(persist)
                        .await
                        .map_err(Error::from)?;
                    req.persisted = true;
                } else if self.write_type == WriteType::AsyncThrough {
                    req.async_persist = true;
                }
            }
        }
        let info = self.ctx.complete_file(req).await?;
        tracing::debug!(path = %info.path, length, "file complete");
        Ok(info)
    }

    /// Sends one chunk, splitting it at block boundaries.
    async fn send(&mut self, mut chunk: Bytes) -> Result<()> {
        if self.write_type == WriteType::Through {
            let n = chunk.len() as u64;
            self.send_ufs(chunk).await?;
            self.flushed += n;
            ClientMetrics::add(&self.ctx.metrics.bytes_written_ufs, n);
            return Ok(());
        }
        while !chunk.is_empty() {
            if self.block.is_none() {
                self.open_block().await?;
            }
            let in_block = self.flushed % self.block_size;
            let n = ((self.block_size - in_block) as usize).min(chunk.len());
            let part = chunk.split_to(n);
            self.write_block_part(part).await?;
            self.flushed += n as u64;
            if self.flushed.is_multiple_of(self.block_size) {
                self.finish_block().await?;
            }
        }
        Ok(())
    }

    async fn open_block(&mut self) -> Result<()> {
        let index = self.flushed / self.block_size;
        let id = block_id(self.info.file_id, index);
        if self.short_circuit {
            match self.open_local_block(id).await {
                Ok(w) => {
                    self.block = Some(w);
                    return Ok(());
                }
                Err(e) if e.code == ErrorCode::ResourceExhausted => return Err(e),
                Err(e) => {
                    // E.g. the worker's tier dirs are not visible from here (another container):
                    // stream the rest of the file instead.
                    tracing::debug!(block_id = id, error = %e, "short-circuit write failed, streaming instead");
                    self.short_circuit = false;
                }
            }
        }
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let header = pb::WriteBlockRequest {
            value: Some(pb::write_block_request::Value::Header(
                pb::WriteBlockHeader {
                    block_id: id,
                    reserve_bytes: self.block_size,
                    tier: String::new(),
                    pinned: self.opts.pinned,
                    // Not even CACHE_THROUGH: evictable only once the file is in the UFS
                    // (the worker's PersistFile, or the master, says so).
                    durable: false,
                },
            )),
        };
        // Cannot fail: the receiver is alive and the queue empty.
        let _ = tx.send(header).await;
        let mut client = self.client.clone();
        let task = tokio::spawn(async move {
            client
                .write_block(ReceiverStream::new(rx))
                .await
                .map(|r| r.into_inner())
                .map_err(Error::from)
        });
        tracing::debug!(
            block_id = id,
            worker = self.worker.id,
            "writing block (remote)"
        );
        self.block = Some(BlockWriter::Remote {
            block_id: id,
            tx,
            task,
            written: 0,
        });
        Ok(())
    }

    async fn open_local_block(&mut self, id: u64) -> Result<BlockWriter> {
        let resp = self
            .client
            .clone()
            .create_local_block(pb::CreateLocalBlockRequest {
                block_id: id,
                session_id: self.session_id,
                reserve_bytes: self.block_size,
                tier: String::new(),
                pinned: self.opts.pinned,
                durable: false,
                grows: true,
            })
            .await
            .map_err(Error::from)?
            .into_inner();
        let path = resp.path.clone();
        let opened = tokio::task::spawn_blocking(move || {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .map_err(|e| Error::from(e).context(format!("short-circuit block file {path}")))
        })
        .await
        .map_err(|e| Error::internal(format!("short-circuit open task failed: {e}")))
        .and_then(|r| r);
        match opened {
            Ok(file) => {
                tracing::debug!(block_id = id, path = %resp.path, tier = %resp.tier, "writing block (short-circuit)");
                Ok(BlockWriter::Local {
                    block_id: id,
                    file: Some(file),
                    written: 0,
                    reserved: resp.reserved_bytes,
                })
            }
            Err(e) => {
                self.abort_local(id).await;
                Err(e)
            }
        }
    }

    async fn write_block_part(&mut self, part: Bytes) -> Result<()> {
        let n = part.len() as u64;
        let metrics = &self.ctx.metrics;
        let block_size = self.block_size;
        match self.block.as_mut() {
            Some(BlockWriter::Local {
                block_id,
                file,
                written,
                reserved,
            }) => {
                let end = *written + n;
                if *reserved != 0 && end > *reserved {
                    // The worker reserves as the data arrives: ask for more first, doubling,
                    // so a block costs a handful of calls.
                    // Near a full tier, by exactly what is needed.
                    let doubled = end.max(reserved.saturating_mul(2)).min(block_size.max(end));
                    let (block_id, session_id) = (*block_id, self.session_id);
                    let grow = |total_bytes| {
                        let mut client = self.client.clone();
                        async move {
                            client
                                .grow_local_block(pb::GrowLocalBlockRequest {
                                    block_id,
                                    session_id,
                                    total_bytes,
                                })
                                .await
                                .map_err(Error::from)
                        }
                    };
                    *reserved = match grow(doubled).await {
                        Ok(_) => doubled,
                        Err(e) if e.code == ErrorCode::ResourceExhausted && doubled > end => {
                            grow(end).await?;
                            end
                        }
                        Err(e) => return Err(e),
                    };
                }
                let mut f = file
                    .take()
                    .ok_or_else(|| Error::internal("short-circuit block file lost"))?;
                let (f, r) = tokio::task::spawn_blocking(move || {
                    let r = f.write_all(&part);
                    (f, r)
                })
                .await
                .map_err(|e| Error::internal(format!("short-circuit write task failed: {e}")))?;
                *file = Some(f);
                r.map_err(|e| Error::from(e).context("short-circuit write"))?;
                *written += n;
                ClientMetrics::add(&metrics.bytes_written_short_circuit, n);
            }
            Some(BlockWriter::Remote { tx, written, .. }) => {
                let msg = pb::WriteBlockRequest {
                    value: Some(pb::write_block_request::Value::Chunk(part)),
                };
                if tx.send(msg).await.is_err() {
                    // The call ended early: its result says why.
                    return match self.block.take() {
                        Some(BlockWriter::Remote { task, .. }) => match join(task).await {
                            Err(e) => Err(e),
                            Ok(_) => Err(Error::internal("the worker ended the block write early")),
                        },
                        _ => Err(Error::internal("block writer lost")),
                    };
                }
                *written += n;
                ClientMetrics::add(&metrics.bytes_written_remote, n);
            }
            None => return Err(Error::internal("no block open for writing")),
        }
        Ok(())
    }

    /// Completes the open block (if any) and records where it lives.
    async fn finish_block(&mut self) -> Result<()> {
        let Some(writer) = self.block.take() else {
            return Ok(());
        };
        let (id, length, tier) = match writer {
            BlockWriter::Local {
                block_id,
                file,
                written,
                ..
            } => {
                drop(file);
                let r = self
                    .client
                    .clone()
                    .commit_local_block(pb::CommitLocalBlockRequest {
                        block_id,
                        session_id: self.session_id,
                        length: written,
                    })
                    .await;
                if let Err(s) = r {
                    self.abort_local(block_id).await;
                    return Err(s.into());
                }
                (block_id, written, String::new())
            }
            BlockWriter::Remote {
                block_id,
                tx,
                task,
                written,
            } => {
                drop(tx);
                let resp = join(task).await?;
                if resp.length != written {
                    return Err(Error::internal(format!(
                        "worker stored {} bytes of block {block_id}, expected {written}",
                        resp.length
                    )));
                }
                (block_id, written, resp.tier)
            }
        };
        let index = alluvium_common::ids::block_index_of(id);
        self.blocks.push(BlockInfo {
            block_id: id,
            length,
            offset: index * self.block_size,
            locations: vec![BlockLocation {
                worker_id: self.worker.id,
                address: self.worker.address.clone(),
                tier,
            }],
        });
        Ok(())
    }

    async fn open_ufs(&mut self) -> Result<()> {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let header = pb::WriteUfsFileRequest {
            value: Some(pb::write_ufs_file_request::Value::Header(
                pb::WriteUfsFileHeader {
                    ufs: self.info.ufs.clone(),
                    overwrite: self.opts.overwrite,
                },
            )),
        };
        let _ = tx.send(header).await;
        let mut client = self.client.clone();
        let task = tokio::spawn(async move {
            client
                .write_ufs_file(ReceiverStream::new(rx))
                .await
                .map(|r| r.into_inner())
                .map_err(Error::from)
        });
        tracing::debug!(path = %self.info.path, worker = self.worker.id, "writing through to the UFS");
        self.ufs = Some(UfsWriter { tx, task });
        Ok(())
    }

    async fn send_ufs(&mut self, chunk: Bytes) -> Result<()> {
        let w = self
            .ufs
            .as_ref()
            .ok_or_else(|| Error::internal("THROUGH stream has no UFS writer"))?;
        let msg = pb::WriteUfsFileRequest {
            value: Some(pb::write_ufs_file_request::Value::Chunk(chunk)),
        };
        if w.tx.send(msg).await.is_err() {
            if let Some(w) = self.ufs.take() {
                join(w.task).await?;
            }
            return Err(Error::internal("the worker ended the UFS write early"));
        }
        Ok(())
    }

    async fn abort_local(&self, block_id: u64) {
        let r = self
            .client
            .clone()
            .abort_local_block(pb::AbortLocalBlockRequest {
                block_id,
                session_id: self.session_id,
            })
            .await;
        if let Err(e) = r {
            tracing::debug!(block_id, error = %e, "abort of a short-circuit block failed");
        }
    }

    /// Aborts in-flight writes and deletes the incomplete file.
    async fn abort(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        if let Some(cleanup) = self.take_cleanup() {
            cleanup.await;
        }
    }

    /// Everything needed to clean up, detached from `self` so `Drop` can spawn it.
    fn take_cleanup(&mut self) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        let block = self.block.take();
        let ufs = self.ufs.take();
        let ctx = self.ctx.clone();
        let path = self.info.path.clone();
        let mut client = self.client.clone();
        let session_id = self.session_id;
        Some(async move {
            match block {
                // Aborting the task resets the HTTP/2 stream: the worker sees an error, not a
                // short block, and discards it.
                Some(BlockWriter::Remote { task, tx, .. }) => {
                    // Cancel the call before the sender goes: dropping the sender first would
                    // end the stream cleanly and could let the worker keep a short block.
                    task.abort();
                    let _ = task.await;
                    drop(tx);
                }
                Some(BlockWriter::Local { block_id, file, .. }) => {
                    drop(file);
                    let _ = client
                        .abort_local_block(pb::AbortLocalBlockRequest {
                            block_id,
                            session_id,
                        })
                        .await;
                }
                None => {}
            }
            if let Some(u) = ufs {
                u.task.abort();
                let _ = u.task.await;
                drop(u.tx);
            }
            delete_incomplete(&ctx, &path).await;
        })
    }
}

impl Drop for FileOutStream {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        if let (Ok(handle), Some(cleanup)) =
            (tokio::runtime::Handle::try_current(), self.take_cleanup())
        {
            tracing::debug!(path = %self.info.path, "out stream dropped unclosed; cleaning up");
            handle.spawn(cleanup);
        }
    }
}

async fn delete_incomplete(ctx: &Context, path: &str) {
    let r = ctx.delete(path, false, false).await;
    match r {
        Ok(()) => tracing::debug!(path, "deleted incomplete file"),
        Err(e) if e.code == ErrorCode::NotFound => {}
        Err(e) => tracing::warn!(path, error = %e, "could not delete an incomplete file"),
    }
}

async fn join<T>(task: JoinHandle<Result<T>>) -> Result<T> {
    task.await
        .map_err(|e| Error::internal(format!("write task failed: {e}")))?
}
