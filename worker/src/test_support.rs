//! Test doubles: a minimal in-process `BlockMaster` gRPC server that records what workers tell
//! it and answers `GetUfsMount` with a `file://` mount of a temp dir, plus helpers to start a
//! worker against it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alluvium_common::config::TierConfig;
use alluvium_common::{ByteSize, Config};
use alluvium_proto::block_master_server::{BlockMaster, BlockMasterServer};
use alluvium_proto::block_worker_client::BlockWorkerClient;
use alluvium_proto::*;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::WorkerServer;

/// The mount id under which the fake master serves its temp dir.
pub const MOUNT_ID: u64 = 1;

#[derive(Default)]
pub struct FakeMaster {
    pub ufs_root: PathBuf,
    pub registrations: AtomicU64,
    pub register_requests: Mutex<Vec<RegisterWorkerRequest>>,
    /// CommitBlock answers UNAVAILABLE while set.
    pub fail_commits: std::sync::atomic::AtomicBool,
    /// The cluster secret and user name each registration carried.
    pub register_metadata: Mutex<Vec<(Option<String>, Option<String>)>>,
    pub commits: Mutex<Vec<CommitBlockRequest>>,
    pub heartbeats: Mutex<Vec<WorkerHeartbeatRequest>>,
    pub persist_done: Mutex<Vec<PersistDoneRequest>>,
    /// Sent (and cleared) in the next heartbeat response.
    pub next: Mutex<WorkerHeartbeatResponse>,
}

#[tonic::async_trait]
impl BlockMaster for FakeMaster {
    async fn register_worker(
        &self,
        r: Request<RegisterWorkerRequest>,
    ) -> Result<Response<RegisterWorkerResponse>, Status> {
        let md = r.metadata();
        let get = |k: &str| md.get(k).and_then(|v| v.to_str().ok()).map(String::from);
        self.register_metadata
            .lock()
            .push((get(SECRET_HEADER), get(USER_HEADER)));
        self.register_requests.lock().push(r.into_inner());
        let n = self.registrations.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(Response::new(RegisterWorkerResponse {
            worker_id: n,
            pinned_file_ids: vec![],
            heartbeat_interval_ms: 20,
        }))
    }

    async fn worker_heartbeat(
        &self,
        r: Request<WorkerHeartbeatRequest>,
    ) -> Result<Response<WorkerHeartbeatResponse>, Status> {
        self.heartbeats.lock().push(r.into_inner());
        Ok(Response::new(std::mem::take(&mut *self.next.lock())))
    }

    async fn commit_block(
        &self,
        r: Request<CommitBlockRequest>,
    ) -> Result<Response<Empty>, Status> {
        if self.fail_commits.load(Ordering::SeqCst) {
            return Err(Status::unavailable("test: commits fail"));
        }
        self.commits.lock().push(r.into_inner());
        Ok(Response::new(Empty {}))
    }

    async fn get_workers(
        &self,
        _r: Request<Empty>,
    ) -> Result<Response<GetWorkersResponse>, Status> {
        Ok(Response::new(GetWorkersResponse::default()))
    }

    async fn get_ufs_mount(
        &self,
        r: Request<GetUfsMountRequest>,
    ) -> Result<Response<MountInfo>, Status> {
        if r.into_inner().mount_id != MOUNT_ID {
            return Err(Status::not_found("no such mount"));
        }
        Ok(Response::new(MountInfo {
            mount_id: MOUNT_ID,
            path: "/".into(),
            ufs_uri: format!("file://{}", self.ufs_root.display()),
            ..Default::default()
        }))
    }

    async fn persist_done(
        &self,
        r: Request<PersistDoneRequest>,
    ) -> Result<Response<Empty>, Status> {
        self.persist_done.lock().push(r.into_inner());
        Ok(Response::new(Empty {}))
    }
}

pub struct Harness {
    pub master: Arc<FakeMaster>,
    pub worker: WorkerServer,
    pub client: BlockWorkerClient<Channel>,
    pub config: Config,
    pub dir: tempfile::TempDir,
    pub stop_master: oneshot::Sender<()>,
}

impl Harness {
    pub fn ufs_root(&self) -> &Path {
        &self.master.ufs_root
    }

    pub async fn shutdown(self) {
        self.worker.shutdown().await.unwrap();
    }
}

/// Polls `f` until it holds or 10 s pass.
pub async fn eventually(what: &str, f: impl FnMut() -> bool) {
    alluvium_testkit::eventually_sync(what, Duration::from_secs(10), f).await
}

pub fn worker_config(dir: &Path, master: SocketAddr, tiers: &[(&str, u64)]) -> Config {
    let mut c = Config {
        master_address: master.to_string(),
        ..Default::default()
    };
    c.worker.bind_host = "127.0.0.1".into();
    c.worker.hostname = "localhost".into();
    c.worker.rpc_port = 0;
    c.worker.web_port = 0;
    c.worker.short_circuit_lease = Duration::from_secs(1);
    c.worker.tiers = tiers
        .iter()
        .map(|(alias, cap)| TierConfig {
            alias: alias.to_string(),
            dirs: vec![dir.join(alias)],
            quota: vec![ByteSize(*cap)],
            ..Default::default()
        })
        .collect();
    c
}

/// Serves `master` on `listener` until the returned sender is used or dropped.
pub fn serve_fake_master(
    master: Arc<FakeMaster>,
    listener: tokio::net::TcpListener,
) -> oneshot::Sender<()> {
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let svc = BlockMasterServer::from_arc(master);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stop_rx.await;
                },
            )
            .await
            .unwrap();
    });
    stop_tx
}

/// A fake master, and a registered worker with a 64 MiB MEM tier and a 256 MiB SSD tier.
pub async fn start() -> Harness {
    start_with(|_| {}).await
}

pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let ufs_root = dir.path().join("ufs");
    std::fs::create_dir_all(&ufs_root).unwrap();
    let master = Arc::new(FakeMaster {
        ufs_root,
        ..Default::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let master_addr = listener.local_addr().unwrap();
    let stop_tx = serve_fake_master(master.clone(), listener);
    let mut config = worker_config(
        dir.path(),
        master_addr,
        &[("MEM", 64 << 20), ("SSD", 256 << 20)],
    );
    tweak(&mut config);
    let worker = WorkerServer::start(config.clone()).await.unwrap();
    let client = BlockWorkerClient::connect(format!("http://{}", worker.rpc_addr()))
        .await
        .unwrap()
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let h = Harness {
        master,
        worker,
        client,
        config,
        dir,
        stop_master: stop_tx,
    };
    eventually("registration", || h.worker.worker_id().is_some()).await;
    h
}

/// Deterministic test data.
pub fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}
