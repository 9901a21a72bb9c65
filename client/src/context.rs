//! What every call and stream of one client shares: the configuration, the master and worker
//! connections, metrics, and the briefly cached worker list.
//!
//! [`FileSystem`](crate::FileSystem) is the public face of a context; the read and write streams
//! hold the context itself, so the file-system API and the streams do not import each other.

use std::time::{Duration, Instant};

use alluvium_common::path::normalize;
use alluvium_common::{Config, Error, Result};
use alluvium_proto as pb;
use alluvium_proto::{FileInfo, WorkerInfo};

use crate::block_transfer::TransferPool;
use crate::master_client::MasterClient;
use crate::metrics::ClientMetrics;
use crate::worker_pool::WorkerPool;

/// How long a fetched worker list is reused for choosing write and read-through workers.
const WORKER_CACHE_TTL: Duration = Duration::from_secs(2);
/// How often a write waiting for a live worker asks the master again.
const WORKER_POLL: Duration = Duration::from_millis(100);

pub(crate) struct Context {
    pub config: Config,
    pub master: MasterClient,
    pub workers: WorkerPool,
    /// Connections for reading remote workers' cached blocks as raw bytes.
    pub transfers: TransferPool,
    pub metrics: ClientMetrics,
    /// This host's name, to recognise local workers.
    pub hostname: String,
    /// The worker list, briefly cached so a copy of many small files does not ask for it per file.
    worker_cache: parking_lot::Mutex<Option<(Instant, Vec<WorkerInfo>)>>,
}

impl Context {
    /// Builds the clients; no connection is made yet.
    pub fn new(config: &Config) -> Result<Self> {
        Ok(Self {
            config: config.clone(),
            master: MasterClient::new(config)?,
            workers: WorkerPool::new(config)?,
            transfers: TransferPool::new(config)?,
            metrics: ClientMetrics::default(),
            hostname: config.client_hostname(),
            worker_cache: parking_lot::Mutex::new(None),
        })
    }

    /// The status of a path; with its blocks and their locations when `with_blocks`.
    pub async fn status(&self, path: &str, with_blocks: bool) -> Result<FileInfo> {
        let path = normalize(path)?;
        self.master
            .fs("GetStatus", |mut c| {
                let req = pb::GetStatusRequest {
                    path: path.clone(),
                    with_blocks,
                };
                async move { c.get_status(req).await }
            })
            .await
    }

    pub async fn delete(&self, path: &str, recursive: bool, alluvium_only: bool) -> Result<()> {
        let path = normalize(path)?;
        self.master
            .fs("Delete", |mut c| {
                let req = pb::DeleteRequest {
                    path: path.clone(),
                    recursive,
                    alluvium_only,
                };
                async move { c.delete(req).await }
            })
            .await?;
        Ok(())
    }

    pub async fn complete_file(&self, req: pb::CompleteFileRequest) -> Result<FileInfo> {
        self.master
            .fs("CompleteFile", |mut c| {
                let req = req.clone();
                async move { c.complete_file(req).await }
            })
            .await
    }

    pub async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let r = self
            .master
            .block("GetWorkers", |mut c| async move {
                c.get_workers(pb::Empty {}).await
            })
            .await?;
        Ok(r.workers)
    }

    /// The worker list for placement decisions: cached for a moment, refreshed after that.
    pub async fn live_workers_cached(&self) -> Result<Vec<WorkerInfo>> {
        if let Some((at, ws)) = self.worker_cache.lock().as_ref() {
            if at.elapsed() < WORKER_CACHE_TTL {
                return Ok(ws.clone());
            }
        }
        let ws = self.workers().await?;
        *self.worker_cache.lock() = Some((Instant::now(), ws.clone()));
        Ok(ws)
    }

    /// The workers, waiting while none is live, as long as an unreachable server is retried
    /// (`client.retry_duration`): right after a master restart, workers are known again only
    /// once they have re-registered at their next heartbeat (and a lost worker only once it is
    /// back), and a write then should wait for them, not fail.
    pub async fn live_workers_waiting(&self, path: &str) -> Result<Vec<WorkerInfo>> {
        let deadline = tokio::time::Instant::now() + self.config.client.retry_duration;
        let mut ws = self.live_workers_cached().await?;
        while !ws.iter().any(crate::locality::is_live) {
            if tokio::time::Instant::now() >= deadline {
                return Err(no_live_worker(path));
            }
            tokio::time::sleep(WORKER_POLL).await;
            self.forget_workers();
            ws = self.live_workers_cached().await?;
        }
        Ok(ws)
    }

    /// Drops the cached worker list (after a worker failed).
    pub fn forget_workers(&self) {
        *self.worker_cache.lock() = None;
    }
}

/// Where a worker finds a block of a persisted file in the UFS.
pub(crate) fn ufs_source(f: &FileInfo, b: &pb::BlockInfo) -> pb::UfsBlockSource {
    pb::UfsBlockSource {
        ufs: f.ufs.clone(),
        offset_in_file: b.offset,
        block_length: b.length,
        durable: f.persisted,
    }
}

/// Names the path in an error whose message does not already.
pub fn with_path(e: Error, path: &str) -> Error {
    if e.message.contains(path) {
        e
    } else {
        e.context(path)
    }
}

/// The error for "no worker can take this": every worker is lost or none registered.
pub fn no_live_worker(path: &str) -> Error {
    Error::unavailable(format!(
        "{path}: no live worker in the cluster (check `alluvium fsadmin report`)"
    ))
}
