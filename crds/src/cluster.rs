//! `Cluster`: one Alluvium deployment — a master (StatefulSet with a journal volume), workers (a
//! DaemonSet over the ordered `Tier`s), and an optional S3/WebHDFS proxy.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::quantity::{SIZE_PATTERN, WHOLE_BYTES_RULE};

/// A deployment of Alluvium: master, workers over tiers, proxy.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "alluvium.io",
    version = "v1alpha1",
    kind = "Cluster",
    namespaced,
    shortname = "acluster",
    category = "alluvium",
    status = "ClusterStatus",
    derive = "PartialEq",
    doc = "An Alluvium cluster: master, workers over ordered Tiers, and an optional S3/WebHDFS proxy.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Masters",
        type_ = "integer",
        json_path = ".status.readyMasters"
    ),
    printcolumn(
        name = "Workers",
        type_ = "integer",
        json_path = ".status.readyWorkers"
    ),
    printcolumn(name = "Capacity", type_ = "string", json_path = ".status.capacity"),
    printcolumn(name = "Used", type_ = "string", json_path = ".status.used"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// Container image holding the `alluvium` binary.
    #[serde(default = "default_image")]
    #[schemars(length(min = 1))]
    pub image: String,
    #[serde(default)]
    pub image_pull_policy: PullPolicy,
    /// The under-storage mounted at `/`: storage every master and worker reaches (an S3 bucket,
    /// a WebHDFS cluster, ...), never a path inside one pod. Files written with a persisting
    /// write type and the CSI driver's provisioned volumes land here.
    pub root_ufs: RootUfsSpec,
    #[serde(default)]
    pub master: MasterSpec,
    pub workers: WorkersSpec,
    #[serde(default)]
    pub proxy: ProxySpec,
    #[serde(default)]
    pub security: SecuritySpec,
    /// Config overrides: dotted keys of the config file (`master.sync_interval`,
    /// `worker.eviction_policy`, ...) to TOML values (`"30s"`, `"LRFU"`, `"true"`). The operator
    /// refuses keys the config does not have.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

/// The root under-storage of a cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RootUfsSpec {
    /// `s3://bucket/prefix`, `webhdfs://host:port/path`, ... A `file://` URI is refused: a
    /// directory inside the master's pod is not shared with the workers.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9+.-]*://.+$"))]
    pub uri: String,
    /// A Secret in the cluster's namespace whose keys become UFS options (`access_key_id`,
    /// `secret_access_key`, ...); given to the master only, as environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<crate::mount::SecretRef>,
    /// Further UFS options (`endpoint`, `region`, ...). Secret values belong in the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// The image the chart's version ships.
pub fn default_image() -> String {
    format!("alluvium/alluvium:{}", env!("CARGO_PKG_VERSION"))
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum PullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// CPU and memory of one container, as Kubernetes quantities.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceList {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?|[0-9]+m)$"))]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = SIZE_PATTERN),
        length(max = 64),
        extend("x-kubernetes-validations" = [{"rule": WHOLE_BYTES_RULE, "message": "must be a whole number of bytes (e.g. 1.5Gi, not 1.1Ki)"}])
    )]
    pub memory: Option<String>,
}

/// Requests and limits of a container. For workers, memory is the process's own needs: the
/// operator adds the MEM tiers' quotas on top.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    #[serde(default)]
    pub requests: ResourceList,
    #[serde(default)]
    pub limits: ResourceList,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MasterSpec {
    /// Number of master pods. The master keeps its metadata in one RocksDB journal, so only 1 is
    /// supported today; the operator refuses more rather than run two writers.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 1))]
    pub replicas: i32,
    #[serde(default)]
    pub resources: Resources,
    /// The journal's claim. Immutable: a StatefulSet cannot change its volume claim templates.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "master.journal is immutable (StatefulSet volume claim templates cannot change)"}]))]
    pub journal: JournalSpec,
    /// Node selector of the master pod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
}

impl Default for MasterSpec {
    fn default() -> Self {
        Self {
            replicas: 1,
            resources: Resources::default(),
            journal: JournalSpec::default(),
            node_selector: BTreeMap::new(),
        }
    }
}

fn one() -> i32 {
    1
}

/// The master's metadata volume (a PVC made from the StatefulSet's claim template).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JournalSpec {
    /// Size of the claim.
    #[serde(default = "default_journal_size")]
    #[schemars(
        regex(pattern = SIZE_PATTERN),
        length(max = 64),
        extend("x-kubernetes-validations" = [{"rule": WHOLE_BYTES_RULE, "message": "must be a whole number of bytes (e.g. 1.5Gi, not 1.1Ki)"}])
    )]
    pub size: String,
    /// Storage class of the claim; the cluster's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

impl Default for JournalSpec {
    fn default() -> Self {
        Self {
            size: default_journal_size(),
            storage_class_name: None,
        }
    }
}

fn default_journal_size() -> String {
    "10Gi".into()
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkersSpec {
    /// Names of `Tier` resources, fastest first (e.g. a MEM tier, then an SSD tier). At most one
    /// tier per medium.
    #[schemars(length(min = 1, max = 3))]
    pub tiers: Vec<String>,
    /// Extra node selector of the worker pods (merged with each tier's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// The worker process's own needs; MEM tier quotas are added to the memory request and limit.
    #[serde(default)]
    pub resources: Resources,
    /// Largest memory limit a worker pod may have (e.g. what the nodes can give). A spec whose
    /// MEM quotas plus process memory exceed it is refused instead of being OOM-killed later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = SIZE_PATTERN),
        length(max = 64),
        extend("x-kubernetes-validations" = [{"rule": WHOLE_BYTES_RULE, "message": "must be a whole number of bytes (e.g. 1.5Gi, not 1.1Ki)"}])
    )]
    pub max_memory: Option<String>,
    /// Host ports of the workers (they use the node's network). Two Clusters whose workers
    /// share nodes need different ports.
    #[serde(default)]
    pub ports: WorkerPorts,
}

/// The ports a worker listens on, on its node's addresses.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerPorts {
    /// Block data and control (gRPC).
    #[serde(default = "default_worker_rpc_port")]
    #[schemars(range(min = 1024, max = 65535))]
    pub rpc: i32,
    /// Web page and `/metrics`.
    #[serde(default = "default_worker_web_port")]
    #[schemars(range(min = 1024, max = 65535))]
    pub web: i32,
}

impl Default for WorkerPorts {
    fn default() -> Self {
        Self {
            rpc: default_worker_rpc_port(),
            web: default_worker_web_port(),
        }
    }
}

fn default_worker_rpc_port() -> i32 {
    29999
}

fn default_worker_web_port() -> i32 {
    30000
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxySpec {
    /// Serve the S3 API (port 39999).
    #[serde(default = "yes")]
    pub s3: bool,
    /// Serve the WebHDFS REST API (port 9870).
    #[serde(default = "yes")]
    pub webhdfs: bool,
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,
    #[serde(default)]
    pub resources: Resources,
}

impl Default for ProxySpec {
    fn default() -> Self {
        Self {
            s3: true,
            webhdfs: true,
            replicas: 1,
            resources: Resources::default(),
        }
    }
}

impl ProxySpec {
    /// The proxy runs when it serves at least one API on at least one replica.
    pub fn enabled(&self) -> bool {
        (self.s3 || self.webhdfs) && self.replicas > 0
    }
}

fn yes() -> bool {
    true
}

/// A key of a Secret in the cluster's namespace. For the cluster secret the key must be
/// `clusterSecret`: the CSI driver receives the whole Secret from the kubelet and reads that key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    #[schemars(length(min = 1))]
    pub name: String,
    #[schemars(length(min = 1))]
    pub key: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecuritySpec {
    /// Shared secret every gRPC call inside the cluster must carry (key `clusterSecret`). When
    /// unset, the operator makes one: the Secret `<cluster>-cluster-secret`, owned by the Cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_secret_ref: Option<SecretKeyRef>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ClusterPhase {
    /// Objects applied, pods not ready yet.
    Pending,
    /// Master and every worker ready.
    Running,
    /// Some pods not ready, or the master unreachable.
    Degraded,
    /// The spec or a reference is invalid; nothing was applied.
    Failed,
}

/// Capacity and usage of one tier, summed over live workers, as the master reports it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TierUsageStatus {
    pub alias: String,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ClusterPhase>,
    /// `host:port` of the master's gRPC service, for clients in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_endpoint: Option<String>,
    #[serde(default)]
    pub ready_masters: i32,
    #[serde(default)]
    pub ready_workers: i32,
    #[serde(default)]
    pub desired_workers: i32,
    #[serde(default)]
    pub live_workers: u32,
    /// Total capacity over all tiers, human-readable (`12.0GiB`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<String>,
    /// Total usage over all tiers, human-readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<TierUsageStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
