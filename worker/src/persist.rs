//! Copying a file's blocks to its UFS path (`PersistFile` and the master's async-persist
//! commands). Local blocks are written from their mmap without copies; blocks this worker does
//! not hold are fetched from a worker that does with `ReadBlock`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use alluvium_common::identity::IdentityInterceptor;
use alluvium_common::{Error, Result};
use alluvium_proto::block_worker_client::BlockWorkerClient;
use alluvium_proto::{
    BlockInfo, BlockLocation, ReadBlockRequest, ReadType, UfsLocation, WorkerNetAddress,
    MAX_MESSAGE_BYTES,
};
use alluvium_ufs::UfsWriter;
use parking_lot::Mutex;
use tonic::transport::{Channel, Endpoint};

use crate::store::BlockStore;
use crate::ufs_mounts::UfsMounts;

/// Bytes handed to the UFS writer at a time.
const WRITE_CHUNK: usize = 8 << 20;

pub struct Persister {
    store: Arc<BlockStore>,
    mounts: Arc<UfsMounts>,
    identity: IdentityInterceptor,
    me: WorkerNetAddress,
    peers: Mutex<HashMap<String, Channel>>,
}

impl Persister {
    pub fn new(
        store: Arc<BlockStore>,
        mounts: Arc<UfsMounts>,
        identity: IdentityInterceptor,
        me: WorkerNetAddress,
    ) -> Self {
        Self {
            store,
            mounts,
            identity,
            me,
            peers: Mutex::new(HashMap::new()),
        }
    }

    /// Writes file `file_id` (`length` bytes, made of `blocks` in order) to `ufs`. Returns when
    /// the UFS holds it durably, with the ids of the blocks copied from this worker's store.
    /// Whether those blocks may now be evicted is the caller's call: a copy written to the
    /// file's own UFS path (`PersistFile`) makes them durable; a staged copy (the master's
    /// async-persist commands) does not until the master publishes it, and the master says so
    /// in a heartbeat response.
    pub async fn persist(
        &self,
        file_id: u64,
        ufs: Option<UfsLocation>,
        length: u64,
        blocks: Vec<BlockInfo>,
    ) -> Result<Vec<u64>> {
        let loc = ufs.ok_or_else(|| {
            Error::invalid_argument(format!("persisting file {file_id}: no UFS location given"))
        })?;
        let total: u64 = blocks.iter().map(|b| b.length).sum();
        if total != length {
            return Err(Error::invalid_argument(format!(
                "persisting file {file_id}: its blocks hold {total} bytes, the file {length}"
            )));
        }
        // Before touching the UFS (opening a writer creates parent directories there): a block
        // neither cached here nor held by another worker means the file was deleted or lost
        // meanwhile, and a persist now would leave directories that a metadata sync would bring
        // back into the namespace.
        for b in &blocks {
            let here = self.store.contains(b.block_id);
            let elsewhere = b.locations.iter().any(|l| {
                l.address
                    .as_ref()
                    .is_some_and(|a| !(a.host == self.me.host && a.rpc_port == self.me.rpc_port))
            });
            if !here && !elsewhere {
                return Err(Error::unavailable(format!(
                    "persisting file {file_id}: block {} is cached nowhere (file deleted?)",
                    b.block_id
                )));
            }
        }
        let ufs = self.mounts.get(loc.mount_id).await?;
        let target = ufs.uri_of(&loc.ufs_path);
        let mut writer = ufs.writer(&loc.ufs_path).await?;
        let mut local = Vec::new();
        for b in &blocks {
            match self.copy_block(file_id, b, &mut writer).await {
                Ok(true) => local.push(b.block_id),
                Ok(false) => {}
                Err(e) => {
                    // Nothing of an aborted write is visible in the UFS (UfsWriter publishes on
                    // close only).
                    if let Err(a) = writer.abort().await {
                        tracing::warn!(file_id, %target, error = %a, "cannot abort a UFS write");
                    }
                    return Err(e.context(format!("persisting file {file_id} to {target}")));
                }
            }
        }
        let written = writer
            .close()
            .await
            .map_err(|e| e.context(format!("persisting file {file_id}")))?;
        if written != length {
            return Err(Error::internal(format!(
                "persisting file {file_id} to {target}: wrote {written} bytes, expected {length}"
            )));
        }
        tracing::debug!(file_id, %target, length, local_blocks = local.len(), "file persisted");
        Ok(local)
    }

    /// A (lazily connecting, cached) channel to a peer worker.
    fn channel(&self, addr: &WorkerNetAddress) -> Result<Channel> {
        let key = format!("{}:{}", addr.host, addr.rpc_port);
        if let Some(c) = self.peers.lock().get(&key) {
            return Ok(c.clone());
        }
        let channel = Endpoint::from_shared(format!("http://{key}"))
            .map_err(|e| Error::invalid_argument(format!("bad worker address {key}: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .initial_stream_window_size(Some(alluvium_proto::STREAM_WINDOW_BYTES))
            .initial_connection_window_size(Some(alluvium_proto::CONNECTION_WINDOW_BYTES))
            .connect_lazy();
        self.peers.lock().insert(key, channel.clone());
        Ok(channel)
    }

    /// Appends one block to `w`. Returns whether it came from this worker's store.
    async fn copy_block(&self, file_id: u64, b: &BlockInfo, w: &mut UfsWriter) -> Result<bool> {
        if let Ok(lock) = self.store.lock(b.block_id).await {
            if lock.length != b.length {
                return Err(Error::failed_precondition(format!(
                    "block {} is cached with {} bytes, the file expects {}",
                    b.block_id, lock.length, b.length
                )));
            }
            let data = lock.map()?;
            let mut off = 0;
            while off < data.len() {
                let end = (off + WRITE_CHUNK).min(data.len());
                w.write(data.slice(off..end)).await?;
                off = end;
            }
            return Ok(true);
        }
        let mut tried = Vec::new();
        for loc in &b.locations {
            let Some(addr) = &loc.address else { continue };
            if addr.host == self.me.host && addr.rpc_port == self.me.rpc_port {
                continue;
            }
            let before = w.written();
            match self.fetch_from_peer(b, loc, w).await {
                Ok(()) => return Ok(false),
                // Bytes already went to the writer: the file cannot be resumed from elsewhere.
                Err(e) if w.written() != before => return Err(e),
                Err(e) => {
                    tracing::debug!(block_id = b.block_id, worker = %addr.host, error = %e, "peer could not send block");
                    tried.push(format!("{}:{} ({})", addr.host, addr.rpc_port, e.message));
                }
            }
        }
        Err(Error::unavailable(format!(
            "block {} of file {file_id} is not cached on this worker and no other worker sent it{}",
            b.block_id,
            if tried.is_empty() {
                String::new()
            } else {
                format!(" (tried {})", tried.join(", "))
            }
        )))
    }

    async fn fetch_from_peer(
        &self,
        b: &BlockInfo,
        loc: &BlockLocation,
        w: &mut UfsWriter,
    ) -> Result<()> {
        let addr = loc
            .address
            .as_ref()
            .ok_or_else(|| Error::internal("location without address"))?;
        let channel = self.channel(addr)?;
        let mut client = BlockWorkerClient::with_interceptor(channel, self.identity.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let mut stream = client
            .read_block(ReadBlockRequest {
                block_id: b.block_id,
                offset: 0,
                length: b.length,
                chunk_size: 0,
                read_type: ReadType::NoCache as i32,
                ufs: None,
                pinned: false,
            })
            .await?
            .into_inner();
        let mut got = 0u64;
        while let Some(msg) = stream.message().await? {
            got += msg.data.len() as u64;
            w.write(msg.data).await?;
        }
        if got != b.length {
            return Err(Error::unavailable(format!(
                "worker {} sent {got} bytes of block {}, expected {}",
                addr.host, b.block_id, b.length
            )));
        }
        Ok(())
    }
}
