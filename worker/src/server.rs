//! [`WorkerServer`]: wires the block store, the gRPC and HTTP servers, and the background tasks
//! (heartbeats, watermarks, lease expiry) together.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use alluvium_common::identity::{Caller, IdentityInterceptor, SecretCheck};
use alluvium_common::metrics::Timed;
use alluvium_common::net::bind;
use alluvium_common::time::now_ms;
use alluvium_common::{Config, Error, Result};
use alluvium_proto::block_worker_server::BlockWorkerServer;
use alluvium_proto::{WorkerNetAddress, MAX_MESSAGE_BYTES};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;

use crate::block_transfer::{route_connections, BlockTransferServer};
use crate::http::{router, HttpState};
use crate::lease::{run_expiry, Leases};
use crate::master_client::{connect, MasterClient};
use crate::metrics::WorkerMetrics;
use crate::persist::Persister;
use crate::read_through::ReadThrough;
use crate::service::WorkerService;
use crate::store::{policy_from_config, tiers_from_config, BlockStore};
use crate::ufs_mounts::UfsMounts;

/// How often tiers are checked against their watermarks.
const WATERMARK_INTERVAL: Duration = Duration::from_millis(500);

pub struct WorkerServer {
    rpc_addr: SocketAddr,
    web_addr: SocketAddr,
    master: Arc<MasterClient>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl WorkerServer {
    /// Scans/creates tier dirs, binds gRPC (worker.bind_host:worker.rpc_port) and HTTP
    /// (worker.web_port); port 0 = a free port. Registration with the master at
    /// config.master_address happens in the background with retries (a master that is down does
    /// not fail start).
    pub async fn start(config: Config) -> Result<WorkerServer> {
        config.validate()?;
        let w = &config.worker;
        let tiers = tiers_from_config(w)?;
        let policy = policy_from_config(w);
        let metrics = WorkerMetrics::default();
        let mut registry = alluvium_common::metrics::new_registry();
        metrics.register(&mut registry);
        let store = {
            let metrics = metrics.clone();
            tokio::task::spawn_blocking(move || BlockStore::open(tiers, policy, metrics))
                .await
                .map_err(|e| Error::internal(format!("block store scan panicked: {e}")))??
        };

        let rpc_listener = bind(&w.bind_host, w.rpc_port, "the worker's gRPC port").await?;
        let web_listener = bind(&w.bind_host, w.web_port, "the worker's HTTP port").await?;
        let rpc_addr = rpc_listener.local_addr()?;
        let web_addr = web_listener.local_addr()?;
        let address = WorkerNetAddress {
            host: config.worker_hostname(),
            rpc_port: rpc_addr.port() as u32,
            http_port: web_addr.port() as u32,
        };

        let secret = Some(config.security.cluster_secret.clone()).filter(|s| !s.is_empty());
        let identity = IdentityInterceptor::new(&Caller::current_process(), secret.as_deref())?;
        let master_rpc = connect(&config.master_address, identity.clone())?;
        let master = Arc::new(MasterClient::new(
            master_rpc.clone(),
            store.clone(),
            address.clone(),
        ));
        let mounts = Arc::new(UfsMounts::new(master_rpc));
        let persister = Arc::new(Persister::new(
            store.clone(),
            mounts.clone(),
            identity,
            address.clone(),
        ));
        let read_through = Arc::new(ReadThrough::new(
            store.clone(),
            mounts.clone(),
            master.clone(),
            metrics.clone(),
        ));
        let leases = Arc::new(Leases::new(w.short_circuit_lease));
        let start_time_ms = now_ms();
        let service = WorkerService {
            store: store.clone(),
            master: master.clone(),
            mounts,
            read_through,
            persister: persister.clone(),
            leases: leases.clone(),
            metrics: metrics.clone(),
            chunk_size: (w.read_chunk_size.0 as usize).max(4096),
            start_time_ms,
        };

        let (shutdown, rx) = watch::channel(false);
        let mut tasks = Vec::new();

        let grpc = BlockWorkerServer::new(service)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let grpc = InterceptedService::new(
            Timed::new(grpc, metrics.operations.clone()),
            SecretCheck::new(secret.clone()),
        );
        // One port for gRPC and the block transfer protocol: the router looks at each new
        // connection's first bytes and hands HTTP/2 ones to tonic through this channel.
        let (grpc_conns, grpc_incoming) = mpsc::channel(64);
        let transfer = Arc::new(BlockTransferServer {
            store: store.clone(),
            metrics: metrics.clone(),
            secret: SecretCheck::new(secret.clone()),
        });
        tasks.push(tokio::spawn(route_connections(
            rpc_listener,
            transfer,
            grpc_conns,
            rx.clone(),
        )));
        let mut stop = rx.clone();
        tasks.push(tokio::spawn(async move {
            let result = tonic::transport::Server::builder()
                // Block data moves in 1 MiB chunks: HTTP/2's default 64 KiB windows and 16 KiB
                // frames would cap a stream far below what loopback or a LAN carries.
                .initial_stream_window_size(Some(alluvium_proto::STREAM_WINDOW_BYTES))
                .initial_connection_window_size(Some(alluvium_proto::CONNECTION_WINDOW_BYTES))
                .max_frame_size(Some(alluvium_proto::MAX_FRAME_BYTES))
                .add_service(grpc)
                .serve_with_incoming_shutdown(ReceiverStream::new(grpc_incoming), async move {
                    let _ = stop.changed().await;
                })
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "worker gRPC server failed");
            }
        }));

        let app = router(HttpState {
            store: store.clone(),
            master: master.clone(),
            metrics,
            registry: Arc::new(registry),
            start_time_ms,
        });
        let mut stop = rx.clone();
        tasks.push(tokio::spawn(async move {
            let result = axum::serve(web_listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.changed().await;
                })
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "worker HTTP server failed");
            }
        }));

        tasks.push(tokio::spawn(master.clone().run(persister, rx.clone())));
        tasks.push(tokio::spawn(crate::store::free_above_watermarks_every(
            store.clone(),
            WATERMARK_INTERVAL,
            rx.clone(),
        )));
        tasks.push(tokio::spawn(run_expiry(leases, store, rx)));

        tracing::info!(%rpc_addr, %web_addr, host = %address.host, master = %config.master_address, "worker started");
        Ok(WorkerServer {
            rpc_addr,
            web_addr,
            master,
            shutdown,
            tasks,
        })
    }

    pub fn rpc_addr(&self) -> SocketAddr {
        self.rpc_addr
    }

    pub fn web_addr(&self) -> SocketAddr {
        self.web_addr
    }

    /// The id the master assigned, once registered.
    pub fn worker_id(&self) -> Option<u64> {
        self.master.worker_id()
    }

    /// Stops serving and the background tasks. Streams still open after a grace period are cut.
    pub async fn shutdown(mut self) -> Result<()> {
        let _ = self.shutdown.send(true);
        for mut task in std::mem::take(&mut self.tasks) {
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
        tracing::info!("worker stopped");
        Ok(())
    }
}

impl Drop for WorkerServer {
    /// A server dropped without `shutdown` still stops its servers and background tasks.
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
