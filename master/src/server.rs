//! [`MasterServer`]: wires the metastore, namespace, block master, background tasks and the gRPC
//! and HTTP servers together, and shuts them down in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use alluvium_common::identity::SecretCheck;
use alluvium_common::metrics::Timed;
use alluvium_common::net::bind;
use alluvium_common::time::now_ms;
use alluvium_common::{Config, Result};
use alluvium_proto::block_master_server::BlockMasterServer;
use alluvium_proto::file_system_master_server::FileSystemMasterServer;
use alluvium_proto::{MasterInfo, MAX_MESSAGE_BYTES};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;

use crate::block_master::BlockMaster;
use crate::grpc::{BlockMasterService, FileSystemService};
use crate::metastore::{MetaStore, RocksStore};
use crate::metastore_cache::CachingStore;
use crate::metrics::Metrics;
use crate::namespace::Namespace;
use crate::persist::PersistScheduler;

/// How long in-flight calls may take to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// State shared by the gRPC services and the HTTP handlers.
pub(crate) struct Shared {
    pub ns: Arc<Namespace>,
    pub blocks: Arc<BlockMaster>,
    pub persist: Arc<PersistScheduler>,
    pub metrics: Arc<Metrics>,
    pub secret: SecretCheck,
    pub start_time_ms: i64,
    pub rpc_address: String,
    pub web_port: u16,
    pub root_ufs: String,
    pub default_block_size: u64,
}

impl Shared {
    pub fn refresh_gauges(&self) {
        let c = self.blocks.capacity();
        self.metrics.live_workers.set(c.live_workers as i64);
        self.metrics.lost_workers_gauge.set(c.lost_workers as i64);
        self.metrics.capacity_bytes.set(c.capacity_bytes as i64);
        self.metrics.used_bytes.set(c.used_bytes as i64);
    }

    pub fn master_info(&self) -> MasterInfo {
        let c = self.blocks.capacity();
        let (files, dirs) = self.ns.counts();
        let now = now_ms();
        MasterInfo {
            version: alluvium_common::VERSION.to_string(),
            rpc_address: self.rpc_address.clone(),
            web_port: self.web_port as u32,
            start_time_ms: self.start_time_ms,
            uptime_ms: now - self.start_time_ms,
            live_workers: c.live_workers,
            lost_workers: c.lost_workers,
            capacity_bytes: c.capacity_bytes,
            used_bytes: c.used_bytes,
            tiers: c.tiers,
            file_count: files,
            directory_count: dirs,
            block_count: c.block_count,
            root_ufs: self.root_ufs.clone(),
            default_block_size: self.default_block_size,
            superuser: self.ns.superuser_name(),
        }
    }
}

/// A running master.
pub struct MasterServer {
    rpc_addr: SocketAddr,
    web_addr: SocketAddr,
    stop: watch::Sender<bool>,
    rpc_task: JoinHandle<std::result::Result<(), tonic::transport::Error>>,
    web_task: JoinHandle<std::io::Result<()>>,
    background: Vec<JoinHandle<()>>,
    store: Arc<RocksStore>,
}

impl MasterServer {
    /// Opens the metastore (creating dirs), mounts the root UFS on first start (creating a local
    /// root dir if it is file:// and missing), binds gRPC on master.bind_host:master.rpc_port and
    /// HTTP on master.web_port (port 0 = a free port), starts background tasks (lost-worker
    /// checker, TTL checker, persist scheduler).
    pub async fn start(config: Config) -> Result<MasterServer> {
        let mc = &config.master;
        let store = Arc::new(RocksStore::open(&mc.metastore_dir, mc.metastore_sync)?);
        let rocks: Arc<dyn MetaStore> = store.clone();
        let dyn_store: Arc<dyn MetaStore> =
            Arc::new(CachingStore::new(rocks, mc.metadata_cache_entries));
        let metrics = Arc::new(Metrics::new());
        let blocks = Arc::new(BlockMaster::new(
            dyn_store.clone(),
            mc.worker_timeout,
            mc.heartbeat_interval,
            metrics.clone(),
        )?);
        let ns = Arc::new(Namespace::open(
            dyn_store,
            blocks.clone(),
            metrics.clone(),
            mc,
        )?);
        let persist = Arc::new(PersistScheduler::new(
            ns.clone(),
            blocks.clone(),
            mc.persist_check_interval,
        ));
        let rpc_listener = bind(&mc.bind_host, mc.rpc_port, "the master's gRPC port").await?;
        let web_listener = bind(&mc.bind_host, mc.web_port, "the master's HTTP port").await?;
        let rpc_addr = rpc_listener.local_addr()?;
        let web_addr = web_listener.local_addr()?;
        let secret = SecretCheck::new(Some(config.security.cluster_secret.clone()));
        let shared = Arc::new(Shared {
            ns: ns.clone(),
            blocks: blocks.clone(),
            persist: persist.clone(),
            metrics: metrics.clone(),
            secret: secret.clone(),
            start_time_ms: now_ms(),
            rpc_address: format!("{}:{}", mc.hostname, rpc_addr.port()),
            web_port: web_addr.port(),
            root_ufs: ns
                .mount_table()
                .get(crate::mount_table::ROOT_MOUNT_ID)
                .map(|m| m.record.ufs_uri.clone())
                .unwrap_or_default(),
            default_block_size: mc.default_block_size.0,
        });
        let (stop, stop_rx) = watch::channel(false);

        let fs = FileSystemMasterServer::new(FileSystemService {
            shared: shared.clone(),
        })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let bm = BlockMasterServer::new(BlockMasterService {
            shared: shared.clone(),
        })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let mut rx = stop_rx.clone();
        let rpc_task = tokio::spawn(
            tonic::transport::Server::builder()
                // Block data moves in 1 MiB chunks: HTTP/2's default 64 KiB windows and 16 KiB
                // frames would cap a stream far below what loopback or a LAN carries.
                .initial_stream_window_size(Some(alluvium_proto::STREAM_WINDOW_BYTES))
                .initial_connection_window_size(Some(alluvium_proto::CONNECTION_WINDOW_BYTES))
                .max_frame_size(Some(alluvium_proto::MAX_FRAME_BYTES))
                .add_service(InterceptedService::new(
                    Timed::new(fs, metrics.operations.clone()),
                    secret.clone(),
                ))
                .add_service(InterceptedService::new(
                    Timed::new(bm, metrics.operations.clone()),
                    secret,
                ))
                .serve_with_incoming_shutdown(
                    // TCP_NODELAY: without it, small replies and stream trailers wait for the
                    // peer's delayed ACK (~40 ms per listing or block stream). Server::tcp_nodelay
                    // does not apply to serve_with_incoming.
                    TcpIncoming::from(rpc_listener).with_nodelay(Some(true)),
                    async move {
                        let _ = rx.changed().await;
                    },
                ),
        );
        let (web_router, sampler_task) =
            crate::http::start(shared.clone(), &config, stop_rx.clone());
        let mut rx = stop_rx.clone();
        let web_task = tokio::spawn(async move {
            axum::serve(web_listener, web_router)
                .with_graceful_shutdown(async move {
                    let _ = rx.changed().await;
                })
                .await
        });

        let mut background = vec![sampler_task];
        {
            let blocks = blocks.clone();
            let metrics = metrics.clone();
            let mut rx = stop_rx.clone();
            let every =
                (mc.worker_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(5));
            background.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = rx.changed() => return,
                    }
                    blocks.detect_lost();
                    let c = blocks.capacity();
                    metrics.live_workers.set(c.live_workers as i64);
                    metrics.lost_workers_gauge.set(c.lost_workers as i64);
                }
            }));
        }
        background.push(tokio::spawn(crate::ttl::run(
            ns.clone(),
            mc.ttl_check_interval,
            stop_rx.clone(),
        )));
        background.push(tokio::spawn(
            persist.clone().run(mc.persist_check_interval, stop_rx),
        ));
        tracing::info!(rpc = %rpc_addr, web = %web_addr, metastore = %mc.metastore_dir.display(), "master started");
        Ok(MasterServer {
            rpc_addr,
            web_addr,
            stop,
            rpc_task,
            web_task,
            background,
            store,
        })
    }

    /// The address the gRPC server is actually bound to.
    pub fn rpc_addr(&self) -> SocketAddr {
        self.rpc_addr
    }

    pub fn web_addr(&self) -> SocketAddr {
        self.web_addr
    }

    /// Graceful stop: stop accepting, finish in-flight calls briefly, flush and close RocksDB.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(true);
        let mut rpc_task = self.rpc_task;
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut rpc_task).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "gRPC server ended with an error"),
            Ok(_) => {}
            Err(_) => {
                tracing::warn!("in-flight gRPC calls did not finish in time; aborting them");
                rpc_task.abort();
            }
        }
        let mut web_task = self.web_task;
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut web_task)
            .await
            .is_err()
        {
            web_task.abort();
        }
        for t in self.background {
            t.abort();
            let _ = t.await;
        }
        // Closing releases the RocksDB lock even if a stray handle (a listing being streamed)
        // still holds the store.
        self.store.close()?;
        tracing::info!("master stopped");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use alluvium_common::identity::{Caller, IdentityInterceptor};
    use alluvium_proto::block_master_client::BlockMasterClient;
    use alluvium_proto::file_system_master_client::FileSystemMasterClient;
    use alluvium_proto::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tonic::service::interceptor::InterceptedService;
    use tonic::transport::Channel;

    use super::*;

    fn config(dir: &std::path::Path) -> Config {
        let mut c = Config::default();
        c.master.bind_host = "127.0.0.1".into();
        c.master.rpc_port = 0;
        c.master.web_port = 0;
        c.master.metastore_dir = dir.join("meta");
        c.master.root_ufs = dir.join("ufs").display().to_string();
        c
    }

    fn caller(user: &str, groups: &[&str]) -> Caller {
        Caller {
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    type Fs = FileSystemMasterClient<InterceptedService<Channel, IdentityInterceptor>>;
    type Bm = BlockMasterClient<InterceptedService<Channel, IdentityInterceptor>>;

    async fn channel(addr: SocketAddr) -> Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    async fn fs(addr: SocketAddr, c: &Caller, secret: Option<&str>) -> Fs {
        FileSystemMasterClient::with_interceptor(
            channel(addr).await,
            IdentityInterceptor::new(c, secret).unwrap(),
        )
    }

    async fn bm(addr: SocketAddr, c: &Caller, secret: Option<&str>) -> Bm {
        BlockMasterClient::with_interceptor(
            channel(addr).await,
            IdentityInterceptor::new(c, secret).unwrap(),
        )
    }

    async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf).to_string();
        let status = text[9..12].parse().unwrap();
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    #[tokio::test]
    async fn grpc_end_to_end_as_two_users() {
        let dir = tempfile::tempdir().unwrap();
        let server = MasterServer::start(config(dir.path())).await.unwrap();
        let addr = server.rpc_addr();
        let me = Caller::current_process();
        let mut su = fs(addr, &me, None).await;
        let mut alice = fs(addr, &caller("alice", &["staff"]), None).await;
        let mut bob = fs(addr, &caller("bob", &["other"]), None).await;

        su.create_directory(CreateDirectoryRequest {
            path: "/shared".into(),
            mode: Some(0o777),
            write_type: WriteType::CacheThrough as i32,
            ..Default::default()
        })
        .await
        .unwrap();
        alice
            .create_directory(CreateDirectoryRequest {
                path: "/shared/alice".into(),
                mode: Some(0o750),
                ..Default::default()
            })
            .await
            .unwrap();
        let f = alice
            .create_file(CreateFileRequest {
                path: "/shared/alice/empty".into(),
                write_type: WriteType::MustCache as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        alice
            .complete_file(CompleteFileRequest {
                path: "/shared/alice/empty".into(),
                file_id: f.file_id,
                length: 0,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut stream = alice
            .list_status(ListStatusRequest {
                path: "/shared/alice".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let page = stream.message().await.unwrap().unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].owner, "alice");
        assert!(page.items[0].completed);

        // Bob is neither owner nor in the group.
        let denied = bob
            .get_status(GetStatusRequest {
                path: "/shared/alice/empty".into(),
                with_blocks: false,
            })
            .await
            .unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
        let denied = bob
            .list_status(ListStatusRequest {
                path: "/shared/alice".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        let denied = bob
            .delete(DeleteRequest {
                path: "/shared/alice".into(),
                recursive: true,
                alluvium_only: false,
            })
            .await
            .unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        let denied = bob
            .mount(MountRequest {
                path: "/m".into(),
                ufs_uri: dir.path().display().to_string(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        // Errors keep their codes: not found, invalid argument.
        let nf = alice
            .get_status(GetStatusRequest {
                path: "/nope".into(),
                with_blocks: false,
            })
            .await
            .unwrap_err();
        assert_eq!(nf.code(), tonic::Code::NotFound);
        assert!(nf.message().contains("/nope"));
        let bad = alice
            .get_status(GetStatusRequest {
                path: "/../etc".into(),
                with_blocks: false,
            })
            .await
            .unwrap_err();
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
        // A call without a user name is refused.
        let mut anon = FileSystemMasterClient::new(channel(addr).await);
        let e = anon.get_master_info(Empty {}).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);

        // Workers and master info.
        let mut worker = bm(addr, &me, None).await;
        let reg = worker
            .register_worker(RegisterWorkerRequest {
                address: Some(WorkerNetAddress {
                    host: "127.0.0.1".into(),
                    rpc_port: 29999,
                    http_port: 30000,
                }),
                tiers: vec![TierUsage {
                    alias: "MEM".into(),
                    ordinal: 0,
                    capacity_bytes: 1000,
                    used_bytes: 10,
                    block_count: 0,
                }],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(reg.heartbeat_interval_ms > 0);
        let info = alice.get_master_info(Empty {}).await.unwrap().into_inner();
        assert_eq!((info.file_count, info.directory_count), (1, 3));
        assert_eq!((info.live_workers, info.capacity_bytes), (1, 1000));
        assert_eq!(info.tiers[0].alias, "MEM");
        assert_eq!(info.superuser, me.user);
        assert!(info.root_ufs.starts_with("file://"));
        // Mount credentials: the superuser only (no cluster secret configured).
        let mut alice_bm = bm(addr, &caller("alice", &[]), None).await;
        let e = alice_bm
            .get_ufs_mount(GetUfsMountRequest { mount_id: 1 })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        let m = worker
            .get_ufs_mount(GetUfsMountRequest { mount_id: 1 })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(m.path, "/");

        // HTTP.
        let web = server.web_addr();
        assert_eq!(http_get(web, "/healthz").await.0, 200);
        let (code, metrics) = http_get(web, "/metrics").await;
        assert_eq!(code, 200);
        assert!(metrics.contains("alluvium_master_rpc_total"), "{metrics}");
        assert!(
            metrics.contains("alluvium_master_live_workers 1"),
            "{metrics}"
        );
        let (_, master) = http_get(web, "/api/v1/master").await;
        let v: serde_json::Value = serde_json::from_str(&master).unwrap();
        assert_eq!(v["fileCount"], 1);
        let (_, workers) = http_get(web, "/api/v1/workers").await;
        let v: serde_json::Value = serde_json::from_str(&workers).unwrap();
        assert_eq!(v[0]["state"], "LIVE");
        let (_, mounts) = http_get(web, "/api/v1/mounts").await;
        assert!(mounts.contains("\"path\":\"/\""), "{mounts}");

        // A second master on the same metastore is refused, clearly.
        let Err(e) = MasterServer::start(config(dir.path())).await else {
            panic!("a second master started on the same metastore");
        };
        assert!(e.message.contains("in use by another master"), "{e}");

        // Restart: the namespace is back; the worker must register again.
        drop((su, alice, bob, anon, worker, alice_bm));
        server.shutdown().await.unwrap();
        let server = MasterServer::start(config(dir.path())).await.unwrap();
        let addr = server.rpc_addr();
        let mut alice = fs(addr, &caller("alice", &["staff"]), None).await;
        let st = alice
            .get_status(GetStatusRequest {
                path: "/shared/alice/empty".into(),
                with_blocks: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(st.file_id, f.file_id);
        let mut worker = bm(addr, &me, None).await;
        let hb = worker
            .worker_heartbeat(WorkerHeartbeatRequest {
                worker_id: reg.worker_id,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(hb.register);
        server.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn cluster_secret_is_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        c.security.cluster_secret = "s3cret".into();
        let server = MasterServer::start(c).await.unwrap();
        let alice = caller("alice", &[]);
        let mut without = fs(server.rpc_addr(), &alice, None).await;
        let e = without.get_master_info(Empty {}).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        let mut with = fs(server.rpc_addr(), &alice, Some("s3cret")).await;
        with.get_master_info(Empty {}).await.unwrap();
        // Holders of the cluster secret (workers) may read mount credentials.
        let mut w = bm(server.rpc_addr(), &alice, Some("s3cret")).await;
        w.get_ufs_mount(GetUfsMountRequest { mount_id: 1 })
            .await
            .unwrap();
        server.shutdown().await.unwrap();
    }
}
