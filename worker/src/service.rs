//! The `BlockWorker` gRPC service.

use std::pin::Pin;
use std::sync::Arc;

use alluvium_common::{Error, ErrorCode, Result};
use alluvium_proto::block_worker_server::BlockWorker;
use alluvium_proto::{
    write_block_request, write_ufs_file_request, AbortLocalBlockRequest, CacheBlockRequest,
    CacheBlockResponse, CloseLocalBlockRequest, CommitLocalBlockRequest, CreateLocalBlockRequest,
    CreateLocalBlockResponse, Empty, GrowLocalBlockRequest, OpenLocalBlockRequest,
    OpenLocalBlockResponse, PersistFileRequest, ReadBlockRequest, ReadBlockResponse, ReadType,
    WorkerStatus, WriteBlockRequest, WriteBlockResponse, WriteUfsFileRequest, WriteUfsFileResponse,
    MAX_MESSAGE_BYTES,
};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::lease::Leases;
use crate::master_client::MasterClient;
use crate::metrics::WorkerMetrics;
use crate::persist::Persister;
use crate::read_through::{Range, ReadThrough, UfsRead};
use crate::store::{BlockStore, BlockWriter, Reservation};
use crate::ufs_mounts::UfsMounts;

/// Writers reserve this much up front and then grow their reservation in steps of this much as
/// their data arrives (a 0-byte file never holds a whole block's space).
const GROW_STEP: u64 = 1 << 20;

pub struct WorkerService {
    pub store: Arc<BlockStore>,
    pub master: Arc<MasterClient>,
    pub mounts: Arc<UfsMounts>,
    pub read_through: Arc<ReadThrough>,
    pub persister: Arc<Persister>,
    pub leases: Arc<Leases>,
    pub metrics: WorkerMetrics,
    /// Default bytes per ReadBlock message.
    pub chunk_size: usize,
    pub start_time_ms: i64,
}

type ReadStream = Pin<Box<dyn Stream<Item = Result<ReadBlockResponse, Status>> + Send>>;

/// `[offset, offset + length)` of a block of `block_len` bytes; length 0 = to the end.
pub(crate) fn check_range(
    block_id: u64,
    offset: u64,
    length: u64,
    block_len: u64,
) -> Result<(u64, u64)> {
    let length = if length == 0 {
        block_len.saturating_sub(offset)
    } else {
        length
    };
    match offset.checked_add(length) {
        Some(end) if offset <= block_len && end <= block_len => Ok((offset, length)),
        _ => Err(Error::invalid_argument(format!(
            "block {block_id}: range [{offset}, {}) is outside the block's {block_len} bytes",
            offset.saturating_add(length)
        ))),
    }
}

/// Grows the reservation of a block being written to hold `end` bytes: by a whole
/// [`GROW_STEP`] when there is room, else by exactly what is needed (a block may end in the last
/// free bytes of a tier). Returns the new reservation.
async fn grow_reservation(
    store: &BlockStore,
    session: u64,
    block_id: u64,
    end: u64,
) -> Result<u64> {
    let wanted = end.next_multiple_of(GROW_STEP);
    match store.grow(session, block_id, wanted).await {
        Ok(()) => Ok(wanted),
        Err(e) if e.code == ErrorCode::ResourceExhausted && wanted > end => {
            store.grow(session, block_id, end).await?;
            Ok(end)
        }
        Err(e) => Err(e),
    }
}

impl WorkerService {
    fn chunk(&self, requested: u32) -> usize {
        let c = if requested == 0 {
            self.chunk_size
        } else {
            requested as usize
        };
        // Leave room for the message framing.
        c.clamp(1, MAX_MESSAGE_BYTES - 64 * 1024)
    }

    async fn write_block_inner(
        &self,
        session: u64,
        block_id: u64,
        reserved: u64,
        path: &std::path::Path,
        stream: &mut Streaming<WriteBlockRequest>,
    ) -> Result<u64> {
        let mut f = BlockWriter::open(path).await?;
        let mut reserved = reserved;
        while let Some(msg) = stream.message().await? {
            match msg.value {
                Some(write_block_request::Value::Chunk(data)) => {
                    let end = f.written() + data.len() as u64;
                    if end > reserved {
                        reserved = grow_reservation(&self.store, session, block_id, end).await?;
                    }
                    f.write(data)
                        .await
                        .map_err(|e| e.context(format!("block {block_id}")))?;
                }
                Some(write_block_request::Value::Header(_)) => {
                    return Err(Error::invalid_argument(format!(
                        "block {block_id}: a second header in the write stream"
                    )))
                }
                None => {}
            }
        }
        let written = f.written();
        Ok(written)
    }

    async fn write_ufs_inner(&self, mut stream: Streaming<WriteUfsFileRequest>) -> Result<u64> {
        let header = match stream.message().await? {
            Some(WriteUfsFileRequest {
                value: Some(write_ufs_file_request::Value::Header(h)),
            }) => h,
            _ => {
                return Err(Error::invalid_argument(
                    "WriteUfsFile: the first message must be the header",
                ))
            }
        };
        let loc = header.ufs.ok_or_else(|| {
            Error::invalid_argument("WriteUfsFile: the header names no UFS location")
        })?;
        let ufs = self.mounts.get(loc.mount_id).await?;
        let uri = ufs.uri_of(&loc.ufs_path);
        if !header.overwrite && ufs.stat(&loc.ufs_path).await?.is_some() {
            return Err(Error::already_exists(format!(
                "{uri} already exists in the UFS"
            )));
        }
        let mut w = ufs.writer(&loc.ufs_path).await?;
        let copied: Result<()> = async {
            while let Some(msg) = stream.message().await? {
                match msg.value {
                    Some(write_ufs_file_request::Value::Chunk(data)) => w.write(data).await?,
                    Some(write_ufs_file_request::Value::Header(_)) => {
                        return Err(Error::invalid_argument(format!(
                            "{uri}: a second header in the write stream"
                        )))
                    }
                    None => {}
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = copied {
            let _ = w.abort().await;
            return Err(e);
        }
        let n = w.close().await?;
        tracing::debug!(%uri, length = n, "wrote UFS file");
        Ok(n)
    }

    fn read_from_cache(&self, data: Bytes, chunk: usize) -> ReadStream {
        let metrics = self.metrics.clone();
        let pieces = data.len().div_ceil(chunk);
        let stream = futures::stream::iter((0..pieces).map(move |i| {
            let piece = data.slice(i * chunk..((i + 1) * chunk).min(data.len()));
            metrics.read("cache", piece.len() as u64);
            Ok(ReadBlockResponse { data: piece })
        }));
        Box::pin(stream)
    }
}

#[tonic::async_trait]
impl BlockWorker for WorkerService {
    type ReadBlockStream = ReadStream;

    async fn read_block(
        &self,
        request: Request<ReadBlockRequest>,
    ) -> Result<Response<Self::ReadBlockStream>, Status> {
        let r = request.into_inner();
        let id = r.block_id;
        let chunk = self.chunk(r.chunk_size);
        let read_type = ReadType::try_from(r.read_type).unwrap_or(ReadType::Cache);
        if read_type == ReadType::CachePromote && self.store.contains(id) {
            let _ = self.store.promote(id).await;
        }
        match self.store.lock(id).await {
            Ok(lock) => {
                let (off, len) = check_range(id, r.offset, r.length, lock.length)?;
                let data = lock.map_range(off, len)?;
                Ok(Response::new(self.read_from_cache(data, chunk)))
            }
            Err(e) if e.code == ErrorCode::NotFound => {
                let Some(src) = r.ufs else {
                    return Err(Error::not_found(format!(
                        "block {id} is not cached on this worker and the request names no UFS source"
                    ))
                    .into());
                };
                let (offset, length) = check_range(id, r.offset, r.length, src.block_length)?;
                let (tx, rx) = mpsc::channel(4);
                self.read_through.read(
                    UfsRead {
                        block_id: id,
                        src,
                        range: Range { offset, length },
                        chunk,
                        no_cache: read_type == ReadType::NoCache,
                        pinned: r.pinned,
                    },
                    tx,
                );
                let stream = ReceiverStream::new(rx).map(|r| {
                    r.map(|data| ReadBlockResponse { data })
                        .map_err(Status::from)
                });
                Ok(Response::new(Box::pin(stream)))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn write_block(
        &self,
        request: Request<Streaming<WriteBlockRequest>>,
    ) -> Result<Response<WriteBlockResponse>, Status> {
        let mut stream = request.into_inner();
        let header = match stream.message().await? {
            Some(WriteBlockRequest {
                value: Some(write_block_request::Value::Header(h)),
            }) => h,
            _ => {
                return Err(Status::invalid_argument(
                    "WriteBlock: the first message must be the header",
                ))
            }
        };
        let session = rand::random::<u64>();
        let id = header.block_id;
        let tmp = self
            .store
            .reserve(&Reservation {
                session_id: session,
                block_id: id,
                bytes: header.reserve_bytes,
                upfront: Some(GROW_STEP),
                tier: header.tier.clone(),
                pinned: header.pinned,
                durable: header.durable,
            })
            .await?;
        let written = self
            .write_block_inner(session, id, tmp.reserved, &tmp.path, &mut stream)
            .await;
        let committed = match written {
            Ok(n) => self.store.commit(session, id, n).await,
            Err(e) => Err(e),
        };
        match committed {
            Ok(c) => {
                self.master.commit_block(id, c.length, &c.tier).await;
                Ok(Response::new(WriteBlockResponse {
                    length: c.length,
                    tier: c.tier,
                }))
            }
            Err(e) => {
                self.store.abort(session, id).await;
                tracing::debug!(block_id = id, error = %e, "block write failed");
                Err(e.into())
            }
        }
    }

    async fn write_ufs_file(
        &self,
        request: Request<Streaming<WriteUfsFileRequest>>,
    ) -> Result<Response<WriteUfsFileResponse>, Status> {
        let length = self.write_ufs_inner(request.into_inner()).await?;
        Ok(Response::new(WriteUfsFileResponse { length }))
    }

    async fn persist_file(
        &self,
        request: Request<PersistFileRequest>,
    ) -> Result<Response<Empty>, Status> {
        let r = request.into_inner();
        let local = self
            .persister
            .persist(r.file_id, r.ufs, r.length, r.blocks)
            .await?;
        // Written to the file's own UFS path: the local copies may be evicted from now on.
        self.store.mark_durable(&local);
        Ok(Response::new(Empty {}))
    }

    async fn cache_block(
        &self,
        request: Request<CacheBlockRequest>,
    ) -> Result<Response<CacheBlockResponse>, Status> {
        let r = request.into_inner();
        let src = r.ufs.ok_or_else(|| {
            Error::invalid_argument(format!(
                "CacheBlock of block {}: no UFS source given",
                r.block_id
            ))
        })?;
        let (loaded, tier) = self
            .read_through
            .cache(r.block_id, &src, r.pinned, self.chunk_size)
            .await?;
        Ok(Response::new(CacheBlockResponse { loaded, tier }))
    }

    async fn open_local_block(
        &self,
        request: Request<OpenLocalBlockRequest>,
    ) -> Result<Response<OpenLocalBlockResponse>, Status> {
        let r = request.into_inner();
        let info = match self.leases.renew(r.session_id, r.block_id) {
            Some(info) => info,
            None => {
                if r.promote {
                    self.store.promote(r.block_id).await?;
                }
                let lock = self.store.lock(r.block_id).await?;
                self.metrics.short_circuit_open();
                self.leases.insert(r.session_id, lock)
            }
        };
        Ok(Response::new(OpenLocalBlockResponse {
            path: info.path,
            length: info.length,
            tier: info.tier,
            lease_ms: self.leases.duration().as_millis() as i64,
        }))
    }

    async fn close_local_block(
        &self,
        request: Request<CloseLocalBlockRequest>,
    ) -> Result<Response<Empty>, Status> {
        let r = request.into_inner();
        self.leases.close(r.session_id, r.block_id);
        Ok(Response::new(Empty {}))
    }

    async fn create_local_block(
        &self,
        request: Request<CreateLocalBlockRequest>,
    ) -> Result<Response<CreateLocalBlockResponse>, Status> {
        let r = request.into_inner();
        let tmp = self
            .store
            .reserve(&Reservation {
                session_id: r.session_id,
                block_id: r.block_id,
                bytes: r.reserve_bytes,
                upfront: r.grows.then_some(GROW_STEP),
                tier: r.tier,
                pinned: r.pinned,
                durable: r.durable,
            })
            .await?;
        self.metrics.short_circuit_create();
        Ok(Response::new(CreateLocalBlockResponse {
            path: tmp.path.to_string_lossy().into_owned(),
            tier: tmp.tier,
            reserved_bytes: tmp.reserved,
        }))
    }

    async fn grow_local_block(
        &self,
        request: Request<GrowLocalBlockRequest>,
    ) -> Result<Response<Empty>, Status> {
        let r = request.into_inner();
        self.store
            .grow(r.session_id, r.block_id, r.total_bytes)
            .await?;
        Ok(Response::new(Empty {}))
    }

    async fn commit_local_block(
        &self,
        request: Request<CommitLocalBlockRequest>,
    ) -> Result<Response<Empty>, Status> {
        let r = request.into_inner();
        let c = self
            .store
            .commit(r.session_id, r.block_id, r.length)
            .await?;
        self.master
            .commit_block(r.block_id, c.length, &c.tier)
            .await;
        Ok(Response::new(Empty {}))
    }

    async fn abort_local_block(
        &self,
        request: Request<AbortLocalBlockRequest>,
    ) -> Result<Response<Empty>, Status> {
        let r = request.into_inner();
        self.store.abort(r.session_id, r.block_id).await;
        Ok(Response::new(Empty {}))
    }

    async fn get_worker_status(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<WorkerStatus>, Status> {
        Ok(Response::new(WorkerStatus {
            worker_id: self.master.worker_id().unwrap_or(0),
            address: Some(self.master.address().clone()),
            tiers: self.store.usage(),
            start_time_ms: self.start_time_ms,
            block_count: self.store.block_count(),
        }))
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
