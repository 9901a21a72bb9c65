//! The operator's view of a master: its public gRPC API (`FileSystemMaster`), like any client.
//! A trait so controllers can be tested without a running master.

use std::collections::BTreeMap;
use std::time::Duration;

use alluvium_common::identity::{Caller, IdentityInterceptor};
use alluvium_common::ErrorCode;
use alluvium_crds::TierUsageStatus;
use alluvium_proto::file_system_master_client::FileSystemMasterClient;
use futures::future::BoxFuture;
use futures::StreamExt;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Cluster-wide capacity and usage, as the master reports them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MasterUsage {
    pub live_workers: u32,
    pub lost_workers: u32,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub tiers: Vec<TierUsageStatus>,
}

/// Bytes under a mount and how many of them workers hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathUsage {
    pub total_bytes: u64,
    pub cached_bytes: u64,
}

/// A mount to make.
#[derive(Debug, Clone, PartialEq)]
pub struct MountRequest {
    pub path: String,
    pub ufs: String,
    pub read_only: bool,
    pub shared: bool,
    /// Includes credentials: never log it.
    pub options: BTreeMap<String, String>,
}

/// How to reach one cluster's master.
#[derive(Debug, Clone, PartialEq)]
pub struct MasterTarget {
    /// `host:port` of the gRPC service.
    pub endpoint: String,
    pub secret: Option<String>,
}

/// Why a call to a master failed: an outage and a refusal call for different actions, so they
/// are told apart by kind, never by reading the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("master {endpoint}: {what}: {message}")]
pub struct MasterError {
    pub endpoint: String,
    /// The call or step, e.g. `Mount s3://b at /data` or `cannot connect`.
    pub what: String,
    pub kind: MasterErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterErrorKind {
    /// No answer: cannot connect, timed out, or the master said it is unavailable.
    Unreachable,
    /// The master (or the operator's own check of the target) refused the call with this code.
    Rejected(ErrorCode),
}

impl MasterError {
    pub fn unreachable(endpoint: &str, what: &str, e: impl std::fmt::Display) -> Self {
        Self {
            endpoint: endpoint.to_string(),
            what: what.to_string(),
            kind: MasterErrorKind::Unreachable,
            message: e.to_string(),
        }
    }

    /// The target itself is unusable (a malformed endpoint or secret).
    pub fn invalid(endpoint: &str, what: &str, e: impl std::fmt::Display) -> Self {
        Self {
            kind: MasterErrorKind::Rejected(ErrorCode::InvalidArgument),
            ..Self::unreachable(endpoint, what, e)
        }
    }

    pub fn is_unreachable(&self) -> bool {
        self.kind == MasterErrorKind::Unreachable
    }
}

pub trait MasterApi: Send + Sync {
    fn usage(&self, t: &MasterTarget) -> BoxFuture<'_, Result<MasterUsage, MasterError>>;
    /// Mounts `req` (making its missing parent directories first), remounts when another UFS is
    /// mounted there, updates the mount in place when `changed` (options, credentials,
    /// read-only), and otherwise does nothing. Returns the mount id.
    fn ensure_mount(
        &self,
        t: &MasterTarget,
        req: MountRequest,
        changed: bool,
    ) -> BoxFuture<'_, Result<u64, MasterError>>;
    /// Unmounts `path`; not mounted is success.
    fn unmount(&self, t: &MasterTarget, path: &str) -> BoxFuture<'_, Result<(), MasterError>>;
    fn path_usage(
        &self,
        t: &MasterTarget,
        path: &str,
    ) -> BoxFuture<'_, Result<PathUsage, MasterError>>;
}

/// Upper bound on entries summed for a mount's usage, so one huge mount cannot stall a reconcile.
const USAGE_ENTRY_CAP: usize = 200_000;

/// The real thing: a gRPC client per call (reconciles are minutes apart; connections are cheap).
pub struct GrpcMasters {
    user: String,
}

impl GrpcMasters {
    pub fn new(user: &str) -> Self {
        Self { user: user.into() }
    }

    async fn client(
        &self,
        t: &MasterTarget,
    ) -> Result<FileSystemMasterClient<InterceptedService<Channel, IdentityInterceptor>>, MasterError>
    {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", t.endpoint))
            .map_err(|e| MasterError::invalid(&t.endpoint, "bad endpoint", e))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .connect()
            .await
            .map_err(|e| MasterError::unreachable(&t.endpoint, "cannot connect", e))?;
        let interceptor = IdentityInterceptor::new(&Caller::named(&self.user), t.secret.as_deref())
            .map_err(|e| MasterError::invalid(&t.endpoint, "cluster secret", e))?;
        Ok(
            FileSystemMasterClient::with_interceptor(channel, interceptor)
                .max_decoding_message_size(alluvium_proto::MAX_MESSAGE_BYTES),
        )
    }
}

/// The master normalizes URIs (`s3://b` and `s3://b/` are one UFS).
fn same_ufs(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// A failed call. A status with a source is the client's own (the connection broke, the call
/// timed out): the master never answered. Anything else is the master's answer, even
/// `Unavailable` (its UFS may be down while it is up).
fn status(endpoint: &str, what: &str, s: tonic::Status) -> MasterError {
    use std::error::Error as _;
    let local = s.source().is_some();
    let e = alluvium_common::Error::from(s);
    let kind = if local {
        MasterErrorKind::Unreachable
    } else {
        MasterErrorKind::Rejected(e.code)
    };
    MasterError {
        endpoint: endpoint.to_string(),
        what: what.to_string(),
        kind,
        message: e.message,
    }
}

impl MasterApi for GrpcMasters {
    fn usage(&self, t: &MasterTarget) -> BoxFuture<'_, Result<MasterUsage, MasterError>> {
        let t = t.clone();
        Box::pin(async move {
            let mut c = self.client(&t).await?;
            let info = c
                .get_master_info(alluvium_proto::Empty {})
                .await
                .map_err(|s| status(&t.endpoint, "GetMasterInfo", s))?
                .into_inner();
            Ok(MasterUsage {
                live_workers: info.live_workers,
                lost_workers: info.lost_workers,
                capacity_bytes: info.capacity_bytes,
                used_bytes: info.used_bytes,
                tiers: info
                    .tiers
                    .into_iter()
                    .map(|u| TierUsageStatus {
                        alias: u.alias,
                        capacity_bytes: u.capacity_bytes,
                        used_bytes: u.used_bytes,
                    })
                    .collect(),
            })
        })
    }

    fn ensure_mount(
        &self,
        t: &MasterTarget,
        req: MountRequest,
        changed: bool,
    ) -> BoxFuture<'_, Result<u64, MasterError>> {
        let t = t.clone();
        Box::pin(async move {
            let mut c = self.client(&t).await?;
            let find = |mounts: &[alluvium_proto::MountInfo]| {
                mounts.iter().find(|m| m.path == req.path).cloned()
            };
            let table = c
                .get_mount_table(alluvium_proto::Empty {})
                .await
                .map_err(|s| status(&t.endpoint, "GetMountTable", s))?
                .into_inner();
            let wire = alluvium_proto::MountRequest {
                path: req.path.clone(),
                ufs_uri: req.ufs.clone(),
                read_only: req.read_only,
                options: req.options.clone().into_iter().collect(),
                shared: req.shared,
            };
            if let Some(m) = find(&table.mounts) {
                if same_ufs(&m.ufs_uri, &req.ufs) {
                    if changed || m.read_only != req.read_only {
                        // Options, credentials or read-only changed: in place, so the mount's
                        // files, cache and the pods using it stay.
                        c.update_mount(wire).await.map_err(|s| {
                            status(&t.endpoint, &format!("UpdateMount {}", req.path), s)
                        })?;
                    }
                    return Ok(m.mount_id);
                }
                // Another UFS: a new mount.
                c.unmount(alluvium_proto::UnmountRequest {
                    path: req.path.clone(),
                })
                .await
                .map_err(|s| status(&t.endpoint, &format!("Unmount {}", req.path), s))?;
            }
            if let Some((parent, _)) = req.path.rsplit_once('/').filter(|(p, _)| !p.is_empty()) {
                c.create_directory(alluvium_proto::CreateDirectoryRequest {
                    path: parent.to_string(),
                    recursive: true,
                    allow_exists: true,
                    ..Default::default()
                })
                .await
                .map_err(|s| status(&t.endpoint, &format!("CreateDirectory {parent}"), s))?;
            }
            c.mount(wire).await.map_err(|s| {
                status(
                    &t.endpoint,
                    &format!("Mount {} at {}", req.ufs, req.path),
                    s,
                )
            })?;
            let table = c
                .get_mount_table(alluvium_proto::Empty {})
                .await
                .map_err(|s| status(&t.endpoint, "GetMountTable", s))?
                .into_inner();
            find(&table.mounts)
                .map(|m| m.mount_id)
                .ok_or_else(|| MasterError {
                    endpoint: t.endpoint.clone(),
                    what: format!("Mount {} at {}", req.ufs, req.path),
                    kind: MasterErrorKind::Rejected(ErrorCode::Internal),
                    message: "missing from the mount table after Mount".into(),
                })
        })
    }

    fn unmount(&self, t: &MasterTarget, path: &str) -> BoxFuture<'_, Result<(), MasterError>> {
        let t = t.clone();
        let path = path.to_string();
        Box::pin(async move {
            let mut c = self.client(&t).await?;
            let table = c
                .get_mount_table(alluvium_proto::Empty {})
                .await
                .map_err(|s| status(&t.endpoint, "GetMountTable", s))?
                .into_inner();
            if !table.mounts.iter().any(|m| m.path == path) {
                return Ok(());
            }
            c.unmount(alluvium_proto::UnmountRequest { path: path.clone() })
                .await
                .map_err(|s| status(&t.endpoint, &format!("Unmount {path}"), s))?;
            Ok(())
        })
    }

    fn path_usage(
        &self,
        t: &MasterTarget,
        path: &str,
    ) -> BoxFuture<'_, Result<PathUsage, MasterError>> {
        let t = t.clone();
        let path = path.to_string();
        Box::pin(async move {
            let mut c = self.client(&t).await?;
            let mut stream = c
                .list_status(alluvium_proto::ListStatusRequest {
                    path: path.clone(),
                    recursive: true,
                    limit: USAGE_ENTRY_CAP as u64,
                    ..Default::default()
                })
                .await
                .map_err(|s| status(&t.endpoint, &format!("ListStatus {path}"), s))?
                .into_inner();
            let mut u = PathUsage::default();
            while let Some(page) = stream.next().await {
                let page =
                    page.map_err(|s| status(&t.endpoint, &format!("ListStatus {path}"), s))?;
                for f in page.items.iter().filter(|f| !f.is_folder) {
                    u.total_bytes = u.total_bytes.saturating_add(f.length);
                    let pct = u64::from(f.in_alluvium_percentage.min(100));
                    u.cached_bytes = u
                        .cached_bytes
                        .saturating_add((u128::from(f.length) * u128::from(pct) / 100) as u64);
                }
            }
            Ok(u)
        })
    }
}
