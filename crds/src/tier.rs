//! `Tier`: one storage medium on a set of nodes. Cluster-scoped, because a hostPath and its quota
//! describe nodes, not a namespace; clusters list the tiers their workers use, fastest first.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::quantity::{NOT_ZERO_RULE, QUOTA_PATTERN, WHOLE_BYTES_RULE};

/// CEL: a MEM tier lives in a directory under `/dev/shm` (trailing slashes do not count, so
/// `/dev/shm/` itself is refused, as the operator does).
pub const MEM_UNDER_DEV_SHM_RULE: &str =
    "self.medium != 'MEM' || self.hostPath.matches('^/dev/shm/+[^/]')";
/// CEL: a hostPath names something below `/` (`/` and `//` do not).
pub const HOST_PATH_NOT_ROOT_RULE: &str = "self.matches('[^/]')";
/// CEL: no `.` or `..` component, which would point the tier somewhere else than it says.
pub const HOST_PATH_NO_DOTS_RULE: &str = "!self.matches('(^|/)[.][.]?(/|$)')";

/// The storage medium of a tier. The order of a cluster's tiers decides placement; the medium
/// decides how the operator mounts it (MEM is tmpfs under `/dev/shm` and counts against the
/// worker's memory limit).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Medium {
    #[serde(rename = "MEM")]
    Mem,
    #[serde(rename = "SSD")]
    Ssd,
    #[serde(rename = "HDD")]
    Hdd,
}

impl Medium {
    /// The tier alias the worker's config uses.
    pub fn alias(self) -> &'static str {
        match self {
            Medium::Mem => "MEM",
            Medium::Ssd => "SSD",
            Medium::Hdd => "HDD",
        }
    }
}

/// A storage medium on nodes: where the worker keeps blocks of this tier and how much.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "alluvium.io",
    version = "v1alpha1",
    kind = "Tier",
    shortname = "atier",
    category = "alluvium",
    status = "TierStatus",
    derive = "PartialEq",
    doc = "A storage medium (MEM, SSD or HDD) on a set of nodes: hostPath, quota and watermarks.",
    printcolumn(name = "Medium", type_ = "string", json_path = ".spec.medium"),
    printcolumn(name = "Quota", type_ = "string", json_path = ".spec.quota"),
    printcolumn(name = "Path", type_ = "string", json_path = ".spec.hostPath"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
// The rules repeat what the operator's `validate_tier` refuses, so `kubectl apply` refuses it at
// once instead of the Tier turning Invalid later; `crds/tests/tier_schema.rs` keeps them paired.
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.lowWatermark < self.highWatermark", "message": "lowWatermark must be below highWatermark"},
    {"rule": "self.lowWatermark > 0.0", "message": "lowWatermark must be above 0"},
    {"rule": MEM_UNDER_DEV_SHM_RULE, "message": "a MEM tier's hostPath must be a directory under /dev/shm/ (tmpfs), not /dev/shm itself"}
]))]
pub struct TierSpec {
    /// MEM, SSD or HDD.
    pub medium: Medium,
    /// Directory on each node holding this tier's blocks. A MEM tier must live under `/dev/shm`
    /// (tmpfs), so its pages are memory, not disk.
    #[schemars(
        regex(pattern = r"^/[^\x00]*$"),
        length(min = 2, max = 4096),
        extend("x-kubernetes-validations" = [
            {"rule": HOST_PATH_NOT_ROOT_RULE, "message": "hostPath must be a directory below /, not /"},
            {"rule": HOST_PATH_NO_DOTS_RULE, "message": "hostPath must not have '.' or '..' components"}
        ])
    )]
    pub host_path: String,
    /// Bytes this tier may hold on each node, as a Kubernetes quantity (`8Gi` = 8 * 2^30, `8G` =
    /// 8 * 10^9). The unit is required and the quota must come to whole bytes.
    #[schemars(
        regex(pattern = QUOTA_PATTERN),
        length(min = 1, max = 64),
        extend("x-kubernetes-validations" = [
            {"rule": WHOLE_BYTES_RULE, "message": "quota must be a whole number of bytes (e.g. 1.5Gi, not 1.1Ki)"},
            {"rule": NOT_ZERO_RULE, "message": "quota must be more than 0"}
        ])
    )]
    pub quota: String,
    /// Usage share above which the worker starts evicting from this tier.
    #[serde(default = "default_high")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub high_watermark: f64,
    /// Usage share eviction brings the tier back down to.
    #[serde(default = "default_low")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub low_watermark: f64,
    /// Nodes that have this medium. Workers of a cluster run on nodes matching every tier's
    /// selector and the cluster's own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
}

fn default_high() -> f64 {
    0.95
}
fn default_low() -> f64 {
    0.7
}

/// Whether a tier's spec is usable.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TierPhase {
    Ready,
    Invalid,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TierStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<TierPhase>,
    /// The quota in bytes, as the operator parsed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// While the Tier's deletion waits: the Clusters (`namespace/name`) naming it in
    /// `spec.workers.tiers`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub used_by: Vec<String>,
}
