//! `alluvium csi`: the gRPC server on the unix socket, the optional metrics server, recovery,
//! and a clean stop on SIGTERM/SIGINT.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use alluvium_common::{Config, Error, Result};
use alluvium_proto::csi::v1::controller_server::ControllerServer;
use alluvium_proto::csi::v1::identity_server::IdentityServer;
use alluvium_proto::csi::v1::node_server::NodeServer;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

use crate::controller::ControllerService;
use crate::identity::IdentityService;
use crate::masters::Masters;
use crate::metrics::CsiMetrics;
use crate::node::{MountTable, NodeInner, NodeService};
use crate::state::StateDir;
use crate::CsiArgs;

/// The socket path of a CSI endpoint: `unix:///abs/path`, `unix:/abs/path` or `/abs/path`.
pub fn endpoint_path(endpoint: &str) -> Result<PathBuf> {
    let path = endpoint
        .strip_prefix("unix://")
        .or_else(|| endpoint.strip_prefix("unix:"))
        .unwrap_or(endpoint);
    if path.contains("://") || !path.starts_with('/') {
        return Err(Error::invalid_argument(format!(
            "--endpoint {endpoint:?}: expected unix:///absolute/path/csi.sock"
        )));
    }
    Ok(PathBuf::from(path))
}

/// Removes a socket file left by a previous run (binding would fail with EADDRINUSE); refuses to
/// remove anything that is not a socket.
fn clear_stale_socket(path: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path).map_err(|e| {
            Error::internal(format!(
                "cannot remove the stale socket {}: {e}",
                path.display()
            ))
        }),
        Ok(_) => Err(Error::failed_precondition(format!(
            "{} exists and is not a socket; not removing it",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::internal(format!("{}: {e}", path.display()))),
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "csi: cannot watch SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("csi: signal received, stopping");
}

/// Runs the plugin until SIGTERM/SIGINT.
pub async fn run(config: Config, args: CsiArgs) -> Result<()> {
    let started = Instant::now();
    args.validate()?;
    let socket = endpoint_path(&args.endpoint)?;
    let metrics = Arc::new(CsiMetrics::new());
    let masters = Arc::new(Masters::new(config));

    let node = if args.mode.node() {
        let state = StateDir::open(&args.state_dir)?;
        let inner = Arc::new(NodeInner {
            node_id: args.node_id.clone(),
            masters: masters.clone(),
            state,
            metrics: metrics.clone(),
            table: tokio::sync::Mutex::new(MountTable::default()),
        });
        // Before serving, load the records and start bringing mounts back; calls wait for the
        // mount table while a round runs, so they see recovered volumes.
        crate::recovery::round(&inner, true).await;
        Some(inner)
    } else {
        None
    };

    if let Some(parent) = socket.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::internal(format!("cannot create {}: {e}", parent.display())))?;
    }
    clear_stale_socket(&socket)?;
    let listener = UnixListener::bind(&socket)
        .map_err(|e| Error::unavailable(format!("cannot listen on {}: {e}", socket.display())))?;

    let metrics_task = args.metrics_addr.map(|addr| {
        let m = metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve(addr, m).await {
                tracing::error!(error = %e, "csi: metrics server stopped");
            }
        })
    });
    let recovery_task = node
        .clone()
        .map(|inner| tokio::spawn(crate::recovery::run(inner, started)));

    tracing::info!(
        endpoint = %socket.display(),
        driver = %args.driver_name,
        node_id = %args.node_id,
        mode = ?args.mode,
        master = %masters.default_master(),
        state_dir = %args.state_dir.display(),
        "csi: serving"
    );
    let identity = IdentityService::new(
        args.driver_name.clone(),
        args.mode,
        masters.clone(),
        metrics.clone(),
    );
    let controller = args
        .mode
        .controller()
        .then(|| ControllerServer::new(ControllerService::new(masters.clone(), metrics.clone())));
    let node_service = node
        .clone()
        .map(|inner| NodeServer::new(NodeService::new(inner)));
    let served = tonic::transport::Server::builder()
        .add_service(IdentityServer::new(identity))
        .add_optional_service(controller)
        .add_optional_service(node_service)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown_signal())
        .await;

    if let Some(t) = recovery_task {
        t.abort();
    }
    if let Some(t) = metrics_task {
        t.abort();
    }
    if let Some(inner) = node {
        inner.leave_mounts().await;
    }
    let _ = std::fs::remove_file(&socket);
    served.map_err(|e| Error::internal(format!("CSI server on {}: {e}", socket.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            endpoint_path("unix:///csi/csi.sock").unwrap(),
            PathBuf::from("/csi/csi.sock")
        );
        assert_eq!(
            endpoint_path("unix:/csi/csi.sock").unwrap(),
            PathBuf::from("/csi/csi.sock")
        );
        assert_eq!(endpoint_path("/x.sock").unwrap(), PathBuf::from("/x.sock"));
        assert!(endpoint_path("tcp://127.0.0.1:10000").is_err());
        assert!(endpoint_path("unix://relative.sock").is_err());
    }

    #[test]
    fn stale_sockets_only() {
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("csi.sock");
        let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        drop(l);
        clear_stale_socket(&sock).unwrap();
        assert!(!sock.exists());
        let file = d.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(clear_stale_socket(&file).is_err());
        assert!(file.exists());
    }
}
