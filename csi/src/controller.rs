//! The Controller service: a directory per dynamically provisioned volume.
//!
//! `CreateVolume(name)` makes `<basePath>/<name>` on the master named by the StorageClass and
//! records the requested capacity in `<basePath>/.alluvium-csi/<name>`, a small JSON file. The
//! master has no per-directory quota or extended attributes, so that record is the volume's
//! quota: it makes CreateVolume idempotent (same name and a compatible capacity answers the same
//! volume; an incompatible one is ALREADY_EXISTS), travels to nodes in the volume context
//! (`capacityBytes`), and is what NodeGetVolumeStats reports as the volume's total. It is not
//! enforced on writes.
//!
//! The master connection carries the cluster secret of the request's `secrets` map when it has
//! one (the StorageClass's provisioner secret, see [`crate::secrets`]), else the plugin's own.
//!
//! The record is claimed first (creating a file is atomic on the master and fails if it exists),
//! then the directory is made; deletion goes the other way round. A crash between two steps
//! leaves a state the next call of either RPC completes.

use std::sync::Arc;
use std::time::Duration;

use alluvium_client::{
    CreateDirectoryOptions, CreateFileOptions, DeleteOptions, FileSystem, SetAttributeOptions,
};
use alluvium_common::path::{join, name, parent};
use alluvium_common::{Error, ErrorCode};
use alluvium_proto::csi::v1::controller_server::Controller;
use alluvium_proto::csi::v1::controller_service_capability::rpc::Type as RpcType;
use alluvium_proto::csi::v1::controller_service_capability::{self, Rpc};
use alluvium_proto::csi::v1::validate_volume_capabilities_response::Confirmed;
use alluvium_proto::csi::v1::{
    CapacityRange, ControllerGetCapabilitiesRequest, ControllerGetCapabilitiesResponse,
    ControllerServiceCapability, CreateVolumeRequest, CreateVolumeResponse, DeleteVolumeRequest,
    DeleteVolumeResponse, ValidateVolumeCapabilitiesRequest, ValidateVolumeCapabilitiesResponse,
    Volume, VolumeCapability,
};
use alluvium_proto::WriteType;
use serde::{Deserialize, Serialize};
use tonic::{Request, Response, Status};

use crate::masters::Masters;
use crate::metrics::CsiMetrics;
use crate::params::{self, AccessOptions, ProvisionParams, VolumeId, VolumeSpec};
use crate::secrets::ClusterSecret;
use crate::{invalid, status};

/// Folder of the capacity records, beside the volumes under `basePath`.
pub const RECORD_DIR: &str = ".alluvium-csi";

/// An unfinished record younger than this may belong to a CreateVolume still running elsewhere.
const STALE_RECORD: Duration = Duration::from_secs(30);

/// What `<basePath>/.alluvium-csi/<name>` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub name: String,
    pub path: String,
    pub capacity_bytes: u64,
    #[serde(default)]
    pub read_type: Option<String>,
    #[serde(default)]
    pub write_type: Option<String>,
    #[serde(default)]
    pub mount_options: Vec<String>,
    pub created_ms: i64,
}

pub struct ControllerService {
    masters: Arc<Masters>,
    metrics: Arc<CsiMetrics>,
    /// Create and Delete run one at a time: a record being written is never taken for a stale
    /// one by a concurrent call for the same name.
    lock: tokio::sync::Mutex<()>,
}

impl ControllerService {
    pub(crate) fn new(masters: Arc<Masters>, metrics: Arc<CsiMetrics>) -> Self {
        Self {
            masters,
            metrics,
            lock: tokio::sync::Mutex::new(()),
        }
    }
}

/// The record file of the volume at `path`.
pub fn record_path(volume_path: &str) -> String {
    let base = parent(volume_path).unwrap_or("/");
    join(&join(base, RECORD_DIR), name(volume_path))
}

/// The capacity CreateVolume records for a range: the required size, else the limit, else 0
/// (unknown). INVALID_ARGUMENT for negative or inverted ranges.
fn capacity_of(range: Option<&CapacityRange>) -> Result<(u64, u64, u64), Status> {
    let Some(r) = range else {
        return Ok((0, 0, 0));
    };
    let required = u64::try_from(r.required_bytes)
        .map_err(|_| invalid("capacity_range.required_bytes must not be negative"))?;
    let limit = u64::try_from(r.limit_bytes)
        .map_err(|_| invalid("capacity_range.limit_bytes must not be negative"))?;
    if limit > 0 && required > limit {
        return Err(Status::out_of_range(format!(
            "capacity_range: required_bytes {required} exceeds limit_bytes {limit}"
        )));
    }
    let chosen = if required > 0 { required } else { limit };
    Ok((chosen, required, limit))
}

fn fits(capacity: u64, required: u64, limit: u64) -> bool {
    capacity >= required && (limit == 0 || capacity <= limit)
}

fn check_capabilities(caps: &[VolumeCapability]) -> Result<(), Status> {
    if caps.is_empty() {
        return Err(invalid("volume_capabilities is required"));
    }
    for c in caps {
        if let Some(why) = params::unsupported(c) {
            return Err(invalid(why));
        }
    }
    Ok(())
}

async fn read_record(fs: &FileSystem, path: &str) -> Result<Option<VolumeRecord>, Error> {
    let info = match fs.get_status(path).await {
        Ok(i) => i,
        Err(e) if e.code == ErrorCode::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !info.completed {
        let age_ms = alluvium_common::time::now_ms() - info.creation_time_ms;
        if age_ms < STALE_RECORD.as_millis() as i64 {
            return Err(Error::new(
                ErrorCode::FailedPrecondition,
                format!("{path}: another CreateVolume is writing this record"),
            ));
        }
        tracing::warn!(record = path, "csi: removing an unfinished volume record");
        fs.delete(path, DeleteOptions::default()).await?;
        return Ok(None);
    }
    let mut stream = fs.open_file(path, Default::default()).await?;
    let mut body = Vec::with_capacity(info.length as usize);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| Error::internal(format!("{path}: not a volume record ({e})")))
}

/// Creates the record; `Ok(false)` when one already exists.
async fn write_record(fs: &FileSystem, path: &str, rec: &VolumeRecord) -> Result<bool, Error> {
    let opts = CreateFileOptions {
        // Durable with the directory it describes: the UFS keeps it across cache eviction.
        write_type: WriteType::CacheThrough,
        recursive: true,
        overwrite: false,
        ..Default::default()
    };
    let mut out = match fs.create_file(path, opts).await {
        Ok(o) => o,
        Err(e) if e.code == ErrorCode::AlreadyExists => return Ok(false),
        Err(e) => return Err(e),
    };
    let body = serde_json::to_vec_pretty(rec)
        .map_err(|e| Error::internal(format!("cannot encode a volume record: {e}")))?;
    out.write(&body).await?;
    out.close().await?;
    Ok(true)
}

fn map_err(what: &str, e: Error) -> Status {
    // A record being written elsewhere is the spec's "operation pending for volume".
    if e.code == ErrorCode::FailedPrecondition {
        return Status::aborted(format!("{what}: {}", e.message));
    }
    status(e.context(what))
}

impl ControllerService {
    async fn create(&self, req: CreateVolumeRequest) -> Result<CreateVolumeResponse, Status> {
        params::check_volume_name(&req.name)?;
        check_capabilities(&req.volume_capabilities)?;
        if req.volume_content_source.is_some() {
            return Err(invalid(
                "volume_content_source is not supported (no snapshots or clones)",
            ));
        }
        let (capacity, required, limit) = capacity_of(req.capacity_range.as_ref())?;
        let p = ProvisionParams::parse(&req.parameters)?;
        let secret = ClusterSecret::from_secrets(&req.secrets)?;
        let master = p
            .master
            .clone()
            .unwrap_or_else(|| self.masters.default_master().to_string());
        let path = join(&p.base_path, &req.name);
        let record = record_path(&path);
        let _guard = self.lock.lock().await;
        let fs = self
            .masters
            .get(&master, secret.as_ref())
            .await
            .map_err(status)?;

        let fresh = VolumeRecord {
            name: req.name.clone(),
            path: path.clone(),
            capacity_bytes: capacity,
            read_type: p.access.read_type.clone(),
            write_type: p.access.write_type.clone(),
            mount_options: p.access.mount_options.clone(),
            created_ms: alluvium_common::time::now_ms(),
        };
        let rec = match read_record(&fs, &record)
            .await
            .map_err(|e| map_err("CreateVolume", e))?
        {
            Some(existing) => existing,
            None => {
                if write_record(&fs, &record, &fresh)
                    .await
                    .map_err(|e| map_err("CreateVolume: writing the volume record", e))?
                {
                    fresh
                } else {
                    read_record(&fs, &record)
                        .await
                        .map_err(|e| map_err("CreateVolume", e))?
                        .ok_or_else(|| Status::aborted("volume record vanished; retry"))?
                }
            }
        };
        if !fits(rec.capacity_bytes, required, limit) {
            return Err(Status::already_exists(format!(
                "volume {} exists with capacity {} bytes, outside the requested range [{required}, {}]",
                req.name,
                rec.capacity_bytes,
                if limit == 0 { "∞".to_string() } else { limit.to_string() }
            )));
        }
        fs.create_directory(
            &path,
            CreateDirectoryOptions {
                recursive: true,
                allow_exists: true,
                ..CreateDirectoryOptions::from_config(fs.config())
            },
        )
        .await
        .map_err(|e| map_err("CreateVolume: making the volume directory", e))?;
        // Exact bits (the client's umask applied to the line above): pods of any uid write.
        fs.set_attribute(
            &path,
            SetAttributeOptions {
                mode: Some(p.directory_mode),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| map_err("CreateVolume: setting the volume directory's mode", e))?;
        let id = VolumeId {
            master: master.clone(),
            path: path.clone(),
        };
        let spec = VolumeSpec {
            master,
            path,
            access: AccessOptions {
                read_type: rec.read_type.clone(),
                write_type: rec.write_type.clone(),
                mount_options: rec.mount_options.clone(),
            },
            capacity_bytes: rec.capacity_bytes,
        };
        tracing::info!(volume_id = %id.encode(), capacity = rec.capacity_bytes, "csi: volume ready");
        Ok(CreateVolumeResponse {
            volume: Some(Volume {
                capacity_bytes: i64::try_from(rec.capacity_bytes).unwrap_or(i64::MAX),
                volume_id: id.encode(),
                volume_context: spec.context(),
                content_source: None,
                accessible_topology: Vec::new(),
            }),
        })
    }

    async fn delete(&self, req: DeleteVolumeRequest) -> Result<DeleteVolumeResponse, Status> {
        if req.volume_id.is_empty() {
            return Err(invalid("volume_id is required"));
        }
        // Ids this controller never made name nothing it may delete: already gone, per spec.
        let Some(id) = VolumeId::parse(&req.volume_id) else {
            return Ok(DeleteVolumeResponse {});
        };
        let secret = ClusterSecret::from_secrets(&req.secrets)?;
        let _guard = self.lock.lock().await;
        let fs = self
            .masters
            .get(&id.master, secret.as_ref())
            .await
            .map_err(status)?;
        let record = record_path(&id.path);
        if !fs
            .exists(&record)
            .await
            .map_err(|e| map_err("DeleteVolume", e))?
        {
            // No record: deleted before, or not a provisioned volume. Either way, nothing to do.
            return Ok(DeleteVolumeResponse {});
        }
        let recursive = DeleteOptions {
            recursive: true,
            alluvium_only: false,
        };
        match fs.delete(&id.path, recursive).await {
            Ok(()) => {}
            Err(e) if e.code == ErrorCode::NotFound => {}
            Err(e) => return Err(map_err("DeleteVolume: removing the volume directory", e)),
        }
        match fs.delete(&record, DeleteOptions::default()).await {
            Ok(()) => {}
            Err(e) if e.code == ErrorCode::NotFound => {}
            Err(e) => return Err(map_err("DeleteVolume: removing the volume record", e)),
        }
        tracing::info!(volume_id = %req.volume_id, "csi: volume deleted");
        Ok(DeleteVolumeResponse {})
    }

    async fn validate(
        &self,
        req: ValidateVolumeCapabilitiesRequest,
    ) -> Result<ValidateVolumeCapabilitiesResponse, Status> {
        if req.volume_id.is_empty() {
            return Err(invalid("volume_id is required"));
        }
        if req.volume_capabilities.is_empty() {
            return Err(invalid("volume_capabilities is required"));
        }
        let secret = ClusterSecret::from_secrets(&req.secrets)?;
        // Provisioned volumes exist while their record does; static ones while their path does.
        let (master, probe_path) = match VolumeId::parse(&req.volume_id) {
            Some(id) => (id.master.clone(), record_path(&id.path)),
            None => {
                let spec = VolumeSpec::resolve(
                    &req.volume_id,
                    &req.volume_context,
                    self.masters.default_master(),
                )
                .map_err(|_| Status::not_found(format!("volume {} is unknown", req.volume_id)))?;
                (spec.master, spec.path)
            }
        };
        let fs = self
            .masters
            .get(&master, secret.as_ref())
            .await
            .map_err(status)?;
        if !fs
            .exists(&probe_path)
            .await
            .map_err(|e| map_err("ValidateVolumeCapabilities", e))?
        {
            return Err(Status::not_found(format!(
                "volume {} does not exist",
                req.volume_id
            )));
        }
        if let Some(why) = req.volume_capabilities.iter().find_map(params::unsupported) {
            return Ok(ValidateVolumeCapabilitiesResponse {
                confirmed: None,
                message: why,
            });
        }
        Ok(ValidateVolumeCapabilitiesResponse {
            confirmed: Some(Confirmed {
                volume_context: req.volume_context,
                volume_capabilities: req.volume_capabilities,
                parameters: req.parameters,
            }),
            message: String::new(),
        })
    }
}

#[tonic::async_trait]
impl Controller for ControllerService {
    async fn create_volume(
        &self,
        req: Request<CreateVolumeRequest>,
    ) -> Result<Response<CreateVolumeResponse>, Status> {
        self.metrics
            .call("CreateVolume", self.create(req.into_inner()))
            .await
    }

    async fn delete_volume(
        &self,
        req: Request<DeleteVolumeRequest>,
    ) -> Result<Response<DeleteVolumeResponse>, Status> {
        self.metrics
            .call("DeleteVolume", self.delete(req.into_inner()))
            .await
    }

    async fn validate_volume_capabilities(
        &self,
        req: Request<ValidateVolumeCapabilitiesRequest>,
    ) -> Result<Response<ValidateVolumeCapabilitiesResponse>, Status> {
        self.metrics
            .call(
                "ValidateVolumeCapabilities",
                self.validate(req.into_inner()),
            )
            .await
    }

    async fn controller_get_capabilities(
        &self,
        _req: Request<ControllerGetCapabilitiesRequest>,
    ) -> Result<Response<ControllerGetCapabilitiesResponse>, Status> {
        self.metrics
            .call("ControllerGetCapabilities", async {
                Ok(ControllerGetCapabilitiesResponse {
                    capabilities: vec![ControllerServiceCapability {
                        r#type: Some(controller_service_capability::Type::Rpc(Rpc {
                            r#type: RpcType::CreateDeleteVolume as i32,
                        })),
                    }],
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_paths() {
        assert_eq!(record_path("/pvc/pvc-1"), "/pvc/.alluvium-csi/pvc-1");
        assert_eq!(record_path("/v"), "/.alluvium-csi/v");
    }

    #[test]
    fn capacities() {
        let r = |required_bytes, limit_bytes| CapacityRange {
            required_bytes,
            limit_bytes,
        };
        assert_eq!(capacity_of(None).unwrap(), (0, 0, 0));
        assert_eq!(capacity_of(Some(&r(10, 0))).unwrap(), (10, 10, 0));
        assert_eq!(capacity_of(Some(&r(0, 20))).unwrap(), (20, 0, 20));
        assert_eq!(
            capacity_of(Some(&r(30, 20))).unwrap_err().code(),
            tonic::Code::OutOfRange
        );
        assert_eq!(
            capacity_of(Some(&r(-1, 0))).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        assert!(fits(10, 10, 0));
        assert!(fits(10, 5, 10));
        assert!(!fits(10, 20, 0));
        assert!(!fits(10, 0, 5));
    }
}
