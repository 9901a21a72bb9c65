//! The Node service: FUSE-staged, bind-published volumes.
//!
//! - `NodeStageVolume`: one FUSE mount of the volume's Alluvium directory at the staging path,
//!   served by this process ([`alluvium_fuse::mount_background`]).
//! - `NodePublishVolume`: a bind mount of the staging path on the pod's target path, made
//!   read-only by a remount when the CO asks for it or the access mode only reads.
//! - The FUSE mount's master connections carry the cluster secret of NodeStageVolume's
//!   `secrets` when it has one ([`crate::secrets`]); the staged record keeps it for recovery and
//!   NodeGetVolumeStats.
//! - Every stage and publish is recorded in the state directory before the mount is made and
//!   forgotten after it is gone, so [`crate::recovery`] knows what to bring back after a restart.
//!
//! Calls on the node run one at a time (one lock over the mount table): the kubelet calls them
//! rarely, and serial mount-table changes are easy to reason about.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use alluvium_client::FileSystem;
use alluvium_common::{Error, ErrorCode, Result};
use alluvium_fuse::{mount_background, FuseMountHandle, FuseOptions};
use alluvium_proto::csi::v1::node_server::Node;
use alluvium_proto::csi::v1::node_service_capability::rpc::Type as RpcType;
use alluvium_proto::csi::v1::node_service_capability::{self, Rpc};
use alluvium_proto::csi::v1::volume_usage::Unit;
use alluvium_proto::csi::v1::{
    NodeGetCapabilitiesRequest, NodeGetCapabilitiesResponse, NodeGetInfoRequest,
    NodeGetInfoResponse, NodeGetVolumeStatsRequest, NodeGetVolumeStatsResponse,
    NodePublishVolumeRequest, NodePublishVolumeResponse, NodeServiceCapability,
    NodeStageVolumeRequest, NodeStageVolumeResponse, NodeUnpublishVolumeRequest,
    NodeUnpublishVolumeResponse, NodeUnstageVolumeRequest, NodeUnstageVolumeResponse, Topology,
    VolumeCondition, VolumeUsage,
};
use tonic::{Request, Response, Status};

use crate::masters::Masters;
use crate::metrics::CsiMetrics;
use crate::mounts::{self, Health};
use crate::params::{self, VolumeSpec};
use crate::secrets::ClusterSecret;
use crate::state::{PublishedRecord, StagedRecord, StateDir};
use crate::{config_for, invalid, status, TOPOLOGY_NODE_KEY};

/// A staged volume and, while it is up, the FUSE session serving it.
pub(crate) struct Staged {
    pub rec: StagedRecord,
    pub handle: Option<FuseMountHandle>,
}

/// What this node holds now.
#[derive(Default)]
pub(crate) struct MountTable {
    pub staged: HashMap<String, Staged>,
    pub published: HashMap<PathBuf, PublishedRecord>,
}

pub(crate) struct NodeInner {
    pub node_id: String,
    pub masters: Arc<Masters>,
    pub state: StateDir,
    pub metrics: Arc<CsiMetrics>,
    pub table: tokio::sync::Mutex<MountTable>,
}

impl NodeInner {
    pub fn update_gauges(&self, t: &MountTable) {
        let live = t.staged.values().filter(|s| s.handle.is_some()).count();
        self.metrics.set_mounts(live, t.published.len());
    }

    /// Mounts a staged record's volume (blocking work on the blocking pool). A dead or leftover
    /// mount at the staging path is detached first, so mounts never pile up there.
    pub async fn mount_staged(&self, rec: &StagedRecord) -> Result<FuseMountHandle> {
        let config = config_for(
            self.masters.base(),
            &rec.master,
            rec.cluster_secret.as_ref(),
        );
        let opts = FuseOptions::parse(&rec.fuse_options)?;
        let rec = rec.clone();
        tokio::task::spawn_blocking(move || {
            // A dead mount there fails stat (and mkdir says EEXIST): only create what is missing.
            if mounts::health(&rec.staging_path) == Health::Missing {
                std::fs::create_dir_all(&rec.staging_path).map_err(|e| {
                    Error::internal(format!(
                        "cannot create the staging directory {}: {e}",
                        rec.staging_path.display()
                    ))
                })?;
            }
            mounts::unmount_all(&rec.staging_path)?;
            mount_background(&config, &rec.path, &rec.staging_path, &opts)
        })
        .await
        .map_err(|e| Error::internal(format!("mount task failed: {e}")))?
    }

    /// Leaves every FUSE mount as it is when the process exits (SIGTERM): their connections end
    /// with the process, exactly as after a crash, and the next start recovers them from the
    /// state directory. (Dropping the handles would unmount the staging paths but not the pods'
    /// bind mounts, which die with the connection either way.)
    pub async fn leave_mounts(&self) {
        let mut t = self.table.lock().await;
        for s in t.staged.values_mut() {
            if let Some(h) = s.handle.take() {
                std::mem::forget(h);
            }
        }
    }
}

#[derive(Clone)]
pub struct NodeService {
    pub(crate) inner: Arc<NodeInner>,
}

impl NodeService {
    pub(crate) fn new(inner: Arc<NodeInner>) -> Self {
        Self { inner }
    }
}

fn required<'a>(value: &'a str, field: &str) -> std::result::Result<&'a str, Status> {
    if value.is_empty() {
        return Err(invalid(format!("{field} is required")));
    }
    Ok(value)
}

fn absolute(value: &str, field: &str) -> std::result::Result<PathBuf, Status> {
    required(value, field)?;
    let p = PathBuf::from(value);
    if !p.is_absolute() {
        return Err(invalid(format!(
            "{field} {value:?} must be an absolute path"
        )));
    }
    Ok(p)
}

fn io_status(what: &str, path: &Path, e: std::io::Error) -> Status {
    Status::internal(format!("{what} {}: {e}", path.display()))
}

impl NodeService {
    async fn stage(&self, req: NodeStageVolumeRequest) -> std::result::Result<(), Status> {
        let volume_id = required(&req.volume_id, "volume_id")?;
        let staging = absolute(&req.staging_target_path, "staging_target_path")?;
        let cap = params::require_capability(req.volume_capability.as_ref())?;
        let spec = VolumeSpec::resolve(
            volume_id,
            &req.volume_context,
            self.inner.masters.default_master(),
        )?;
        let read_only = params::read_only_mode(cap);
        let cluster_secret = ClusterSecret::from_secrets(&req.secrets)?;
        let rec = StagedRecord {
            volume_id: volume_id.to_string(),
            staging_path: staging.clone(),
            master: spec.master.clone(),
            path: spec.path.clone(),
            fuse_options: spec.fuse_option_strings(&params::mount_flags(cap), read_only),
            capacity_bytes: spec.capacity_bytes,
            cluster_secret,
        };
        let inner = &self.inner;
        let mut t = inner.table.lock().await;
        if let Some(s) = t.staged.get_mut(volume_id) {
            if s.rec.staging_path != staging {
                return Err(Status::already_exists(format!(
                    "volume {volume_id} is staged at {}, not {}",
                    s.rec.staging_path.display(),
                    staging.display()
                )));
            }
            if !s.rec.same_mount(&rec) {
                return Err(Status::already_exists(format!(
                    "volume {volume_id} is staged at {} with another capability or context",
                    staging.display()
                )));
            }
            if s.handle.as_ref().is_some_and(|h| h.is_active())
                && mounts::health(&staging) == Health::Live
            {
                if s.rec.cluster_secret != rec.cluster_secret {
                    // A rotated secret: the live mount keeps its connections, recovery and
                    // stats use the new one from now on.
                    inner.state.save_staged(&rec).map_err(status)?;
                    s.rec = rec;
                }
                return Ok(());
            }
            // Recorded but not up (recovery has not managed yet): mount it now.
        }
        inner.state.save_staged(&rec).map_err(status)?;
        match inner.mount_staged(&rec).await {
            Ok(handle) => {
                t.staged.insert(
                    rec.volume_id.clone(),
                    Staged {
                        rec,
                        handle: Some(handle),
                    },
                );
                inner.update_gauges(&t);
                Ok(())
            }
            Err(e) => {
                if !t.staged.contains_key(volume_id) {
                    let _ = inner.state.remove_staged(volume_id);
                }
                Err(status(e.context(format!("NodeStageVolume {volume_id}"))))
            }
        }
    }

    async fn unstage(&self, req: NodeUnstageVolumeRequest) -> std::result::Result<(), Status> {
        let volume_id = required(&req.volume_id, "volume_id")?;
        let staging = absolute(&req.staging_target_path, "staging_target_path")?;
        let inner = &self.inner;
        let mut t = inner.table.lock().await;
        let ours = t
            .staged
            .get(volume_id)
            .is_some_and(|s| s.rec.staging_path == staging);
        let others = t
            .staged
            .values()
            .any(|s| s.rec.volume_id != volume_id && s.rec.staging_path == staging);
        if others {
            return Err(Status::not_found(format!(
                "{} stages another volume, not {volume_id}",
                staging.display()
            )));
        }
        if !ours {
            // Not staged here (already unstaged, or the state was lost): make sure nothing is
            // left mounted at the path, and answer OK.
            let path = staging.clone();
            tokio::task::spawn_blocking(move || mounts::unmount_all(&path))
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(status)?;
            return Ok(());
        }
        let still: Vec<String> = t
            .published
            .values()
            .filter(|p| p.volume_id == volume_id)
            .map(|p| p.target_path.display().to_string())
            .collect();
        if !still.is_empty() {
            return Err(Status::failed_precondition(format!(
                "volume {volume_id} is still published at {}; unpublish it first",
                still.join(", ")
            )));
        }
        let staged = t.staged.remove(volume_id).expect("checked above");
        let path = staging.clone();
        let result = tokio::task::spawn_blocking(move || {
            // Dropping the handle unmounts (lazily when busy) and ends the FUSE session.
            drop(staged.handle);
            mounts::unmount_all(&path)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        inner.state.remove_staged(volume_id).map_err(status)?;
        inner.update_gauges(&t);
        result.map_err(status)
    }

    async fn publish(&self, req: NodePublishVolumeRequest) -> std::result::Result<(), Status> {
        let volume_id = required(&req.volume_id, "volume_id")?;
        let staging = absolute(&req.staging_target_path, "staging_target_path")?;
        let target = absolute(&req.target_path, "target_path")?;
        let cap = params::require_capability(req.volume_capability.as_ref())?;
        // A bind mount needs no master: the staging mount holds the volume's connections. A
        // malformed secret is still refused, as in every call that takes one.
        ClusterSecret::from_secrets(&req.secrets)?;
        let inner = &self.inner;
        let mut t = inner.table.lock().await;
        let Some(staged) = t.staged.get(volume_id) else {
            return Err(Status::failed_precondition(format!(
                "volume {volume_id} is not staged on this node (call NodeStageVolume first)"
            )));
        };
        if staged.rec.staging_path != staging {
            return Err(Status::failed_precondition(format!(
                "volume {volume_id} is staged at {}, not {}",
                staged.rec.staging_path.display(),
                staging.display()
            )));
        }
        if !staged.handle.as_ref().is_some_and(|h| h.is_active()) {
            return Err(Status::unavailable(format!(
                "volume {volume_id}: its FUSE mount is not up yet (being recovered); retry"
            )));
        }
        let read_only = req.readonly || params::read_only_mode(cap);
        let rec = PublishedRecord {
            volume_id: volume_id.to_string(),
            target_path: target.clone(),
            staging_path: staging.clone(),
            read_only,
        };
        if let Some(existing) = t.published.get(&target) {
            if existing.volume_id != volume_id {
                return Err(Status::already_exists(format!(
                    "{} already holds volume {}",
                    target.display(),
                    existing.volume_id
                )));
            }
            if existing.read_only != read_only {
                return Err(Status::already_exists(format!(
                    "volume {volume_id} is published at {} {}",
                    target.display(),
                    if existing.read_only {
                        "read-only"
                    } else {
                        "read-write"
                    }
                )));
            }
            if mounts::is_mount_point(&target) && mounts::health(&target) == Health::Live {
                return Ok(());
            }
        }
        std::fs::create_dir_all(&target)
            .map_err(|e| io_status("cannot create the target directory", &target, e))?;
        inner.state.save_published(&rec).map_err(status)?;
        let (src, dst) = (staging.clone(), target.clone());
        let bound = tokio::task::spawn_blocking(move || mounts::bind(&src, &dst, read_only))
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        if let Err(e) = bound {
            if !t.published.contains_key(&target) {
                let _ = inner.state.remove_published(&target);
            }
            return Err(status(e.context(format!("NodePublishVolume {volume_id}"))));
        }
        t.published.insert(target, rec);
        inner.update_gauges(&t);
        Ok(())
    }

    async fn unpublish(&self, req: NodeUnpublishVolumeRequest) -> std::result::Result<(), Status> {
        let volume_id = required(&req.volume_id, "volume_id")?;
        let target = absolute(&req.target_path, "target_path")?;
        let inner = &self.inner;
        let mut t = inner.table.lock().await;
        if let Some(existing) = t.published.get(&target) {
            if existing.volume_id != volume_id {
                return Err(Status::not_found(format!(
                    "{} holds volume {}, not {volume_id}",
                    target.display(),
                    existing.volume_id
                )));
            }
        }
        let path = target.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            mounts::unmount_all(&path)?;
            match std::fs::remove_dir(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::internal(format!(
                    "cannot remove the target directory {}: {e}",
                    path.display()
                ))),
            }
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(status)?;
        inner.state.remove_published(&target).map_err(status)?;
        t.published.remove(&target);
        inner.update_gauges(&t);
        Ok(())
    }

    async fn stats(
        &self,
        req: NodeGetVolumeStatsRequest,
    ) -> std::result::Result<NodeGetVolumeStatsResponse, Status> {
        let volume_id = required(&req.volume_id, "volume_id")?;
        // Not `absolute`: a relative path is a path the volume is not at (NOT_FOUND, as the spec
        // and csi-sanity want), not a malformed request. It matches no recorded path below.
        let volume_path = PathBuf::from(required(&req.volume_path, "volume_path")?);
        let rec = {
            let t = self.inner.table.lock().await;
            let Some(s) = t.staged.get(volume_id) else {
                return Err(Status::not_found(format!(
                    "volume {volume_id} is not staged on this node"
                )));
            };
            let known = s.rec.staging_path == volume_path
                || t.published
                    .get(&volume_path)
                    .is_some_and(|p| p.volume_id == volume_id);
            if !known {
                return Err(Status::not_found(format!(
                    "volume {volume_id} is neither staged nor published at {}",
                    volume_path.display()
                )));
            }
            s.rec.clone()
        };
        let condition = match mounts::health(&volume_path) {
            Health::Missing => {
                return Err(Status::not_found(format!(
                    "{} does not exist",
                    volume_path.display()
                )))
            }
            Health::Live => VolumeCondition {
                abnormal: false,
                message: "mounted".into(),
            },
            Health::Dead => VolumeCondition {
                abnormal: true,
                message: "the FUSE mount is not connected; the node plugin re-mounts it".into(),
            },
            Health::Error(code) => VolumeCondition {
                abnormal: true,
                message: format!("stat failed: {}", std::io::Error::from_raw_os_error(code)),
            },
        };
        let fs = self
            .inner
            .masters
            .get(&rec.master, rec.cluster_secret.as_ref())
            .await
            .map_err(status)?;
        let (used, files) = usage(&fs, &rec.path)
            .await
            .map_err(|e| status(e.context(format!("NodeGetVolumeStats {volume_id}"))))?;
        // The recorded quota is the volume's size; a volume without one (static PVs) is as big
        // as the cluster's cache.
        let total = if rec.capacity_bytes > 0 {
            rec.capacity_bytes
        } else {
            fs.master_info()
                .await
                .map_err(|e| status(e.context("NodeGetVolumeStats")))?
                .capacity_bytes
        };
        let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        tracing::debug!(volume_id, used, files, total, "csi: volume stats");
        Ok(NodeGetVolumeStatsResponse {
            usage: vec![VolumeUsage {
                available: to_i64(total.saturating_sub(used)),
                total: to_i64(total),
                used: to_i64(used),
                unit: Unit::Bytes as i32,
            }],
            volume_condition: Some(condition),
        })
    }
}

/// Bytes and files under an Alluvium directory, from the master's (streamed) listing.
async fn usage(fs: &FileSystem, path: &str) -> Result<(u64, u64)> {
    let (mut bytes, mut files) = (0u64, 0u64);
    match fs
        .list_status_each(path, true, |f| {
            if !f.is_folder {
                bytes = bytes.saturating_add(f.length);
                files += 1;
            }
        })
        .await
    {
        Ok(()) => Ok((bytes, files)),
        Err(e) if e.code == ErrorCode::NotFound => Err(Error::not_found(format!(
            "{path} no longer exists in Alluvium"
        ))),
        Err(e) => Err(e),
    }
}

fn rpc(t: RpcType) -> NodeServiceCapability {
    NodeServiceCapability {
        r#type: Some(node_service_capability::Type::Rpc(Rpc { r#type: t as i32 })),
    }
}

#[tonic::async_trait]
impl Node for NodeService {
    async fn node_stage_volume(
        &self,
        req: Request<NodeStageVolumeRequest>,
    ) -> std::result::Result<Response<NodeStageVolumeResponse>, Status> {
        let fut = async {
            self.stage(req.into_inner()).await?;
            Ok(NodeStageVolumeResponse {})
        };
        self.inner.metrics.call("NodeStageVolume", fut).await
    }

    async fn node_unstage_volume(
        &self,
        req: Request<NodeUnstageVolumeRequest>,
    ) -> std::result::Result<Response<NodeUnstageVolumeResponse>, Status> {
        let fut = async {
            self.unstage(req.into_inner()).await?;
            Ok(NodeUnstageVolumeResponse {})
        };
        self.inner.metrics.call("NodeUnstageVolume", fut).await
    }

    async fn node_publish_volume(
        &self,
        req: Request<NodePublishVolumeRequest>,
    ) -> std::result::Result<Response<NodePublishVolumeResponse>, Status> {
        let fut = async {
            self.publish(req.into_inner()).await?;
            Ok(NodePublishVolumeResponse {})
        };
        self.inner.metrics.call("NodePublishVolume", fut).await
    }

    async fn node_unpublish_volume(
        &self,
        req: Request<NodeUnpublishVolumeRequest>,
    ) -> std::result::Result<Response<NodeUnpublishVolumeResponse>, Status> {
        let fut = async {
            self.unpublish(req.into_inner()).await?;
            Ok(NodeUnpublishVolumeResponse {})
        };
        self.inner.metrics.call("NodeUnpublishVolume", fut).await
    }

    async fn node_get_volume_stats(
        &self,
        req: Request<NodeGetVolumeStatsRequest>,
    ) -> std::result::Result<Response<NodeGetVolumeStatsResponse>, Status> {
        self.inner
            .metrics
            .call("NodeGetVolumeStats", self.stats(req.into_inner()))
            .await
    }

    async fn node_get_capabilities(
        &self,
        _req: Request<NodeGetCapabilitiesRequest>,
    ) -> std::result::Result<Response<NodeGetCapabilitiesResponse>, Status> {
        self.inner
            .metrics
            .call("NodeGetCapabilities", async {
                Ok(NodeGetCapabilitiesResponse {
                    capabilities: vec![
                        rpc(RpcType::StageUnstageVolume),
                        rpc(RpcType::GetVolumeStats),
                        rpc(RpcType::VolumeCondition),
                    ],
                })
            })
            .await
    }

    async fn node_get_info(
        &self,
        _req: Request<NodeGetInfoRequest>,
    ) -> std::result::Result<Response<NodeGetInfoResponse>, Status> {
        self.inner
            .metrics
            .call("NodeGetInfo", async {
                Ok(NodeGetInfoResponse {
                    node_id: self.inner.node_id.clone(),
                    max_volumes_per_node: 0,
                    accessible_topology: Some(Topology {
                        segments: HashMap::from([(
                            TOPOLOGY_NODE_KEY.to_string(),
                            self.inner.node_id.clone(),
                        )]),
                    }),
                })
            })
            .await
    }
}
