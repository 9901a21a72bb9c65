//! `Tier`: one storage medium on a set of nodes. Cluster-scoped, because a hostPath and its quota
//! describe nodes, not a namespace; clusters list the tiers their workers use, fastest first.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.lowWatermark < self.highWatermark", "message": "lowWatermark must be below highWatermark"},
    {"rule": "self.medium != 'MEM' || self.hostPath.startsWith('/dev/shm/')", "message": "a MEM tier's hostPath must be under /dev/shm/ (tmpfs)"}
]))]
pub struct TierSpec {
    /// MEM, SSD or HDD.
    pub medium: Medium,
    /// Directory on each node holding this tier's blocks. A MEM tier must live under `/dev/shm`
    /// (tmpfs), so its pages are memory, not disk.
    #[schemars(regex(pattern = r"^/[^\x00]*$"), length(min = 2, max = 4096))]
    pub host_path: String,
    /// Bytes this tier may hold on each node, as a Kubernetes quantity (`8Gi` = 8 * 2^30, `8G` =
    /// 8 * 10^9).
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$"))]
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
}
