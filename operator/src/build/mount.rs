//! Objects a `Mount` owns: a static PersistentVolume served by the Alluvium CSI driver with its
//! PersistentVolumeClaim (so job pods use `claimName`), and the preload Job.

use std::collections::BTreeMap;

use alluvium_crds::{PullPolicy, SecretKeyRef};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, Container, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeSpec, PodSpec, PodTemplateSpec, SecretReference,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::names;
use crate::validate::{ValidPvc, ValidatedMount};

/// Name of the CSI driver serving Alluvium volumes.
pub const CSI_DRIVER: &str = "csi.alluvium.io";
/// Label on PVs made for a mount: `<namespace>.<mount>` (PVs are cluster-scoped, so they cannot
/// carry an owner reference to a namespaced Mount; the finalizer deletes them).
pub const MOUNT_LABEL: &str = "alluvium.io/mount";

/// What a mount needs from its cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterInfo {
    pub image: String,
    pub pull_policy: PullPolicy,
    pub master_endpoint: String,
    /// The cluster secret: given to the preload Job, and named on the PV so the kubelet hands
    /// it to the CSI driver when it stages the volume.
    pub secret: SecretKeyRef,
}

fn owner(m: &ValidatedMount) -> OwnerReference {
    OwnerReference {
        api_version: alluvium_crds::API_VERSION.into(),
        kind: "Mount".into(),
        name: m.name.clone(),
        uid: m.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn labels(m: &ValidatedMount) -> BTreeMap<String, String> {
    let mut l = names::labels(&m.cluster, "mount");
    l.insert(MOUNT_LABEL.into(), format!("{}.{}", m.namespace, m.name));
    l
}

fn access_modes(m: &ValidatedMount) -> Vec<String> {
    vec![if m.read_only {
        "ReadOnlyMany"
    } else {
        "ReadWriteMany"
    }
    .to_string()]
}

fn storage(q: &str) -> BTreeMap<String, Quantity> {
    BTreeMap::from([("storage".to_string(), Quantity(q.to_string()))])
}

/// A static PV naming the mount's namespace path; the CSI node plugin mounts that path.
pub fn persistent_volume(
    m: &ValidatedMount,
    p: &ValidPvc,
    cluster: &ClusterInfo,
) -> PersistentVolume {
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(p.pv_name.clone()),
            labels: Some(labels(m)),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            access_modes: Some(access_modes(m)),
            capacity: Some(storage(&p.capacity)),
            storage_class_name: Some(p.storage_class_name.clone()),
            persistent_volume_reclaim_policy: Some("Retain".into()),
            claim_ref: Some(ObjectReference {
                namespace: Some(m.namespace.clone()),
                name: Some(p.claim_name.clone()),
                ..Default::default()
            }),
            csi: Some(CSIPersistentVolumeSource {
                driver: CSI_DRIVER.into(),
                volume_handle: format!("{}/{}{}", m.namespace, m.cluster, m.path),
                read_only: Some(m.read_only),
                volume_attributes: Some(BTreeMap::from([
                    ("path".to_string(), m.path.clone()),
                    ("master".to_string(), cluster.master_endpoint.clone()),
                ])),
                node_stage_secret_ref: Some(SecretReference {
                    name: Some(cluster.secret.name.clone()),
                    namespace: Some(m.namespace.clone()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The claim job pods use; bound to the PV above by name.
pub fn persistent_volume_claim(m: &ValidatedMount, p: &ValidPvc) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(p.claim_name.clone()),
            namespace: Some(m.namespace.clone()),
            labels: Some(labels(m)),
            owner_references: Some(vec![owner(m)]),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(access_modes(m)),
            storage_class_name: Some(p.storage_class_name.clone()),
            volume_name: Some(p.pv_name.clone()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(storage(&p.capacity)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// What a preload loads: only a new source (UFS or path) loads again; option changes do not.
pub fn preload_source(m: &ValidatedMount) -> String {
    crate::build::config::hash(&format!("{}\n{}", m.ufs, m.path))[..10].to_string()
}

/// Name of a mount's preload Job: the source and the attempt, so a retry after a failure (or a
/// new source) is a new Job while a finished one is left alone.
pub fn preload_job_name(m: &ValidatedMount, attempt: i32) -> String {
    let base: String = m.name.chars().take(36).collect();
    format!("{base}-preload-{}-{attempt}", preload_source(m))
}

/// Label selecting every preload Job of a mount.
pub fn preload_selector(m: &ValidatedMount) -> String {
    format!(
        "{MOUNT_LABEL}={}.{},app.kubernetes.io/component=preload",
        m.namespace, m.name
    )
}

/// A Job running `alluvium fs distributedLoad <path>` against the cluster's master.
pub fn preload_job(m: &ValidatedMount, cluster: &ClusterInfo, attempt: i32) -> Job {
    let mut l = labels(m);
    l.insert("app.kubernetes.io/component".into(), "preload".into());
    Job {
        metadata: ObjectMeta {
            name: Some(preload_job_name(m, attempt)),
            namespace: Some(m.namespace.clone()),
            labels: Some(l.clone()),
            owner_references: Some(vec![owner(m)]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            // Retries are the operator's (a new Job per attempt, with growing backoff).
            backoff_limit: Some(0),
            ttl_seconds_after_finished: Some(86_400),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(l),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![Container {
                        name: "preload".into(),
                        image: Some(cluster.image.clone()),
                        image_pull_policy: Some(cluster.pull_policy.as_str().into()),
                        args: Some(vec!["fs".into(), "distributedLoad".into(), m.path.clone()]),
                        env: Some(vec![
                            super::env("ALLUVIUM_MASTER", cluster.master_endpoint.clone()),
                            super::env("ALLUVIUM_CLIENT__USER", names::OPERATOR_USER),
                            super::secret_env(&cluster.secret),
                        ]),
                        security_context: Some(super::restricted_security(false)),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}
