//! An in-process Alluvium cluster: a real master, a real worker and, when asked, the S3 and
//! WebHDFS gateways, started in that order in this process. `alluvium local`, the bench and the
//! tests all start clusters this way, so "running" means the same everywhere: the worker is
//! registered and LIVE in the master's view before [`LocalCluster::start`] returns.

use std::path::Path;
use std::time::{Duration, Instant};

use alluvium_client::FileSystem;
use alluvium_common::config::TierConfig;
use alluvium_common::{ByteSize, Config, Error, Result};
use alluvium_master::MasterServer;
use alluvium_proxy::ProxyServer;
use alluvium_worker::WorkerServer;

/// How long a started worker may take to become LIVE in the master's view.
const REGISTER_WITHIN: Duration = Duration::from_secs(30);

/// A configuration for a throwaway cluster on loopback: metastore and `file://` root UFS under
/// `dir`, a MEM tier of `mem` bytes in `mem_dir`, and every port 0 (free ports). The gateways
/// are off; callers turn on what they need.
pub fn loopback_config(dir: &Path, mem_dir: &Path, mem: ByteSize) -> Config {
    let mut c = Config::default();
    c.master.bind_host = "127.0.0.1".into();
    c.master.hostname = "127.0.0.1".into();
    c.master.rpc_port = 0;
    c.master.web_port = 0;
    c.master.metastore_dir = dir.join("master");
    c.master.root_ufs = format!("file://{}", dir.join("ufs").display());
    c.worker.bind_host = "127.0.0.1".into();
    c.worker.hostname = "127.0.0.1".into();
    c.worker.rpc_port = 0;
    c.worker.web_port = 0;
    c.worker.tiers = vec![TierConfig {
        alias: "MEM".into(),
        dirs: vec![mem_dir.to_path_buf()],
        quota: vec![mem],
        ..TierConfig::default()
    }];
    c.client.hostname = "127.0.0.1".into();
    c.proxy.bind_host = "127.0.0.1".into();
    c.proxy.s3_enabled = false;
    c.proxy.webhdfs_enabled = false;
    c.proxy.s3_port = 0;
    c.proxy.webhdfs_port = 0;
    c
}

/// A running in-process cluster. Shut it down with [`LocalCluster::shutdown`]; dropping it
/// aborts the servers' tasks without a clean stop.
pub struct LocalCluster {
    config: Config,
    master: Option<MasterServer>,
    worker: Option<WorkerServer>,
    proxy: Option<ProxyServer>,
}

impl LocalCluster {
    /// Starts the master, then a worker pointed at it, waits until the worker is LIVE, then
    /// the gateways when `config.proxy` enables one. Whatever started is shut down again when a
    /// later step fails.
    pub async fn start(config: Config) -> Result<LocalCluster> {
        let master = MasterServer::start(config.clone()).await?;
        let mut config = config;
        // The bound address, or loopback when the master listens on every address.
        let mut addr = master.rpc_addr();
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        config.master_address = addr.to_string();
        let mut cluster = LocalCluster {
            config,
            master: Some(master),
            worker: None,
            proxy: None,
        };
        if let Err(e) = cluster.start_worker().await {
            let _ = cluster.shutdown().await;
            return Err(e);
        }
        let proxy = &cluster.config.proxy;
        if proxy.s3_enabled || proxy.webhdfs_enabled {
            match ProxyServer::start(cluster.config.clone()).await {
                Ok(p) => cluster.proxy = Some(p),
                Err(e) => {
                    let _ = cluster.shutdown().await;
                    return Err(e);
                }
            }
        }
        Ok(cluster)
    }

    /// The cluster's configuration, `master_address` set to the running master.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn master(&self) -> &MasterServer {
        self.master
            .as_ref()
            .expect("the master runs until shutdown")
    }

    /// The worker; None after [`LocalCluster::stop_worker`].
    pub fn worker(&self) -> Option<&WorkerServer> {
        self.worker.as_ref()
    }

    /// The gateways, when the configuration enables one.
    pub fn proxy(&self) -> Option<&ProxyServer> {
        self.proxy.as_ref()
    }

    /// A client of this cluster.
    pub async fn client(&self) -> Result<FileSystem> {
        FileSystem::connect(&self.config).await
    }

    /// Starts a worker (after [`LocalCluster::stop_worker`], a restart on the same tier dirs)
    /// and waits until the master lists it LIVE.
    pub async fn start_worker(&mut self) -> Result<()> {
        if self.worker.is_some() {
            return Err(Error::failed_precondition("the worker is already running"));
        }
        let worker = WorkerServer::start(self.config.clone()).await?;
        let registered = wait_until_live(&self.config, &worker).await;
        self.worker = Some(worker);
        registered
    }

    /// Stops the worker cleanly (the master sees it lost after its timeout).
    pub async fn stop_worker(&mut self) -> Result<()> {
        match self.worker.take() {
            Some(w) => w.shutdown().await,
            None => Ok(()),
        }
    }

    /// Stops the gateways, the worker and the master, in that order; the first error wins.
    pub async fn shutdown(mut self) -> Result<()> {
        let p = match self.proxy.take() {
            Some(p) => p.shutdown().await,
            None => Ok(()),
        };
        let w = self.stop_worker().await;
        let m = match self.master.take() {
            Some(m) => m.shutdown().await,
            None => Ok(()),
        };
        p.and(w).and(m)
    }
}

/// Waits until the master lists `worker` as LIVE (bounded by [`REGISTER_WITHIN`]).
async fn wait_until_live(config: &Config, worker: &WorkerServer) -> Result<()> {
    let deadline = Instant::now() + REGISTER_WITHIN;
    let mut last = String::from("not registered yet");
    while Instant::now() < deadline {
        if let Some(id) = worker.worker_id() {
            let listed = async { FileSystem::connect(config).await?.workers().await };
            match listed.await {
                Ok(ws) if ws.iter().any(|w| w.id == id && w.state == "LIVE") => return Ok(()),
                Ok(_) => last = format!("worker {id} registered but not LIVE yet"),
                Err(e) => last = e.message,
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(Error::unavailable(format!(
        "the worker did not become LIVE in the master at {} within {}s ({last})",
        config.master_address,
        REGISTER_WITHIN.as_secs()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn starts_registered_restarts_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = loopback_config(dir.path(), &dir.path().join("mem"), ByteSize(8 << 20));
        c.proxy.s3_enabled = true;
        let mut cluster = LocalCluster::start(c).await.unwrap();
        assert!(cluster.proxy().unwrap().s3_addr().is_some());
        assert!(cluster.proxy().unwrap().webhdfs_addr().is_none());
        let fs = cluster.client().await.unwrap();
        let live =
            |ws: &[alluvium_client::WorkerInfo]| ws.iter().filter(|w| w.state == "LIVE").count();
        assert_eq!(live(&fs.workers().await.unwrap()), 1);
        cluster.stop_worker().await.unwrap();
        assert!(cluster.worker().is_none());
        cluster.start_worker().await.unwrap();
        let e = cluster.start_worker().await.unwrap_err();
        assert_eq!(e.code, alluvium_common::ErrorCode::FailedPrecondition);
        cluster.shutdown().await.unwrap();
    }
}
