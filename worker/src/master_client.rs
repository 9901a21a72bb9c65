//! The worker's side of the master's `BlockMaster` service: registration (retried until the
//! master answers), the heartbeat loop at the interval the master gives, block commits, and the
//! commands heartbeats carry (remove blocks, pinned files, durable blocks, persist files).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alluvium_common::identity::IdentityInterceptor;
use alluvium_common::{Error, Result};
use alluvium_proto::block_master_client::BlockMasterClient;
use alluvium_proto::{
    CommitBlockRequest, PersistCommand, PersistDoneRequest, RegisterWorkerRequest,
    WorkerHeartbeatRequest, WorkerHeartbeatResponse, WorkerNetAddress, MAX_MESSAGE_BYTES,
};
use parking_lot::Mutex;
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::persist::Persister;
use crate::store::BlockStore;

pub type MasterRpc = BlockMasterClient<InterceptedService<Channel, IdentityInterceptor>>;

/// A lazily connected client of the master at `address` (`host:port`).
pub fn connect(address: &str, identity: IdentityInterceptor) -> Result<MasterRpc> {
    let uri = if address.contains("://") {
        address.to_string()
    } else {
        format!("http://{address}")
    };
    let endpoint = Endpoint::from_shared(uri)
        .map_err(|e| Error::invalid_argument(format!("bad master address '{address}': {e}")))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30));
    Ok(
        BlockMasterClient::with_interceptor(endpoint.connect_lazy(), identity)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    )
}

pub struct MasterClient {
    rpc: MasterRpc,
    store: Arc<BlockStore>,
    address: WorkerNetAddress,
    /// 0 until registered.
    worker_id: AtomicU64,
    /// Files whose persist command is running (the master may repeat a command).
    persisting: Mutex<HashSet<u64>>,
}

impl MasterClient {
    pub fn new(rpc: MasterRpc, store: Arc<BlockStore>, address: WorkerNetAddress) -> Self {
        Self {
            rpc,
            store,
            address,
            worker_id: AtomicU64::new(0),
            persisting: Mutex::new(HashSet::new()),
        }
    }

    pub fn address(&self) -> &WorkerNetAddress {
        &self.address
    }

    pub fn worker_id(&self) -> Option<u64> {
        match self.worker_id.load(Ordering::Acquire) {
            0 => None,
            id => Some(id),
        }
    }

    /// Tells the master a block is complete here. On failure (or before registration) the block
    /// goes into the next heartbeat instead; the write itself has succeeded either way.
    pub async fn commit_block(&self, block_id: u64, length: u64, tier: &str) {
        let Some(worker_id) = self.worker_id() else {
            self.store.report_in_heartbeat(block_id);
            return;
        };
        let req = CommitBlockRequest {
            worker_id,
            block_id,
            length,
            tier: tier.to_string(),
        };
        if let Err(s) = self.rpc.clone().commit_block(req).await {
            tracing::warn!(block_id, error = %s.message(), "CommitBlock failed; reporting the block in the next heartbeat");
            self.store.report_in_heartbeat(block_id);
        }
    }

    /// Registers with a full block report. Returns the heartbeat interval.
    async fn register(&self) -> Result<Duration> {
        let (blocks, non_durable) = self.store.report();
        let req = RegisterWorkerRequest {
            address: Some(self.address.clone()),
            tiers: self.store.usage(),
            blocks,
            non_durable_block_ids: non_durable,
        };
        let resp = self.rpc.clone().register_worker(req).await?.into_inner();
        self.worker_id.store(resp.worker_id, Ordering::Release);
        for id in self.store.set_pinned_files(resp.pinned_file_ids) {
            let _ = self.store.promote(id).await;
        }
        // 0 = the master did not say: one second, like the master's default.
        let ms = match resp.heartbeat_interval_ms {
            ms if ms <= 0 => 1000,
            ms => ms.clamp(10, 60_000),
        };
        let interval = Duration::from_millis(ms as u64);
        tracing::info!(
            worker_id = resp.worker_id,
            interval_ms = interval.as_millis() as u64,
            "registered with the master"
        );
        Ok(interval)
    }

    /// Registers (retrying until the master answers), then heartbeats until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        persister: Arc<Persister>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut interval = Duration::from_secs(1);
        let mut backoff = Duration::from_millis(100);
        let mut failures = 0u32;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let wait = if self.worker_id().is_none() {
                match self.register().await {
                    Ok(i) => {
                        interval = i;
                        backoff = Duration::from_millis(100);
                        failures = 0;
                        interval
                    }
                    Err(e) => {
                        failures += 1;
                        if failures == 1 || failures.is_multiple_of(50) {
                            tracing::warn!(error = %e, attempts = failures, "cannot register with the master; retrying");
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                        backoff
                    }
                }
            } else {
                self.heartbeat(&persister).await;
                interval
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn heartbeat(self: &Arc<Self>, persister: &Arc<Persister>) {
        let Some(worker_id) = self.worker_id() else {
            return;
        };
        let deltas = self.store.take_deltas();
        let req = WorkerHeartbeatRequest {
            worker_id,
            tiers: self.store.usage(),
            added_blocks: deltas.added.clone(),
            removed_block_ids: deltas.removed.clone(),
            non_durable_block_ids: self.store.non_durable_ids(),
        };
        match self.rpc.clone().worker_heartbeat(req).await {
            Ok(resp) => self.apply(resp.into_inner(), persister).await,
            Err(s) => {
                tracing::warn!(error = %s.message(), "heartbeat failed");
                self.store.restore_deltas(deltas);
            }
        }
    }

    async fn apply(self: &Arc<Self>, resp: WorkerHeartbeatResponse, persister: &Arc<Persister>) {
        if resp.register {
            tracing::info!("the master asks this worker to register again");
            self.worker_id.store(0, Ordering::Release);
            return;
        }
        for id in &resp.remove_block_ids {
            self.store.remove(*id).await;
        }
        if !resp.remove_block_ids.is_empty() {
            tracing::debug!(
                count = resp.remove_block_ids.len(),
                "removed blocks as the master asked"
            );
        }
        self.store.mark_durable(&resp.durable_block_ids);
        let to_promote = self.store.set_pinned_files(resp.pinned_file_ids);
        if !to_promote.is_empty() {
            let store = self.store.clone();
            tokio::spawn(async move {
                for id in to_promote {
                    let _ = store.promote(id).await;
                }
            });
        }
        for cmd in resp.persist {
            self.spawn_persist(cmd, persister.clone());
        }
    }

    fn spawn_persist(self: &Arc<Self>, cmd: PersistCommand, persister: Arc<Persister>) {
        if !self.persisting.lock().insert(cmd.file_id) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let file_id = cmd.file_id;
            // Staged: the blocks stay non-durable until the master publishes the copy.
            let result = persister
                .persist(file_id, cmd.ufs.clone(), cmd.length, cmd.blocks)
                .await;
            let error = match &result {
                Ok(_) => {
                    tracing::info!(file_id, path = %cmd.path, "persisted file (staged)");
                    String::new()
                }
                Err(e) => {
                    tracing::warn!(file_id, path = %cmd.path, error = %e, "persisting file failed");
                    e.to_string()
                }
            };
            this.persisting.lock().remove(&file_id);
            let Some(worker_id) = this.worker_id() else {
                return;
            };
            let req = PersistDoneRequest {
                worker_id,
                file_id,
                error,
                written: cmd.ufs,
            };
            if let Err(s) = this.rpc.clone().persist_done(req).await {
                tracing::warn!(file_id, error = %s.message(), "PersistDone failed; the master will retry the command");
            }
        });
    }
}
