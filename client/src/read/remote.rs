//! Reading a block another worker caches: over the block transfer protocol (raw bytes on TCP)
//! when enabled, else as a `ReadBlock` gRPC stream from the offset to the block's end. The gRPC
//! stream also carries a UFS read-through ([`super::ufs`]).

use alluvium_common::{Error, ErrorCode, Result};
use alluvium_proto as pb;
use alluvium_proto::block_transfer::ReadRequest;
use alluvium_proto::ReadType;
use bytes::Bytes;
use futures::StreamExt;
use tonic::Streaming;

use super::{BlockReader, FileInStream, Source};
use crate::worker_pool::{worker_address, WorkerClient};

/// A `ReadBlock` stream of one block, read forward.
pub(super) struct BlockStream {
    stream: Streaming<pb::ReadBlockResponse>,
    /// Bytes received but not yet handed out.
    pending: Bytes,
    /// The worker reads the block through from the UFS.
    pub from_ufs: bool,
}

impl BlockStream {
    /// The next up to `max` bytes. `describe` names the block and offset for an early end.
    pub async fn read(&mut self, max: usize, describe: impl FnOnce() -> String) -> Result<Bytes> {
        if self.pending.is_empty() {
            match self.stream.next().await {
                Some(Ok(msg)) => self.pending = msg.data,
                Some(Err(s)) => return Err(s.into()),
                None => {
                    return Err(Error::new(
                        ErrorCode::Internal,
                        format!("the worker ended {} early", describe()),
                    ))
                }
            }
            if self.pending.is_empty() {
                return Err(Error::internal("the worker sent an empty chunk"));
            }
        }
        let n = self.pending.len().min(max);
        Ok(self.pending.split_to(n))
    }
}

impl FileInStream {
    /// A cached block of a remote worker: over the block transfer protocol when enabled, else (or
    /// when that fails) as a `ReadBlock` gRPC stream.
    pub(super) async fn open_remote(
        &self,
        index: usize,
        block: &pb::BlockInfo,
        loc: &pb::BlockLocation,
        client: WorkerClient,
        offset: u64,
        want: Option<u64>,
    ) -> Result<BlockReader> {
        let raw = self.ctx.config.client.block_transfer
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
            match self.ctx.transfers.read(&addr, req).await {
                Ok(t) => {
                    return Ok(BlockReader {
                        index,
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

    pub(super) async fn open_stream(
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
            chunk_size: u32::try_from(self.ctx.config.client.chunk_size.0).unwrap_or(0),
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
            offset,
            end: if length == 0 {
                block.length
            } else {
                offset + length
            },
            worker_id: 0,
            source: Source::Stream(BlockStream {
                stream,
                pending: Bytes::new(),
                from_ufs: is_ufs,
            }),
        })
    }
}
