//! `Mount`: a UFS URI mounted at a namespace path of a `Cluster`, optionally preloaded into the
//! cache and exposed to job pods as a PVC.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::quantity::{SIZE_PATTERN, WHOLE_BYTES_RULE};

/// A UFS mounted into a cluster's namespace.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "alluvium.io",
    version = "v1alpha1",
    kind = "Mount",
    namespaced,
    shortname = "amount",
    category = "alluvium",
    status = "MountStatus",
    derive = "PartialEq",
    doc = "A UFS URI mounted at a namespace path of an Alluvium Cluster, optionally preloaded and exposed as a PVC.",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster"),
    printcolumn(name = "Path", type_ = "string", json_path = ".spec.path"),
    printcolumn(name = "UFS", type_ = "string", json_path = ".spec.ufs", priority = 1),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Cached", type_ = "string", json_path = ".status.cached"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MountSpec {
    /// Name of the `Cluster` in this namespace. Immutable.
    #[schemars(length(min = 1))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "cluster is immutable; create another Mount"}]))]
    pub cluster: String,
    /// Absolute namespace path (`/datasets/imagenet`). Not `/`: the root is the cluster's own.
    /// Immutable, so the operator never leaves a stale mount behind.
    #[schemars(regex(pattern = r"^(/[^/\x00]+)+$"))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "path is immutable; create another Mount"}]))]
    pub path: String,
    /// Under-storage URI: `s3://bucket/prefix`, `webhdfs://host:port/path`, `file:///data`, ...
    #[schemars(regex(pattern = r"^[a-z][a-z0-9+.-]*://.+$"))]
    pub ufs: String,
    /// A Secret in this namespace whose keys become UFS options (`access_key_id`,
    /// `secret_access_key`, ...). Never copied into status or events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
    #[serde(default)]
    pub options: MountOptions,
    /// Load every file under the mount into the cache with a distributed load job; progress is
    /// in status.
    #[serde(default)]
    pub preload: bool,
    /// A PersistentVolume and PersistentVolumeClaim for this mount, served by the Alluvium CSI
    /// driver, so job pods mount it with `claimName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc: Option<PvcSpec>,
}

/// A Secret by name, in the resource's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct SecretRef {
    #[schemars(length(min = 1))]
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MountOptions {
    /// Refuse writes through Alluvium to this mount.
    #[serde(default)]
    pub read_only: bool,
    /// How stale the namespace may get before it re-reads UFS metadata (`60s`, `5m`, `1h`;
    /// `0s` = check on every access).
    #[serde(default = "default_sync_interval")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h|d)$"))]
    pub sync_interval: String,
    /// Share this UFS with other mounts.
    #[serde(default)]
    pub shared: bool,
    /// Further UFS options (endpoint, region, ...). Keys given by the credentials Secret win.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

impl Default for MountOptions {
    fn default() -> Self {
        Self {
            read_only: false,
            sync_interval: default_sync_interval(),
            shared: false,
            extra: BTreeMap::new(),
        }
    }
}

fn default_sync_interval() -> String {
    "60s".into()
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PvcSpec {
    /// Make the PV and PVC.
    #[serde(default)]
    pub create: bool,
    /// Name of the PVC; the Mount's name when unset. The PV is named `<namespace>-<pvc name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = 200))]
    pub name: Option<String>,
    /// Capacity written on the PV and PVC. Alluvium does not enforce it: the UFS decides.
    #[serde(default = "default_capacity")]
    #[schemars(
        regex(pattern = SIZE_PATTERN),
        length(max = 64),
        extend("x-kubernetes-validations" = [{"rule": WHOLE_BYTES_RULE, "message": "must be a whole number of bytes (e.g. 1.5Gi, not 1.1Ki)"}])
    )]
    pub capacity: String,
    /// Storage class name written on the PV and PVC (binding only; no provisioning happens).
    #[serde(default = "default_storage_class")]
    pub storage_class_name: String,
}

fn default_capacity() -> String {
    "1Ti".into()
}

fn default_storage_class() -> String {
    "alluvium-static".into()
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MountPhase {
    /// Waiting for the cluster's master.
    Pending,
    /// Mounted; files are read through on demand.
    Mounted,
    /// Mounted; the preload job is running.
    Loading,
    /// Mounted and preloaded.
    Ready,
    /// The spec, a reference or the master refused the mount.
    Failed,
    /// Being unmounted.
    Terminating,
}

/// The distributed load's state.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreloadStatus {
    /// Name of the Job running `alluvium fs distributedLoad`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default)]
    pub succeeded: bool,
    /// The last attempt failed; another follows after a backoff.
    #[serde(default)]
    pub failed: bool,
    /// Attempts so far (a failed Job is replaced after 30s, 1m, 2m, ... up to 30m).
    #[serde(default)]
    pub attempts: i32,
    /// When the last attempt failed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
    /// Fingerprint of the data source preloaded (UFS and path): only a new source loads again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MountStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<MountPhase>,
    /// The master's id of this mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_id: Option<u64>,
    /// Bytes of files under the mount held by workers.
    #[serde(default)]
    pub cached_bytes: u64,
    /// Bytes of files under the mount.
    #[serde(default)]
    pub total_bytes: u64,
    /// `cached / total`, human-readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached: Option<String>,
    /// When the mount was last (re)configured on the master, or its cached/total bytes last
    /// changed (RFC 3339). Unchanged figures are not rewritten, so a Mount at rest costs the
    /// API server nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync: Option<String>,
    /// Fingerprint of what the master was last given (UFS, options, the credentials Secret's
    /// version); a different one makes the operator update the mount in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preload: Option<PreloadStatus>,
    /// Name of the PVC made for this mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
