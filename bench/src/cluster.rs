//! An in-process cluster for benchmarks: a real master and a real worker on loopback ports, the
//! MEM tier in a /dev/shm temp dir, everything removed afterwards. The same type serves as the
//! bench cluster and as the "remote object store" of the cold/warm scenario (with its S3 gateway).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use alluvium_client::FileSystem;
use alluvium_common::config::S3Credential;
use alluvium_common::{ByteSize, Config, Error, Result};
use alluvium_local::{loopback_config, LocalCluster};
use alluvium_proxy::ProxyServer;
use tempfile::TempDir;

/// The S3 key pair the bench's gateways accept (loopback only, never a real secret).
pub const S3_KEY: &str = "ALLUVIUMBENCH";
pub const S3_SECRET: &str = "alluvium-bench-secret";
pub const S3_REGION: &str = "us-east-1";
/// The MEM tier's directory under the cluster's /dev/shm temp dir.
const MEM_TIER_DIR: &str = "worker-mem";

/// What differs between the clusters the bench starts.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Capacity of the worker's MEM tier.
    pub mem_quota: u64,
    /// `client.read_type` of clients and gateways of this cluster.
    pub read_type: String,
    /// Where temp dirs go: the root UFS, the metastore (the MEM tier is always in /dev/shm).
    pub label: &'static str,
}

impl ClusterSpec {
    /// The bench cluster: room for several copies of the `size`-byte sequential file.
    pub fn for_bench(size: u64) -> Self {
        ClusterSpec {
            // Deleted files free their blocks at the worker's next heartbeat, not at once: leave
            // room for several runs' files at a time. Only what is written uses /dev/shm.
            mem_quota: size * 8 + (3 << 30),
            read_type: "CACHE".into(),
            label: "bench",
        }
    }
}

/// A temp dir in /dev/shm when there is one (tmpfs: what the MEM tier and baselines use).
pub fn shm_tempdir(prefix: &str) -> Result<TempDir> {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(base)
        .map_err(|e| Error::from(e).context("creating a temp dir in /dev/shm"))
}

pub struct BenchCluster {
    /// The cluster's configuration, with the gateways [`BenchCluster::start_gateways`] starts.
    pub config: Config,
    /// Temp dir in /dev/shm for the MEM tier and the tmpfs baselines.
    pub shm: TempDir,
    dir: TempDir,
    cluster: LocalCluster,
}

impl BenchCluster {
    /// Starts a master and a worker, and waits until the worker is registered.
    pub async fn start(spec: ClusterSpec) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("alluvium-{}-", spec.label))
            .tempdir()
            .map_err(|e| Error::from(e).context("creating the bench temp dir"))?;
        let shm = shm_tempdir(&format!("alluvium-{}-", spec.label))?;
        let mem_dir = shm.path().join(MEM_TIER_DIR);
        let mut config = loopback_config(dir.path(), &mem_dir, ByteSize(spec.mem_quota));
        // Room for the files being measured: nothing should be evicted during a run.
        config.worker.high_watermark = 0.99;
        config.worker.low_watermark = 0.9;
        config.client.read_type = spec.read_type.clone();
        let cluster = LocalCluster::start(config).await?;
        let mut config = cluster.config().clone();
        config.proxy.s3_enabled = true;
        config.proxy.webhdfs_enabled = true;
        config.proxy.region = S3_REGION.into();
        config.proxy.s3_credentials = vec![S3Credential {
            access_key_id: S3_KEY.into(),
            secret_access_key: S3_SECRET.into(),
            user: current_user(),
        }];
        Ok(BenchCluster {
            config,
            shm,
            dir,
            cluster,
        })
    }

    /// The worker's MEM tier directory (in /dev/shm).
    pub fn mem_tier_dir(&self) -> PathBuf {
        self.shm.path().join(MEM_TIER_DIR)
    }

    /// The local directory of the root UFS (`file://`).
    pub fn ufs_dir(&self) -> PathBuf {
        self.dir.path().join("ufs")
    }

    /// A client; `short_circuit` false forces streamed gRPC reads and writes.
    pub async fn client(&self, short_circuit: bool) -> Result<FileSystem> {
        client_of(&self.config, short_circuit).await
    }

    /// The S3 and WebHDFS gateways in front of this cluster, on free loopback ports, accepting
    /// [`S3_KEY`] / [`S3_SECRET`] as the user running the bench.
    pub async fn start_gateways(&self) -> Result<ProxyServer> {
        ProxyServer::start(self.config.clone())
            .await
            .map_err(|e| e.context("starting the bench's S3/WebHDFS gateways"))
    }

    pub async fn shutdown(self) -> Result<()> {
        self.cluster.shutdown().await
    }
}

/// The S3 and WebHDFS addresses of gateways started by [`BenchCluster::start_gateways`] (both
/// are enabled in the bench's config).
pub fn gateway_addrs(proxy: &ProxyServer) -> Result<(std::net::SocketAddr, std::net::SocketAddr)> {
    match (proxy.s3_addr(), proxy.webhdfs_addr()) {
        (Some(s3), Some(webhdfs)) => Ok((s3, webhdfs)),
        _ => Err(Error::internal(
            "the bench's gateways started without S3 or WebHDFS listening",
        )),
    }
}

/// A MUST_CACHE client of the cluster `config` describes.
pub async fn client_of(config: &Config, short_circuit: bool) -> Result<FileSystem> {
    let mut c = config.clone();
    c.client.short_circuit = short_circuit;
    c.client.short_circuit_write = short_circuit;
    c.client.write_type = "MUST_CACHE".into();
    FileSystem::connect(&c).await
}

/// Polls the master until a worker is LIVE.
pub async fn wait_for_worker(config: &Config, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        match client_of(config, true).await {
            Ok(fs) => match fs.workers().await {
                Ok(w) if w.iter().any(|w| w.state == "LIVE") => return Ok(()),
                Ok(_) => last = "no LIVE worker registered".into(),
                Err(e) => last = e.message,
            },
            Err(e) => last = e.message,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(Error::unavailable(format!(
        "no worker registered with the master at {} within {limit:?} ({last})",
        config.master_address
    )))
}

/// The OS user running the bench: owner of what it creates, and the gateways' user.
pub fn current_user() -> String {
    alluvium_common::identity::Caller::current_process().user
}
