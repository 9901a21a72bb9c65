//! Validation: turns a `Cluster` (with the `Tier`s it names) or a `Mount` into a checked value
//! that the builders can use without re-checking anything. Every refusal names the field and the
//! reason; nothing is built from a spec that fails here.

use std::collections::BTreeMap;

use alluvium_crds::quantity::{format_bytes, parse_quota, parse_size};
use alluvium_crds::{
    Cluster, Medium, Mount, PullPolicy, Resources, SecretKeyRef, Tier, WorkerPorts,
};
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Memory the worker process itself needs when the spec does not say (request, limit).
pub const DEFAULT_WORKER_PROCESS_MEMORY: (u64, u64) = (512 << 20, 1 << 30);

/// Why a spec cannot be used: a `reason` for the status condition and a one-line message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub reason: &'static str,
    pub message: String,
}

impl Invalid {
    pub(crate) fn spec_msg(message: impl Into<String>) -> Self {
        Self::spec(message)
    }

    fn spec(message: impl Into<String>) -> Self {
        Self {
            reason: "InvalidSpec",
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

/// A tier as the worker will use it.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidTier {
    pub name: String,
    pub medium: Medium,
    pub host_path: String,
    pub quota_bytes: u64,
    pub high_watermark: f64,
    pub low_watermark: f64,
}

/// A cluster whose spec is usable: every builder takes this.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedCluster {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub image: String,
    pub pull_policy: PullPolicy,
    pub master_resources: ResourceRequirements,
    pub master_node_selector: BTreeMap<String, String>,
    pub journal_size: String,
    pub journal_storage_class: Option<String>,
    pub tiers: Vec<ValidTier>,
    pub worker_node_selector: BTreeMap<String, String>,
    pub worker_resources: ResourceRequirements,
    /// Bytes of the worker's memory limit: MEM quotas plus the process's own limit.
    pub worker_memory_limit: u64,
    pub worker_ports: WorkerPorts,
    pub proxy: Option<ValidProxy>,
    /// The cluster secret: the one the spec names, or the operator's own
    /// (`<cluster>-cluster-secret`, [`ValidatedCluster::managed_secret`]).
    pub cluster_secret: SecretKeyRef,
    pub managed_secret: bool,
    /// Secret whose keys become root UFS options (master only).
    pub root_ufs_secret: Option<String>,
    /// The config file (TOML) every component reads.
    pub config_toml: String,
}

/// The root UFS as the master's config carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct RootUfs<'a> {
    pub uri: &'a str,
    pub options: &'a BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValidProxy {
    pub s3: bool,
    pub webhdfs: bool,
    pub replicas: i32,
    pub resources: ResourceRequirements,
}

/// Checks a tier on its own (what the `Tier` controller reports in status). The Tier CRD's schema
/// refuses the same things where it can (see `crds/src/tier.rs`), so most of these only fire for
/// objects written before that schema was installed.
pub fn validate_tier(tier: &Tier) -> Result<ValidTier, Invalid> {
    let name = tier.metadata.name.clone().unwrap_or_default();
    let s = &tier.spec;
    // A unit is required and fractions of a byte are refused: a bare `8` or `0.5` is a mistake,
    // not an 8- or 1-byte tier to report Ready.
    let quota_bytes =
        parse_quota(&format!("tier {name}: quota"), &s.quota).map_err(Invalid::spec)?;
    if quota_bytes == 0 {
        return Err(Invalid::spec(format!(
            "tier {name}: quota must be more than 0"
        )));
    }
    if !(0.0 < s.low_watermark && s.low_watermark < s.high_watermark && s.high_watermark <= 1.0) {
        return Err(Invalid::spec(format!(
            "tier {name}: watermarks must satisfy 0 < low ({}) < high ({}) <= 1",
            s.low_watermark, s.high_watermark
        )));
    }
    let path = s.host_path.trim_end_matches('/');
    // `.` and `..` components would make the tier live elsewhere than it says (`/dev/shm/.` is
    // `/dev/shm` itself).
    if !path.starts_with('/') || path.len() < 2 || path.split('/').any(|c| c == ".." || c == ".") {
        return Err(Invalid::spec(format!(
            "tier {name}: hostPath '{}' must be an absolute path without '.' or '..' and not '/'",
            s.host_path
        )));
    }
    if s.medium == Medium::Mem && !path.starts_with("/dev/shm/") {
        return Err(Invalid::spec(format!(
            "tier {name}: a MEM tier's hostPath must be under /dev/shm (tmpfs), not '{}'",
            s.host_path
        )));
    }
    Ok(ValidTier {
        name,
        medium: s.medium,
        host_path: path.to_string(),
        quota_bytes,
        high_watermark: s.high_watermark,
        low_watermark: s.low_watermark,
    })
}

fn medium_rank(m: Medium) -> u8 {
    match m {
        Medium::Mem => 0,
        Medium::Ssd => 1,
        Medium::Hdd => 2,
    }
}

/// Parsed requests/limits; `memory_extra` bytes are added to both memory figures.
fn requirements(
    field: &str,
    r: &Resources,
    default_memory: Option<(u64, u64)>,
    memory_extra: u64,
) -> Result<(ResourceRequirements, u64), Invalid> {
    let mut requests = BTreeMap::new();
    let mut limits = BTreeMap::new();
    if let Some(cpu) = &r.requests.cpu {
        requests.insert("cpu".to_string(), Quantity(cpu.clone()));
    }
    if let Some(cpu) = &r.limits.cpu {
        limits.insert("cpu".to_string(), Quantity(cpu.clone()));
    }
    let parse = |f: &str, q: &Option<String>| -> Result<Option<u64>, Invalid> {
        q.as_deref()
            .map(|q| parse_size(&format!("{field}.{f}"), q).map_err(Invalid::spec))
            .transpose()
    };
    let mut req = parse("requests.memory", &r.requests.memory)?;
    let mut lim = parse("limits.memory", &r.limits.memory)?;
    if let Some((dreq, dlim)) = default_memory {
        if req.is_none() && lim.is_none() {
            req = Some(dreq);
            lim = Some(dlim);
        } else if lim.is_none() {
            lim = req.map(|r| r.max(dlim));
        } else if req.is_none() {
            req = lim.map(|l| l.min(dreq));
        }
    }
    if let (Some(rq), Some(l)) = (req, lim) {
        if rq > l {
            return Err(Invalid::spec(format!(
                "{field}: memory request {} is above the limit {}",
                format_bytes(rq),
                format_bytes(l)
            )));
        }
    }
    let overflow = || Invalid::spec(format!("{field}: memory sizes overflow"));
    let req = req
        .map(|v| v.checked_add(memory_extra).ok_or_else(overflow))
        .transpose()?;
    let lim = lim
        .map(|v| v.checked_add(memory_extra).ok_or_else(overflow))
        .transpose()?;
    if let Some(v) = req {
        requests.insert("memory".to_string(), Quantity(format_bytes(v)));
    }
    if let Some(v) = lim {
        limits.insert("memory".to_string(), Quantity(format_bytes(v)));
    }
    let rr = ResourceRequirements {
        requests: (!requests.is_empty()).then_some(requests),
        limits: (!limits.is_empty()).then_some(limits),
        ..Default::default()
    };
    Ok((rr, lim.unwrap_or(0)))
}

/// Checks a cluster against the tiers found (by name). `tiers` may miss some names: that is a
/// refusal with reason `TierNotFound`.
pub fn validate_cluster(
    cluster: &Cluster,
    tiers: &BTreeMap<String, Tier>,
) -> Result<ValidatedCluster, Invalid> {
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let namespace = cluster.metadata.namespace.clone().unwrap_or_default();
    let s = &cluster.spec;
    if name.is_empty() || namespace.is_empty() {
        return Err(Invalid::spec("the cluster has no name or namespace"));
    }
    // Object names like `<name>-master-headless` must stay DNS labels (63 characters).
    if name.len() > 40 {
        return Err(Invalid::spec(format!(
            "cluster name '{name}' is longer than 40 characters (its Service names would not be DNS labels)"
        )));
    }
    if s.image.trim().is_empty() {
        return Err(Invalid::spec("image is empty"));
    }
    if s.master.replicas != 1 {
        return Err(Invalid::spec(format!(
            "master.replicas is {}: only 1 is supported (the master's RocksDB journal has one writer)",
            s.master.replicas
        )));
    }
    let journal_bytes =
        parse_size("master.journal.size", &s.master.journal.size).map_err(Invalid::spec)?;
    if journal_bytes < (64 << 20) {
        return Err(Invalid::spec(format!(
            "master.journal.size {} is below 64Mi",
            s.master.journal.size
        )));
    }
    if s.workers.tiers.is_empty() {
        return Err(Invalid::spec(
            "workers.tiers is empty: name at least one Tier",
        ));
    }
    let mut valid_tiers = Vec::new();
    let mut node_selector = s.workers.node_selector.clone();
    for tier_name in &s.workers.tiers {
        let tier = tiers.get(tier_name).ok_or_else(|| Invalid {
            reason: "TierNotFound",
            message: format!("workers.tiers names Tier '{tier_name}', which does not exist"),
        })?;
        let vt = validate_tier(tier)?;
        if let Some(prev) = valid_tiers.last() {
            let prev: &ValidTier = prev;
            if medium_rank(prev.medium) >= medium_rank(vt.medium) {
                return Err(Invalid::spec(format!(
                    "workers.tiers must be fastest first with one tier per medium: {} ({}) cannot follow {} ({})",
                    vt.name,
                    vt.medium.alias(),
                    prev.name,
                    prev.medium.alias()
                )));
            }
        }
        for (k, v) in &tier.spec.node_selector {
            match node_selector.get(k) {
                Some(existing) if existing != v => {
                    return Err(Invalid::spec(format!(
                        "tier {tier_name}: nodeSelector {k}={v} conflicts with {k}={existing}"
                    )))
                }
                _ => {
                    node_selector.insert(k.clone(), v.clone());
                }
            }
        }
        valid_tiers.push(vt);
    }
    // The MEM trap: tmpfs pages count against the worker's memory cgroup, so the limit must
    // hold the MEM quota on top of what the process needs.
    let mem_quota = valid_tiers
        .iter()
        .filter(|t| t.medium == Medium::Mem)
        .try_fold(0u64, |acc, t| acc.checked_add(t.quota_bytes))
        .ok_or_else(|| Invalid::spec("MEM tier quotas overflow"))?;
    let (worker_resources, worker_memory_limit) = requirements(
        "workers.resources",
        &s.workers.resources,
        Some(DEFAULT_WORKER_PROCESS_MEMORY),
        mem_quota,
    )?;
    if let Some(max) = &s.workers.max_memory {
        let max_bytes = parse_size("workers.maxMemory", max).map_err(Invalid::spec)?;
        if worker_memory_limit > max_bytes {
            return Err(Invalid {
                reason: "MemoryDoesNotFit",
                message: format!(
                    "workers need a memory limit of {} (MEM tier quota {} + process {}) but workers.maxMemory is {max}: lower the MEM quota or raise maxMemory",
                    format_bytes(worker_memory_limit),
                    format_bytes(mem_quota),
                    format_bytes(worker_memory_limit - mem_quota),
                ),
            });
        }
    }
    let (master_resources, _) = requirements("master.resources", &s.master.resources, None, 0)?;
    let proxy = if s.proxy.enabled() {
        let (resources, _) = requirements("proxy.resources", &s.proxy.resources, None, 0)?;
        Some(ValidProxy {
            s3: s.proxy.s3,
            webhdfs: s.proxy.webhdfs,
            replicas: s.proxy.replicas,
            resources,
        })
    } else {
        None
    };
    let root = &s.root_ufs;
    let scheme_ok = root
        .uri
        .split_once("://")
        .is_some_and(|(scheme, rest)| !scheme.is_empty() && !rest.is_empty());
    if !scheme_ok {
        return Err(Invalid::spec(format!(
            "rootUfs.uri '{}' is not a URI (expected e.g. s3://bucket/prefix)",
            root.uri
        )));
    }
    if root.uri.starts_with("file:") {
        return Err(Invalid {
            reason: "RootUfsNotShared",
            message: format!(
                "rootUfs.uri '{}': a file:// root lives inside one pod, so workers and the CSI driver cannot reach what the master persists; use shared under-storage (s3://, webhdfs://, ...)",
                root.uri
            ),
        });
    }
    for key in root.options.keys() {
        if alluvium_ufs::is_secret_option(key) {
            return Err(Invalid::spec(format!(
                "rootUfs.options.{key}: secrets belong in rootUfs.credentialsSecretRef, not in the spec"
            )));
        }
    }
    let ports = s.workers.ports;
    if ports.rpc == ports.web {
        return Err(Invalid::spec(format!(
            "workers.ports: rpc and web are both {}",
            ports.rpc
        )));
    }
    let (cluster_secret, managed_secret) = match &s.security.cluster_secret_ref {
        Some(r) if r.key != crate::names::CLUSTER_SECRET_KEY => {
            return Err(Invalid::spec(format!(
                "security.clusterSecretRef.key is '{}': the key must be '{}' (the CSI driver reads that key of the Secret the kubelet hands it)",
                r.key,
                crate::names::CLUSTER_SECRET_KEY
            )))
        }
        Some(r) => (r.clone(), false),
        None => (
            SecretKeyRef {
                name: crate::names::cluster_secret(&name),
                key: crate::names::CLUSTER_SECRET_KEY.into(),
            },
            true,
        ),
    };
    let config_toml = crate::build::config::render(
        &name,
        &namespace,
        &valid_tiers,
        RootUfs {
            uri: &root.uri,
            options: &root.options,
        },
        ports,
        &s.config,
    )?;
    Ok(ValidatedCluster {
        name,
        namespace,
        uid: cluster.metadata.uid.clone().unwrap_or_default(),
        image: s.image.clone(),
        pull_policy: s.image_pull_policy,
        master_resources,
        master_node_selector: s.master.node_selector.clone(),
        journal_size: s.master.journal.size.clone(),
        journal_storage_class: s.master.journal.storage_class_name.clone(),
        tiers: valid_tiers,
        worker_node_selector: node_selector,
        worker_resources,
        worker_memory_limit,
        worker_ports: ports,
        proxy,
        cluster_secret,
        managed_secret,
        root_ufs_secret: root.credentials_secret_ref.as_ref().map(|r| r.name.clone()),
        config_toml,
    })
}

/// Workers without `workers.maxMemory` must still fit the nodes they land on: their memory
/// limit (MEM quotas plus the process) is checked against the smallest allocatable memory of
/// the nodes matching their selector. `None` = no node matches (reported as NoWorkerNodes).
pub fn check_fits_nodes(c: &ValidatedCluster, smallest_node: Option<u64>) -> Result<(), Invalid> {
    let Some(node) = smallest_node else {
        return Ok(());
    };
    if c.worker_memory_limit > node {
        return Err(Invalid {
            reason: "MemoryDoesNotFit",
            message: format!(
                "workers need a memory limit of {} (MEM tier quotas plus the process) but the smallest matching node can allocate {}: lower the MEM quota or set workers.nodeSelector",
                format_bytes(c.worker_memory_limit),
                format_bytes(node)
            ),
        });
    }
    Ok(())
}

/// A mount whose spec is usable.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedMount {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub cluster: String,
    pub path: String,
    pub ufs: String,
    pub read_only: bool,
    pub shared: bool,
    pub sync_interval: String,
    pub options: BTreeMap<String, String>,
    pub credentials_secret: Option<String>,
    pub preload: bool,
    pub pvc: Option<ValidPvc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValidPvc {
    pub claim_name: String,
    pub pv_name: String,
    pub capacity: String,
    pub storage_class_name: String,
}

/// Checks a mount's spec (references are checked by the controller).
pub fn validate_mount(m: &Mount) -> Result<ValidatedMount, Invalid> {
    let name = m.metadata.name.clone().unwrap_or_default();
    let namespace = m.metadata.namespace.clone().unwrap_or_default();
    let s = &m.spec;
    if !s.path.starts_with('/')
        || s.path == "/"
        || s.path.ends_with('/')
        || s.path.contains("//")
        || s.path.split('/').any(|c| c == "." || c == "..")
    {
        return Err(Invalid::spec(format!(
            "path '{}' must be an absolute namespace path below / (no '.', '..', '//' or trailing '/')",
            s.path
        )));
    }
    let scheme_ok = s
        .ufs
        .split_once("://")
        .is_some_and(|(scheme, rest)| !scheme.is_empty() && !rest.is_empty());
    if !scheme_ok {
        return Err(Invalid::spec(format!(
            "ufs '{}' is not a URI (expected e.g. s3://bucket/prefix)",
            s.ufs
        )));
    }
    let si = &s.options.sync_interval;
    let digits = si.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &si[digits.len()..];
    if digits.is_empty()
        || digits.parse::<u64>().is_err()
        || !matches!(unit, "ms" | "s" | "m" | "h" | "d")
    {
        return Err(Invalid::spec(format!(
            "options.syncInterval '{si}' is not a duration (expected e.g. 30s, 5m, 1h)"
        )));
    }
    for key in s.options.extra.keys() {
        if key == "sync_interval" {
            return Err(Invalid::spec(
                "options.extra.sync_interval: use options.syncInterval instead",
            ));
        }
    }
    let pvc = match &s.pvc {
        Some(p) if p.create => {
            let claim_name = p.name.clone().unwrap_or_else(|| name.clone());
            parse_size("pvc.capacity", &p.capacity).map_err(Invalid::spec)?;
            Some(ValidPvc {
                pv_name: format!("{namespace}-{claim_name}"),
                claim_name,
                capacity: p.capacity.clone(),
                storage_class_name: p.storage_class_name.clone(),
            })
        }
        _ => None,
    };
    let mut options = s.options.extra.clone();
    options.insert("sync_interval".into(), si.clone());
    Ok(ValidatedMount {
        name,
        namespace,
        uid: m.metadata.uid.clone().unwrap_or_default(),
        cluster: s.cluster.clone(),
        path: s.path.clone(),
        ufs: s.ufs.clone(),
        read_only: s.options.read_only,
        shared: s.options.shared,
        sync_interval: si.clone(),
        options,
        credentials_secret: s.credentials_secret_ref.as_ref().map(|r| r.name.clone()),
        preload: s.preload,
        pvc,
    })
}
