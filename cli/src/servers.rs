//! `alluvium master` and `alluvium worker`: run one part until SIGINT or SIGTERM.

use alluvium_common::{Config, Result};
use alluvium_master::MasterServer;
use alluvium_proxy::ProxyServer;
use alluvium_worker::WorkerServer;

pub async fn run_master(config: Config) -> Result<()> {
    let master = MasterServer::start(config).await?;
    tracing::info!(rpc = %master.rpc_addr(), web = %master.web_addr(), "master running");
    shutdown_signal().await;
    tracing::info!("shutting down the master");
    master.shutdown().await
}

pub async fn run_worker(config: Config) -> Result<()> {
    let worker = WorkerServer::start(config).await?;
    tracing::info!(rpc = %worker.rpc_addr(), web = %worker.web_addr(), "worker running");
    shutdown_signal().await;
    tracing::info!("shutting down the worker");
    worker.shutdown().await
}

pub async fn run_proxy(config: Config) -> Result<()> {
    let proxy = ProxyServer::start(config).await?;
    tracing::info!(s3 = ?proxy.s3_addr(), webhdfs = ?proxy.webhdfs_addr(), "proxy running");
    shutdown_signal().await;
    tracing::info!("shutting down the proxy");
    proxy.shutdown().await
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops this process");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
