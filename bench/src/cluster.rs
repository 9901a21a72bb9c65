//! An in-process cluster for benchmarks: a real master and a real worker on loopback ports, the
//! MEM tier in a /dev/shm temp dir, everything removed afterwards.

use std::path::Path;

use alluvium_client::FileSystem;
use alluvium_common::config::TierConfig;
use alluvium_common::{ByteSize, Config, Error, Result};
use alluvium_master::MasterServer;
use alluvium_worker::WorkerServer;
use tempfile::TempDir;

pub struct BenchCluster {
    pub config: Config,
    /// Temp dir in /dev/shm for the MEM tier and the tmpfs baselines.
    pub shm: TempDir,
    _dir: TempDir,
    master: MasterServer,
    worker: WorkerServer,
}

impl BenchCluster {
    /// Starts a cluster whose MEM tier holds a few copies of `size` bytes.
    pub async fn start(size: u64) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("alluvium-bench-")
            .tempdir()
            .map_err(Error::from)?;
        let shm_base = if Path::new("/dev/shm").is_dir() {
            Path::new("/dev/shm")
        } else {
            dir.path()
        };
        let shm = tempfile::Builder::new()
            .prefix("alluvium-bench-")
            .tempdir_in(shm_base)
            .map_err(Error::from)?;
        let mut config = Config::default();
        config.master.bind_host = "127.0.0.1".into();
        config.master.hostname = "127.0.0.1".into();
        config.master.rpc_port = 0;
        config.master.web_port = 0;
        config.master.metastore_dir = dir.path().join("master");
        config.master.root_ufs = format!("file://{}", dir.path().join("ufs").display());
        std::fs::create_dir_all(dir.path().join("ufs")).map_err(Error::from)?;
        config.worker.bind_host = "127.0.0.1".into();
        config.worker.hostname = "127.0.0.1".into();
        config.worker.rpc_port = 0;
        config.worker.web_port = 0;
        config.worker.tiers = vec![TierConfig {
            alias: "MEM".into(),
            dirs: vec![shm.path().join("worker-mem")],
            // Deleted files free their blocks at the worker's next heartbeat, not at once: leave
            // room for several runs' files at a time. Only what is written uses /dev/shm.
            quota: vec![ByteSize(size * 8 + (512 << 20))],
            ..TierConfig::default()
        }];
        // Room for the files being measured: nothing should be evicted during a run.
        config.worker.high_watermark = 0.99;
        config.worker.low_watermark = 0.9;
        config.client.hostname = "127.0.0.1".into();
        let master = MasterServer::start(config.clone()).await?;
        config.master_address = format!("127.0.0.1:{}", master.rpc_addr().port());
        let worker = WorkerServer::start(config.clone()).await?;
        let cluster = BenchCluster {
            config,
            shm,
            _dir: dir,
            master,
            worker,
        };
        cluster.wait_worker().await?;
        Ok(cluster)
    }

    async fn wait_worker(&self) -> Result<()> {
        let fs = self.client(true).await?;
        for _ in 0..200 {
            if fs.workers().await?.iter().any(|w| w.state == "LIVE") {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Err(Error::unavailable(
            "the bench worker did not register with the master",
        ))
    }

    /// A client; `short_circuit` false forces streamed gRPC reads and writes.
    pub async fn client(&self, short_circuit: bool) -> Result<FileSystem> {
        let mut c = self.config.clone();
        c.client.short_circuit = short_circuit;
        c.client.short_circuit_write = short_circuit;
        c.client.write_type = "MUST_CACHE".into();
        FileSystem::connect(&c).await
    }

    pub async fn shutdown(self) -> Result<()> {
        let w = self.worker.shutdown().await;
        let m = self.master.shutdown().await;
        w.and(m)
    }
}
