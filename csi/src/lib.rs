//! The Alluvium CSI driver (`csi.alluvium.io`): Alluvium paths as Kubernetes volumes.
//!
//! One process serves the CSI services on a unix socket (`alluvium csi --endpoint ... --node-id
//! ...`):
//! - **Identity** ([`identity`]): plugin info, capabilities, and a probe that reports whether the
//!   master answers.
//! - **Controller** ([`controller`]): a directory per dynamically provisioned volume under the
//!   StorageClass's `basePath`, with its requested capacity recorded beside it.
//! - **Node** ([`node`]): `NodeStageVolume` makes one FUSE mount of the volume's Alluvium path at
//!   the staging directory; `NodePublishVolume` bind-mounts it into each pod's target directory
//!   (read-only when asked). Every staged and published volume is recorded in a state directory
//!   ([`state`]), and [`recovery`] brings the mounts back when the plugin restarts.
//!
//! The FUSE mounts live in this process, so they die with it; recovery re-mounts them and stacks
//! fresh bind mounts over the dead ones, which propagate into pods that mount the volume with
//! `mountPropagation: HostToContainer`.
//!
//! A master that requires a cluster secret (`security.cluster_secret`) gets it from the volume:
//! the key `clusterSecret` of the CSI `secrets` map, which Kubernetes fills from the Secrets a
//! StorageClass names (`csi.storage.k8s.io/provisioner-secret-name`/`-namespace`,
//! `csi.storage.k8s.io/node-stage-secret-name`/`-namespace`) or a PV's `nodeStageSecretRef`.
//! Volumes without one use the plugin's own (`security.cluster_secret` in its config file, or
//! `ALLUVIUM_SECURITY__CLUSTER_SECRET`). See [`secrets`].

pub mod client;
pub mod controller;
pub mod identity;
mod masters;
pub mod metrics;
pub mod mounts;
pub mod node;
pub mod params;
pub mod recovery;
pub mod secrets;
mod server;
pub mod state;

use std::net::SocketAddr;
use std::path::PathBuf;

use alluvium_common::{Config, Error, Result};

use crate::secrets::ClusterSecret;

pub use server::{endpoint_path, run};

/// The driver name registered with the kubelet, unless `--driver-name` says otherwise.
pub const DRIVER_NAME: &str = "csi.alluvium.io";

/// Topology key of [`node`]'s `NodeGetInfo`: the node a plugin runs on.
pub const TOPOLOGY_NODE_KEY: &str = "topology.csi.alluvium.io/node";

/// Which CSI services this process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Identity, Controller and Node (one process per node does everything).
    All,
    /// Identity and Controller (beside external-provisioner; needs no privileges).
    Controller,
    /// Identity and Node (the privileged DaemonSet beside node-driver-registrar).
    Node,
}

impl Mode {
    pub fn controller(self) -> bool {
        matches!(self, Mode::All | Mode::Controller)
    }
    pub fn node(self) -> bool {
        matches!(self, Mode::All | Mode::Node)
    }
}

/// `alluvium csi ...`
#[derive(Debug, Clone, clap::Args)]
pub struct CsiArgs {
    /// CSI endpoint: `unix:///path/csi.sock` (or a plain absolute path). A stale socket file is
    /// removed at start.
    #[arg(long, env = "CSI_ENDPOINT", value_name = "URL")]
    pub endpoint: String,
    /// This node's id (the Kubernetes node name); required when the node service runs.
    #[arg(long, env = "NODE_ID", default_value = "", value_name = "NODE")]
    pub node_id: String,
    /// Services to serve.
    #[arg(long, value_enum, default_value_t = Mode::All)]
    pub mode: Mode,
    /// Where the node service records staged and published volumes (for recovery after a
    /// restart). Must survive the plugin's container: a hostPath.
    #[arg(long, default_value = "/var/lib/alluvium-csi", value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Driver name reported by GetPluginInfo.
    #[arg(long, default_value = DRIVER_NAME, value_name = "NAME")]
    pub driver_name: String,
    /// Serve Prometheus metrics (`alluvium_csi_*`) on this address at `/metrics`.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<SocketAddr>,
}

impl CsiArgs {
    /// Checks what clap cannot: a node id when the node service runs, a sane driver name.
    pub fn validate(&self) -> Result<()> {
        if self.mode.node() && self.node_id.trim().is_empty() {
            return Err(Error::invalid_argument(
                "--node-id is required when the node service runs (--mode all|node)",
            ));
        }
        let name = &self.driver_name;
        let ok = !name.is_empty()
            && name.len() <= 63
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.ends_with(|c: char| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !ok {
            return Err(Error::invalid_argument(format!(
                "--driver-name {name:?}: must be a domain name of at most 63 characters"
            )));
        }
        Ok(())
    }
}

/// An Alluvium error as the gRPC status the CSI spec expects (codes map one to one).
pub(crate) fn status(e: Error) -> tonic::Status {
    tonic::Status::new(e.code.to_grpc(), e.message)
}

/// Shorthand for INVALID_ARGUMENT.
pub(crate) fn invalid(msg: impl Into<String>) -> tonic::Status {
    tonic::Status::invalid_argument(msg)
}

/// The config a volume on `master` is served with: the plugin's own, pointed at that master,
/// with the volume's cluster secret in place of the plugin's when it has one.
pub(crate) fn config_for(base: &Config, master: &str, secret: Option<&ClusterSecret>) -> Config {
    let mut c = base.clone();
    c.master_address = master.to_string();
    if let Some(s) = secret {
        c.security.cluster_secret = s.expose().to_string();
    }
    c
}
